// `npm run bench:pingpong` (after `npm run build`): the ping-pong row measured honestly.
//
// Runs bench/pingpong.mjs RUNS times (default 5) in each placement, alternating placements:
//   one-cpu   every process (ours, the peers, the worker) pinned to ONE CPU with taskset;
//   unpinned  the scheduler places every process (each side may get a CPU of its own).
// Every wake-up row is compared with the baselines measured in the same run, in the same
// placement (a socket unpinned is several times slower than pinned, so mixing placements would
// inflate the ratio). Per run the ratio is the median of the per-round paired ratios; over the
// runs we report the median and the spread (lowest…highest run). The load average is recorded
// before and after every run. Targets: wait/notify ≥ 5× faster than a Unix-domain socket and
// ≥ 3× faster than worker_threads postMessage; the verdict is given per placement from the
// median over runs, and a run below the target is named.
// Env: PINGPONG_RUNS (5), BENCH_ROUNDS (4 here), BENCH_TIME_MS (300 here), BENCH_CPU (last CPU),
// PINGPONG_OUT (.bench/pingpong-results.json, git-ignored).
import { spawnSync, execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { ROOT } from './lib.mjs'

const RUNS = Number(process.env.PINGPONG_RUNS ?? 5)
const env = { ...process.env, BENCH_ROUNDS: process.env.BENCH_ROUNDS ?? '4', BENCH_TIME_MS: process.env.BENCH_TIME_MS ?? '300' }
delete env.NODE_SHARED_MEM_FORCE_COPY
const OUT = process.env.PINGPONG_OUT ?? path.join(ROOT, '.bench', 'pingpong-results.json') // git-ignored
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'nsm-pp-'))
const ncpu = os.availableParallelism?.() ?? os.cpus().length
const cpu = process.env.BENCH_CPU ?? String(ncpu - 1)
const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}
if (sh('taskset', ['-c', cpu, 'true']) === null) {
  console.error('bench:pingpong needs taskset (util-linux) for the one-CPU placement')
  process.exit(1)
}
const load = () => os.loadavg().map((x) => +x.toFixed(2))
const log = (s) => process.stderr.write(s + '\n')

const PLACEMENTS = ['one-cpu', 'unpinned']
const runs = []
for (let i = 0; i < RUNS; i++) {
  for (const placement of PLACEMENTS) {
    const out = path.join(TMP, `${placement}-${i}.json`)
    const cmd = [...(placement === 'one-cpu' ? ['taskset', '-c', cpu] : []), process.execPath, path.join(ROOT, 'bench', 'pingpong.mjs'), out, placement]
    const before = load()
    const t0 = Date.now()
    const r = spawnSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env, cwd: ROOT })
    const after = load()
    if (r.status !== 0) throw new Error(`run ${i + 1} ${placement}: pingpong.mjs exited with ${r.status ?? r.signal}`)
    const results = JSON.parse(fs.readFileSync(out, 'utf8')).results.map((t) => ({ ...t, id: t.id.replace('@unpinned', '') }))
    runs.push({ run: i + 1, placement, load_before: before, load_after: after, seconds: (Date.now() - t0) / 1000, results })
    log(`pingpong run ${i + 1}/${RUNS} ${placement}: load ${before.join(' ')} → ${after.join(' ')}, ${((Date.now() - t0) / 1000).toFixed(0)} s`)
  }
}
fs.rmSync(TMP, { recursive: true, force: true })

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length / 2
  return s.length % 2 ? s[Math.floor(m)] : (s[m - 1] + s[m]) / 2
}
const us = (ns) => `${(ns / 1000).toFixed(2)} µs`
// Ratio of one run: median over rounds of baseline/this (paired: same round, back to back).
function runRatio(results, id, base) {
  const m = results.find((t) => t.id === id)
  const b = results.find((t) => t.id === base)
  if (!m || !b || m.error || b.error) return null
  const per = m.round_medians_ns.map((x, k) => b.round_medians_ns[k] / x).filter(Number.isFinite)
  return per.length ? median(per) : b.median_ns / m.median_ns
}

const TASKS = [
  ['pp-shm-wait', 'wait/notify, Node ↔ Node (wait spins ≤ 3 µs, then FUTEX_WAIT)'],
  ['pp-shm-cpeer', 'wait/notify, Node ↔ C peer sleeping in FUTEX_WAIT (never spins)'],
  ['pp-shm-waitasync', 'waitAsync/notify (our side async), Node ↔ Node'],
  ['pp-shm-spin', 'both sides spin on Atomics.load first (unpinned only)'],
  ['pp-uds', 'baseline: Unix-domain socket, 1 byte each way, Node ↔ Node'],
  ['pp-worker', 'baseline: worker_threads postMessage, main ↔ worker'],
]
const PAIRS = [
  ['pp-shm-wait', 'pp-uds', 5],
  ['pp-shm-wait', 'pp-worker', 3],
  ['pp-shm-cpeer', 'pp-uds', 5],
  ['pp-shm-cpeer', 'pp-worker', 3],
  ['pp-shm-waitasync', 'pp-uds', null],
  ['pp-shm-waitasync', 'pp-worker', null],
  ['pp-shm-spin', 'pp-uds', null],
  ['pp-shm-spin', 'pp-worker', null],
]
const lines = []
const p = (s = '') => lines.push(s)
const cpuModel = (sh('lscpu', []) ?? '').match(/^Model name:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model
p(`ping-pong round trip — ${cpuModel} (${ncpu} CPUs), Linux ${os.release()}, Node ${process.version}, git ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, ${new Date().toISOString()}`)
p(`${RUNS} runs per placement (alternating), each ${env.BENCH_ROUNDS} rounds × ${env.BENCH_TIME_MS} ms per task; one-cpu = taskset -c ${cpu} for every process`)
p(`load average (1/5/15) per run: ${runs.map((r) => `${r.placement} #${r.run} ${r.load_before[0]}→${r.load_after[0]}`).join(', ')}`)
const summary = {}
for (const placement of PLACEMENTS) {
  const mine = runs.filter((r) => r.placement === placement)
  p()
  p(`${placement === 'one-cpu' ? 'ONE CPU (all processes pinned to the same CPU)' : 'UNPINNED (the scheduler places every process)'}: round trip, median over runs [lowest…highest run median]`)
  summary[placement] = { tasks: {}, ratios: [] }
  for (const [id, label] of TASKS) {
    const per = mine.map((r) => r.results.find((t) => t.id === id)).filter((t) => t && !t.error).map((t) => t.median_ns)
    const err = mine.map((r) => r.results.find((t) => t.id === id)).find((t) => t?.error)
    if (!per.length) {
      if (err) p(`   ${label.padEnd(70)} NOT RUN: ${err.error.split('\n')[0]}`)
      continue
    }
    summary[placement].tasks[id] = { median_ns: median(per), min_ns: Math.min(...per), max_ns: Math.max(...per), runs_ns: per }
    p(`   ${label.padEnd(70)} ${us(median(per)).padStart(10)}  [${us(Math.min(...per))}…${us(Math.max(...per))}]`)
  }
  for (const [id, base, target] of PAIRS) {
    const per = mine.map((r) => runRatio(r.results, id, base)).filter((x) => x != null)
    if (!per.length) continue
    const med = median(per)
    const below = target == null ? [] : mine.filter((r) => (runRatio(r.results, id, base) ?? Infinity) < target).map((r) => r.run)
    const verdict = target == null ? 'info' : med >= target ? (below.length ? `MET by the median (run ${below.join(', ')} below)` : 'MET in every run') : `MISSED (${per.filter((x) => x >= target).length}/${per.length} runs reach it)`
    summary[placement].ratios.push({ id, base, target, median: med, min: Math.min(...per), max: Math.max(...per), runs: per, verdict })
    p(`   ${(`${id} vs ${base}`).padEnd(40)} ${(med.toFixed(2) + '×').padStart(8)} faster [${Math.min(...per).toFixed(2)}…${Math.max(...per).toFixed(2)}]  ${target == null ? 'no target' : `target ≥ ${target}×`}: ${verdict}`)
  }
}
p()
const v = (pl, id, base) => summary[pl]?.ratios.find((r) => r.id === id && r.base === base)
const verdictLine = (pl) => {
  const a = v(pl, 'pp-shm-wait', 'pp-uds')
  const b = v(pl, 'pp-shm-wait', 'pp-worker')
  if (!a || !b) return `${pl}: not measured`
  const ok = a.median >= 5 && b.median >= 3
  return `${pl}: wait/notify ${a.median.toFixed(2)}× a socket, ${b.median.toFixed(2)}× postMessage → target ${ok ? 'MET' : 'MISSED'}`
}
p(`VERDICT (target: ≥ 5× faster than a Unix socket and ≥ 3× faster than postMessage, same placement): ${verdictLine('unpinned')}; ${verdictLine('one-cpu')}`)
console.log(lines.join('\n'))
fs.mkdirSync(path.dirname(OUT), { recursive: true })
fs.writeFileSync(OUT, JSON.stringify({ runs, summary, table: lines }, null, 2) + '\n')
