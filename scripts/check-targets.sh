#!/usr/bin/env bash
# Type-checks the Windows and macOS code paths (crates/shm-core and the napi binding) from a
# Linux machine, without their SDKs: `cargo check` never links, and std for the foreign target
# is compiled from source (-Zbuild-std) by Debian's rustc-web toolchain (1.96, with
# rust-web-src), enabled with RUSTC_BOOTSTRAP=1. The machine's default (rustup) toolchain is not
# touched: the Debian one is called by absolute path (/usr/bin/cargo, RUSTC=/usr/bin/rustc) and
# builds into target/xcheck.
#
#   bash scripts/check-targets.sh                      # x86_64-pc-windows-msvc aarch64-apple-darwin
#   CHECK_TARGETS="aarch64-pc-windows-msvc x86_64-apple-darwin" bash scripts/check-targets.sh
#
# If a rustup toolchain already has a target's std installed (`rustup target add T`), that is
# used instead (no build-std). Nothing is installed here: without either toolchain the check
# prints a SKIPPED line (a failure when CI=true); scripts/provision-ci.sh installs rustc-web.
# Per target: shm-core lib, shm-napi lib (both must pass with no warning in our crates) and the
# shm-core unit tests (must pass too, except where listed in KNOWN_TEST_FAILURES below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGETS="${CHECK_TARGETS:-x86_64-pc-windows-msvc aarch64-apple-darwin}"
MIN_RUST="1.88" # workspace rust-version
DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
DEB_SRC=/usr/lib/rustlib/src/rust/library
export CARGO_TARGET_DIR="${XCHECK_TARGET_DIR:-$ROOT/target/xcheck}"

# Test targets that are known not to compile for a target, with the reason (reported, not fatal).
declare -A KNOWN_TEST_FAILURES=(
  # [target]="reason"  (none at present: every target's core tests compile)
)

log() { printf '[check-targets] %s\n' "$*" >&2; }

version_ge() { # version_ge A B: A >= B
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

deb_toolchain_ok() {
  [ -x "$DEB_CARGO" ] && [ -x "$DEB_RUSTC" ] && [ -d "$DEB_SRC/std" ] || return 1
  local v
  v="$("$DEB_RUSTC" --version | awk '{print $2}')"
  version_ge "$v" "$MIN_RUST"
}

rustup_has_target() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$1"
}

# Prints "ok", or "fail" (and the compiler's messages to stderr).
# A warning located in our crates counts as a failure.
run_check() {
  local mode="$1" target="$2"; shift 2
  local out rc=0
  if [ "$mode" = rustup ]; then
    out="$(cargo check --locked --message-format short --target "$target" "$@" 2>&1)" || rc=$?
  else
    out="$(RUSTC_BOOTSTRAP=1 RUSTC="$DEB_RUSTC" RUSTDOC=/usr/bin/rustdoc \
      "$DEB_CARGO" check -Zbuild-std --locked --message-format short --target "$target" "$@" 2>&1)" || rc=$?
  fi
  local ours
  ours="$(printf '%s\n' "$out" | grep -E '^crates/.*: (warning|error)' || true)"
  if [ "$rc" != 0 ] || [ -n "$ours" ]; then
    printf '%s\n' "${ours:-$out}" | sed 's/^/    /' >&2
    echo fail
  else
    echo ok
  fi
}

need_deb=0
for t in $TARGETS; do rustup_has_target "$t" || need_deb=1; done
if [ "$need_deb" = 1 ] && ! deb_toolchain_ok; then
  # Nothing is installed here (scripts/provision-ci.sh does that): skip, or fail when CI=true.
  node "$ROOT/scripts/skip.cjs" "cargo check of $TARGETS" "rustc-web/rust-web-src >= $MIN_RUST (or rustup targets)"
  exit $?
fi
[ "$need_deb" = 1 ] && log "using $("$DEB_RUSTC" --version) with -Zbuild-std (std source: $DEB_SRC)"

fails=0
passes=0
known=0
rows=()
for t in $TARGETS; do
  mode=deb
  rustup_has_target "$t" && mode=rustup
  for what in "shm-core lib" "shm-napi lib" "shm-core tests"; do
    read -r crate kind <<<"$what"
    log "$t: cargo check -p $crate --$kind ($mode)"
    start=$(date +%s)
    if [ "$kind" = lib ]; then r="$(run_check "$mode" "$t" -p "$crate" --lib)"; else r="$(run_check "$mode" "$t" -p "$crate" --tests)"; fi
    secs=$(( $(date +%s) - start ))
    res=pass
    if [ "$r" != ok ]; then
      if [ "$kind" = tests ] && [ -n "${KNOWN_TEST_FAILURES[$t]:-}" ]; then
        res="known failure"; known=$((known + 1)); log "  known: ${KNOWN_TEST_FAILURES[$t]}"
      else
        res=FAIL; fails=$((fails + 1))
      fi
    else
      passes=$((passes + 1))
      if [ "$kind" = tests ] && [ -n "${KNOWN_TEST_FAILURES[$t]:-}" ]; then
        log "  $t tests now compile: remove it from KNOWN_TEST_FAILURES"
      fi
    fi
    rows+=("$(printf '| %-24s | %-14s | %-13s | %4ss |' "$t" "$crate $kind" "$res" "$secs")")
  done
done

echo
printf '| %-24s | %-14s | %-13s | %5s |\n' target check result time
printf '|%s|%s|%s|%s|\n' "--------------------------" "----------------" "---------------" "-------"
printf '%s\n' "${rows[@]}"
echo
if [ "$known" -gt 0 ]; then
  echo "targets: $passes passed, $fails failed, $known skipped"
else
  echo "targets: $passes passed, $fails failed"
fi
[ "$fails" = 0 ]
