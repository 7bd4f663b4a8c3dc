#!/usr/bin/env bash
# Instructions per call of the hot rows, measured with valgrind's callgrind (deterministic:
# independent of the machine's load; hardware counters, `perf stat -e instructions`, are not
# available in this VM). Each OP runs twice, with C1 and C2 calls after the same warm-up;
# (Ir(C2) - Ir(C1)) / (C2 - C1) = instructions per call, counted on the main (JS) thread only.
# The callgrind.out files stay in $OUT for callgrind_annotate (the native functions by name;
# V8's JIT code shows as '???').
#   bash bench/profile/callgrind.sh [OUTDIR] [BEFORE_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/nsm-callgrind}
BEFORE=${2:-}
C1=${C1:-50000}
C2=${C2:-300000}
mkdir -p "$OUT"
run() { # tag op calls [before] -> total Ir
  local env=()
  [[ $2 == *-caged ]] && env=(NODE_SHARED_MEM_FORCE_COPY=1)
  env "${env[@]}" valgrind --tool=callgrind --smc-check=all --separate-threads=yes --callgrind-out-file="$OUT/$1.$3.out" \
    node --no-concurrent-recompilation bench/profile/hot-loop.mjs "$2" "$3" ${4:+"$4"} >/dev/null 2>"$OUT/$1.$3.log"
  # the main (JS) thread only: V8's and libuv's worker threads add noise, not the call's cost
  grep -m1 '^summary:\|^totals:' "$OUT/$1.$3.out-01" | awk '{print $2}'
}
OPS=${OPS:-"plain-prop length empty-method copyfrom-noop atomics-load atomic-load copyfrom-caged atomic-load-caged copyfrom21-caged"}
printf '%-22s %14s\n' op 'Ir per call'
for op in $OPS; do
  a=$(run "$op" "$op" "$C1"); b=$(run "$op" "$op" "$C2")
  printf '%-22s %14.1f\n' "$op" "$(echo "($b - $a) / ($C2 - $C1)" | bc -l)"
done
if [[ -n $BEFORE ]]; then
  for op in ${BEFORE_OPS:-length copyfrom-noop atomic-load copyfrom-caged}; do
    a=$(run "before-$op" "$op" "$C1" "$BEFORE"); b=$(run "before-$op" "$op" "$C2" "$BEFORE")
    printf '%-22s %14.1f\n' "before:$op" "$(echo "($b - $a) / ($C2 - $C1)" | bc -l)"
  done
fi
