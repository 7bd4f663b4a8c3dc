#!/usr/bin/env bash
# Instructions per channel message (bench/profile/channel-loop.mjs) with valgrind's callgrind,
# main (JS) thread only: each OP runs with C1 and C2 iterations after the same warm-up;
# (Ir(C2) - Ir(C1)) / (C2 - C1) = instructions per iteration (sendMany-drain: per batch of 16).
#   bash bench/profile/channel-callgrind.sh [OUTDIR] [BEFORE_DIR]
#   OPS="send-receiveInto claim-commit" SIZE=64 CAGED=1 ...
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/nsm-ch-callgrind}
BEFORE=${2:-}
C1=${C1:-20000}
C2=${C2:-120000}
SIZE=${SIZE:-64}
mkdir -p "$OUT"
env=()
[[ ${CAGED:-0} == 1 ]] && env=(NODE_SHARED_MEM_FORCE_COPY=1)
run() { # tag op calls [before] -> total Ir
  env "${env[@]}" valgrind --tool=callgrind --smc-check=all --separate-threads=yes --callgrind-out-file="$OUT/$1.$3.out" \
    node --no-concurrent-recompilation bench/profile/channel-loop.mjs "$2" "$3" "$SIZE" ${4:+"$4"} >/dev/null 2>"$OUT/$1.$3.log"
  grep -m1 '^summary:\|^totals:' "$OUT/$1.$3.out-01" | awk '{print $2}'
}
OPS=${OPS:-"send-receiveInto send-receiveInto-m2o claim-commit send-receive sendString-receiveInto"}
printf '%-26s %14s   (size %s, %s)\n' op 'Ir per iter' "$SIZE" "$([[ ${CAGED:-0} == 1 ]] && echo caged || echo zero-copy)"
for op in $OPS; do
  tag=${BEFORE:+before-}$op
  a=$(run "$tag" "$op" "$C1" "$BEFORE"); b=$(run "$tag" "$op" "$C2" "$BEFORE")
  printf '%-26s %14.1f\n' "${BEFORE:+before:}$op" "$(echo "($b - $a) / ($C2 - $C1)" | bc -l)"
done
