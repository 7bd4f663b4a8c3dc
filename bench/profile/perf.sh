#!/usr/bin/env bash
# Where the time of one hot call goes: `perf record` (cpu-clock sampling: this VM has no
# hardware counters) of bench/profile/hot-loop.mjs, V8's JIT code named through
# --perf-basic-prof, kernel symbols included. Prints the top self-time symbols per OP.
#   bash bench/profile/perf.sh OP [CALLS] [BEFORE_DIR]
#   e.g. bash bench/profile/perf.sh copyfrom-caged 2000000
set -euo pipefail
cd "$(dirname "$0")/../.."
OP=$1
CALLS=${2:-5000000}
BEFORE=${3:-}
env=()
[[ $OP == *-caged ]] && env=(NODE_SHARED_MEM_FORCE_COPY=1)
DATA=$(mktemp /tmp/nsm-perf-XXXXXX.data)
ROOT=$PWD
[[ -n $BEFORE ]] && BEFORE=$(realpath "$BEFORE")
WORK=$(mktemp -d /tmp/nsm-perf-XXXXXX) # --perf-basic-prof also writes V8 logs into the cwd
(cd "$WORK" && env "${env[@]}" perf record -q -e cpu-clock -F 10000 -o "$DATA" -- sh -c 'echo $$ > pid; exec "$@"' sh \
  taskset -c "${BENCH_CPU:-1}" node --perf-basic-prof "$ROOT/bench/profile/hot-loop.mjs" "$OP" "$CALLS" ${BEFORE:+"$BEFORE"} 2>/dev/null)
PID=$(cat "$WORK/pid") # sh execs taskset, which execs node: one pid, the one of V8's perf map
rm -rf "$WORK"
squeeze() { grep -v '^#' | grep '%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//; s/  +/  /g'; }
echo "by object:"
perf report -i "$DATA" --no-children --sort dso --stdio 2>/dev/null | squeeze | head -6
echo "top symbols:"
perf report -i "$DATA" --no-children --sort dso,symbol --stdio 2>/dev/null | squeeze | head -"${TOP:-14}"
rm -f "$DATA" "/tmp/perf-$PID.map"
