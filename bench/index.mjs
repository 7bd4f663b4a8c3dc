// `npm run bench` (after `npm run build`): runs every benchmark section, prints one table and
// writes the same figures as JSON (bench/results.json, or BENCH_OUT).
//
// Sections run as child processes, pinned to one CPU with taskset when available: rows 1-4
// (bench/micro.mjs, a zero-copy and a caged process), row 5 (bench/cycles.mjs, one process per
// variant), rows 7-12 (bench/hot.mjs: per-call costs, a zero-copy and a caged process), row 6b
// (bench/pingpong.mjs one-cpu: its peer processes inherit the pinning). Row 6
// (bench/pingpong.mjs unpinned) lets the scheduler place the two sides.
// BENCH_BEFORE=<checkout with its own release build> (and BENCH_BEFORE_REV=<label>) adds the
// previous binding's per-call rows to rows 7-11, in the same processes.
// Exit code: 0 when every section ran, whatever the verdicts (targets are reported, not
// enforced: timing thresholds do not belong in a test suite); 1 when a section crashed.
import { spawnSync, execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { ROOT, TIME_MS, ROUNDS } from './lib.mjs'
import { ensurePeers } from './peers.mjs'

const OUT = process.env.BENCH_OUT ?? path.join(ROOT, 'bench', 'results.json')
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'nsm-bench-'))
const log = (s) => process.stderr.write(s + '\n')

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}

// ---- machine ------------------------------------------------------------------------------
const ncpu = os.availableParallelism?.() ?? os.cpus().length
const tasksetOk = sh('taskset', ['-c', '0', 'true']) !== null
const pinCpu = process.env.BENCH_CPU ?? String(ncpu - 1)
const pin = tasksetOk && process.env.BENCH_NO_PIN !== '1' ? ['taskset', '-c', pinCpu] : []
const lscpu = sh('lscpu', []) ?? ''
const field = (k) => (lscpu.match(new RegExp(`^${k}:\\s*(.*)$`, 'm')) ?? [])[1]
const machine = {
  cpu: field('Model name') ?? os.cpus()[0]?.model,
  hypervisor: field('Hypervisor vendor') ?? null,
  nproc: ncpu,
  kernel: os.release(),
  node: process.version,
  v8: process.versions.v8,
  memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
  loadavg_at_start: os.loadavg().map((x) => +x.toFixed(2)),
  loadavg_at_end: null,
  pinned: pin.length ? `taskset -c ${pinCpu} (rows 1-5 and 6b; row 6 unpinned)` : 'not pinned (taskset missing or BENCH_NO_PIN=1)',
  addon: fs.existsSync(path.join(ROOT, 'node-shared-mem.linux-x64-gnu.node')) ? 'release build (npm run build)' : 'addon missing',
  git: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
  date: new Date().toISOString(),
  time_ms_per_task_round: TIME_MS,
  rounds: ROUNDS,
}

// ---- peers (installed before timing, so no section pays for it) ---------------------------
const peers = ensurePeers({ log })
for (const [name, { info }] of Object.entries(peers)) log(`bench: peer ${name}@${info.version}: ${info.status} — ${info.note}`)

// ---- sections -----------------------------------------------------------------------------
function section(script, args, { pinned = true, nodeArgs = [], extraEnv = {} } = {}) {
  const out = path.join(TMP, `${path.basename(script, '.mjs')}-${args.join('-') || 'x'}.json`)
  const cmd = [...(pinned ? pin : []), process.execPath, ...nodeArgs, path.join(ROOT, 'bench', script), out, ...args]
  log(`bench: ${cmd.join(' ').replaceAll(ROOT + '/', '')}`)
  const env = { ...process.env }
  delete env.NODE_SHARED_MEM_FORCE_COPY // each section sets it where it needs it
  Object.assign(env, extraEnv)
  const r = spawnSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env, cwd: ROOT })
  if (r.status !== 0) return { error: `${script} ${args.join(' ')} exited with ${r.status ?? r.signal}` }
  return JSON.parse(fs.readFileSync(out, 'utf8'))
}

const t0 = Date.now()
const micro = section('micro.mjs', ['zero-copy'], { nodeArgs: ['--expose-gc'] })
const microCaged = section('micro.mjs', ['caged'], { nodeArgs: ['--expose-gc'], extraEnv: { NODE_SHARED_MEM_FORCE_COPY: '1' } })
const cycles = [
  ['zero-copy', 'sync'],
  ['zero-copy', 'yield'],
  ['caged', 'sync'],
  ['fs', 'sync'],
].map((a) => section('cycles.mjs', a, { nodeArgs: ['--expose-gc'] }))
// Rows 7-12 (per-call costs, issue 10): zero-copy in one process, caged in another started with
// NODE_SHARED_MEM_FORCE_COPY=1 (the whole process caged, as in Electron).
const hot = section('hot.mjs', ['zero-copy'])
const hotMany = section('hot.mjs', ['many'])
const hotCaged = section('hot.mjs', ['caged'], { extraEnv: { NODE_SHARED_MEM_FORCE_COPY: '1' } })
const pingpong = section('pingpong.mjs', ['one-cpu'])
const pingpongFree = section('pingpong.mjs', ['unpinned'], { pinned: false })
const wallSeconds = (Date.now() - t0) / 1000
machine.loadavg_at_end = os.loadavg().map((x) => +x.toFixed(2))

const tasks = [...(micro.results ?? []), ...(microCaged.results ?? []), ...(hot.results ?? []), ...(hotMany.results ?? []), ...(hotCaged.results ?? []), ...(pingpong.results ?? []), ...(pingpongFree.results ?? [])]
const byId = Object.fromEntries(tasks.map((t) => [t.id, t]))
const sectionErrors = [micro, microCaged, ...cycles, hot, hotMany, hotCaged, pingpong, pingpongFree].filter((s) => s.error).map((s) => s.error)

// ---- ratios -------------------------------------------------------------------------------
// kind 'speed': baseline time / measured time (≥ target: at least that fast).
// kind 'cost':  measured time / baseline time (≤ target: at most that slow).
const C = (row, id, base, kind, op, target, note) => ({ row, id, base, kind, op, target, note })
const comparisons = [
  C('zero-copy', 'zc-u8-shm', 'zc-u8-plain', 'speed', '>=', 0.95),
  C('zero-copy', 'zc-f64-shm', 'zc-f64-plain', 'speed', '>=', 0.95),
  C('zero-copy', 'zc-u8-shm', 'zc-u8-sta', 'speed', '>=', null, 'info'),
  C('copy-64m', 'cp-from-64m', 'cp-buffer-64m', 'speed', '>=', 0.9),
  C('copy-64m', 'cp-to-64m', 'cp-buffer-64m', 'speed', '>=', 0.9),
  // Row 3's old target (≤ 1.2× the no-op) compared two native calls; the no-op is an inlined JS
  // check since the TypeScript facade, so that ratio no longer measures call overhead: rows 8-9
  // (issue 10) carry the targets now (caged 64 B copy vs node-shared-mem 2.1's).
  C('call-64b', 'call-copyfrom-caged', 'call-copyfrom-noop', 'cost', '<=', null, 'info'),
  C('call-64b', 'call-copyto-caged', 'call-copyfrom-noop', 'cost', '<=', null, 'info'),
  C('call-64b', 'call-copyfrom-caged', 'call-closed-getter', 'cost', '<=', null, 'info'),
  C('call-64b', 'call-copyfrom-noop', 'call-closed-getter', 'cost', '<=', null, 'info'),
  C('open-close', 'open-nsm', 'open-mmap-io', 'cost', '<=', 1.0),
  C('open-close', 'open-nsm', 'open-fs', 'cost', '<=', null, 'info'),
  C('open-close', 'open-nsm-caged', 'open-mmap-io', 'cost', '<=', null, 'info'),
  C('open-close', 'open-nsm', 'open-mmap-io-call', 'cost', '<=', null, 'info'),
  C('open-close', 'open-nsm-gc', 'open-mmap-io', 'cost', '<=', null, 'info'),
  C('open-close', 'open-nsm', 'open-shm-typed-array', 'cost', '<=', null, 'info'),
  C('ping-pong', 'pp-shm-wait', 'pp-uds', 'speed', '>=', null, 'info'),
  C('ping-pong', 'pp-shm-wait', 'pp-worker', 'speed', '>=', null, 'info'),
  C('ping-pong', 'pp-shm-waitasync', 'pp-uds', 'speed', '>=', null, 'info'),
  C('ping-pong', 'pp-shm-waitasync', 'pp-worker', 'speed', '>=', null, 'info'),
  C('ping-pong-unpinned', 'pp-shm-wait@unpinned', 'pp-uds@unpinned', 'speed', '>=', 5),
  C('ping-pong-unpinned', 'pp-shm-wait@unpinned', 'pp-worker@unpinned', 'speed', '>=', 3),
  C('ping-pong-unpinned', 'pp-shm-waitasync@unpinned', 'pp-uds@unpinned', 'speed', '>=', null, 'info'),
  C('ping-pong-unpinned', 'pp-shm-spin@unpinned', 'pp-uds@unpinned', 'speed', '>=', null, 'info'),
  C('ping-pong-unpinned', 'pp-shm-spin@unpinned', 'pp-worker@unpinned', 'speed', '>=', null, 'info'),
  // ---- issue 10: per-call costs ----
  ...['name', 'length', 'access', 'buffer', 'requiresCopy', 'closed', 'sharedBuffer'].map((p) => C('props', `prop-${p}`, `prop-plain-${p}`, 'cost', '<=', 1.5)),
  ...['name', 'length', 'access', 'buffer', 'requiresCopy'].map((p) => C('props', `prop-${p}`, `prop21-${p}`, 'cost', '<=', null, 'info')),
  C('props', 'prop8-length', 'prop8-plain-length', 'cost', '<=', 1.5),
  C('props', 'prop8-buffer', 'prop8-plain-buffer', 'cost', '<=', 1.5),
  ...['length', 'buffer', 'closed'].map((p) => C('props', `prop-${p}`, `propB-${p}`, 'speed', '>=', null, 'before')),
  C('noop-copy', 'noop-copyfrom', 'noop-empty', 'cost', '<=', 3),
  C('noop-copy', 'noop-copyto', 'noop-empty', 'cost', '<=', 3),
  C('noop-copy', 'noop8-copyfrom', 'noop8-empty', 'cost', '<=', 3),
  C('noop-copy', 'noop-copyfrom', 'noop21-copyfrom', 'cost', '<=', null, 'info'),
  C('noop-copy', 'noop-copyfrom', 'noopB-copyfrom', 'speed', '>=', null, 'before'),
  C('caged-copy', 'cg-copyfrom', 'cg21-copyfrom', 'cost', '<=', 1.0),
  C('caged-copy', 'cg-copyto', 'cg21-copyfrom', 'cost', '<=', 1.0),
  C('caged-copy', 'cg-copyto', 'cg21-copyto', 'cost', '<=', null, 'info'),
  C('caged-copy', 'cg-copyfrom', 'cg-buffer-copy', 'cost', '<=', null, 'info'),
  C('caged-copy', 'cg21-copyfrom', 'cg-buffer-copy', 'cost', '<=', null, 'info'),
  C('caged-copy', 'cg-copyfrom', 'cgB-copyfrom', 'speed', '>=', null, 'before'),
  ...['load', 'store', 'add', 'cas'].map((op) => C('atomics', `zc-atomic-${op}`, `js-atomics-${op}`, 'cost', '<=', 2)),
  C('atomics', 'zc8-atomic-add', 'js8-atomics-add', 'cost', '<=', 2),
  ...['load', 'add'].map((op) => C('atomics', `zc-atomic-${op}`, `zc-atomicB-${op}`, 'speed', '>=', null, 'before')),
  ...['load', 'store', 'add', 'cas'].map((op) => C('caged-atomics', `cg-atomic-${op}`, 'cg-atomics-copyfrom', 'cost', '<=', 1.0)),
  ...['load', 'add'].map((op) => C('caged-atomics', `cg-atomic-${op}`, `cg-atomicB-${op}`, 'speed', '>=', null, 'before')),
  C('ring', 'ring-nsm', 'ring-disruptor', 'cost', '<=', null, 'info'),
]
  // 'before' rows (after/before of the same call) exist only when BENCH_BEFORE is set.
  .filter((c) => c.note !== 'before' || byId[c.base])
  .map((c) => {
  const m = byId[c.id]
  const b = byId[c.base]
  if (!m || !b || m.error || b.error) {
    return { ...c, ratio: null, verdict: 'NOT RUN', why: (b?.error ?? m?.error ?? 'missing task').split('\n')[0] }
  }
  // Paired design: the tasks of a row alternate order each round, so the ratio is taken per
  // round and the median of those is the row's ratio (a load change on this shared machine
  // then hits both sides of a pair, and a fast round's larger sample count cannot weigh in).
  // Spread: the lowest…highest per-round ratio. `pooled` = ratio of the pooled medians.
  const rm = m.round_medians_ns ?? []
  const rb = b.round_medians_ns ?? []
  const per = rm.map((x, i) => (c.kind === 'speed' ? rb[i] / x : x / rb[i])).filter(Number.isFinite).sort((x, y) => x - y)
  const pooled = c.kind === 'speed' ? b.median_ns / m.median_ns : m.median_ns / b.median_ns
  const mid = per.length / 2
  const ratio = per.length ? (per.length % 2 ? per[Math.floor(mid)] : (per[mid - 1] + per[mid]) / 2) : pooled
  const range = per.length ? [per[0], per[per.length - 1]] : [NaN, NaN]
  const ok = c.target == null ? null : c.op === '>=' ? ratio >= c.target : ratio <= c.target
  return { ...c, ratio, ratio_rounds: range, ratio_per_round: per, ratio_pooled: pooled, verdict: ok == null ? (c.note === 'before' ? `speed-up over ${process.env.BENCH_BEFORE_REV ?? 'BENCH_BEFORE'}` : 'info') : ok ? 'PASS' : 'MISS' }
})

const MiB = 1024 * 1024
const cycleRows = cycles.map((c) => {
  if (c.error) return { error: c.error, verdict: 'NOT RUN' }
  const primary = c.mode === 'zero-copy' && c.loop === 'sync'
  const ok = c.rssGrowth < 2 * MiB && c.fdDelta === 0
  return { ...c, target: primary ? 'RSS growth < 2 MiB, fds back to baseline' : null, verdict: primary ? (ok ? 'PASS' : 'MISS') : 'info' }
})

// ---- table --------------------------------------------------------------------------------
function fmtNs(ns) {
  if (ns == null || Number.isNaN(ns)) return '-'
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`
  return `${ns.toFixed(1)} ns`
}
const fmtMiB = (b) => `${b >= 0 ? '+' : ''}${(b / MiB).toFixed(2)} MiB`
const lines = []
const p = (s = '') => lines.push(s)
const ROWS = [
  ['zero-copy', '1. zero-copy sequential read+write, 64 MiB (a[i] = a[i] + 1)', 'same loop on a plain ArrayBuffer', '≥ 0.95× speed'],
  ['copy-64m', '2. copyFrom/copyTo 64 MiB, caged (NODE_SHARED_MEM_FORCE_COPY=1)', 'Buffer#copy 64 MiB → 64 MiB (memcpy)', '≥ 0.9× speed'],
  ['call-64b', '3. copyFrom of 64 bytes: call overhead (1000 calls per sample; caged tasks in a second process, NODE_SHARED_MEM_FORCE_COPY=1: their ratios pair round i of each process)', 'no-op copyFrom(0, 0, 64) on a zero-copy instance', 'none since the facade made the no-op a JS call (was ≤ 1.2×; the caged-copy target is row 9\'s)'],
  ['open-close', '4. open + close of a 4 KiB segment (100 per sample; the caged open in the caged process)', 'mmap-io; shm-typed-array; raw fs.openSync+closeSync', '≤ 1.0× mmap-io time'],
  ['ping-pong-unpinned', '6. cross-process ping-pong, one round trip, unpinned (each side may get a CPU of its own, as on any multi-core machine; load from other users shows here)', 'Unix-domain socket; worker_threads postMessage', '≥ 5× / ≥ 3× faster'],
  ['ping-pong', '6b. the same, all sides on ONE CPU (taskset): every hand-off is a context switch; wait() does not spin there', 'the same', 'none (informative: the worst case)'],
  ['props', '7. property reads (10000 per sample; receiver alternates between two instances: one from create(), one from new; the 8-instance tasks run in a process of their own)', 'the same own data property (same value type) of a plain JS object; node-shared-mem 2.1 (own data properties)', '≤ 1.5× the plain read'],
  ['noop-copy', '8. zero-copy copyFrom/copyTo(o, o, 64): no-ops that check their arguments (10000 per sample; o = 64 × (i mod 16))', 'an empty JS method call with the same arguments', '≤ 3× time'],
  ['caged-copy', '9. caged copyFrom/copyTo(o, o, 64) (process started with NODE_SHARED_MEM_FORCE_COPY=1; 10000 per sample)', 'node-shared-mem 2.1 built with napi_create_external_arraybuffer refused (its caged path): copyFrom(o, o, 64)', '≤ 1.0× time'],
  ['atomics', '10. zero-copy atomics (10000 per sample)', 'Atomics.* on a plain Int32Array', '≤ 2× time'],
  ['caged-atomics', '11. caged atomics (NODE_SHARED_MEM_FORCE_COPY=1)', 'caged copyFrom(o, o, 64), same process and rounds', '≤ 1.0× time (no slower)'],
  ['ring', '12. one 64-byte message through a ring, producer and consumer in one process (1000 per sample)', 'shared-memory-disruptor (its *Sync API)', 'none (informative)'],
]
p(`node-shared-mem benchmark — ${machine.cpu} (${machine.hypervisor ? machine.hypervisor + ' guest, ' : ''}${machine.nproc} CPUs), Linux ${machine.kernel}, Node ${machine.node}`)
p(`${machine.pinned}; tinybench, ${TIME_MS} ms per task × ${ROUNDS} rounds (order reversed each round); ${machine.date}`)
p(`load average (1/5/15 min) at start ${machine.loadavg_at_start.join(' ')}, at end ${machine.loadavg_at_end.join(' ')} (the machine is shared)`)
p(`median = per operation, all rounds pooled; ± = median absolute deviation; IQR = p25…p75`)
p(`ratio = median of the per-round ratios (paired: each round runs the row's tasks back to back); [a…b] = lowest…highest per-round ratio`)
for (const [row, title, baseline, target] of ROWS) {
  p()
  p(`${title}`)
  p(`   baseline: ${baseline}; target: ${target}`)
  for (const t of tasks.filter((x) => x.row === row)) {
    const tag = t.role === 'baseline' ? '[base]' : t.role === 'before' ? '[prev]' : '[this]'
    if (t.error) {
      p(`   ${tag} ${t.label.padEnd(84)} NOT RUN: ${t.error.split('\n')[0]}`)
      continue
    }
    const tp = t.gib_per_s ? `  ${t.gib_per_s.toFixed(2)} GiB/s` : ''
    p(`   ${tag} ${t.label.padEnd(84)} ${fmtNs(t.median_ns).padStart(10)} ±${fmtNs(t.mad_ns).padEnd(10)} IQR ${fmtNs(t.p25_ns)}…${fmtNs(t.p75_ns)}  p99 ${fmtNs(t.p99_ns)}  n=${t.samples}${tp}`)
  }
  for (const c of comparisons.filter((x) => x.row === row)) {
    const what = `${c.id} vs ${c.base}`
    if (c.ratio == null) {
      p(`   ratio ${what.padEnd(44)} ${'—'.padStart(8)}  ${c.verdict}: ${c.why}`)
      continue
    }
    const def = c.kind === 'speed' ? 'speed (base/this)' : 'time (this/base)'
    const tgt = c.target == null ? 'no target' : `target ${c.op === '>=' ? '≥' : '≤'} ${c.target}×`
    p(`   ratio ${what.padEnd(44)} ${(c.ratio.toFixed(2) + '×').padStart(8)}  [${c.ratio_rounds[0].toFixed(2)}…${c.ratio_rounds[1].toFixed(2)}] ${def}, ${tgt}: ${c.verdict}`)
  }
  if (row === 'open-close') {
    // Row 5 (no timing) is printed right after row 4.
    p()
    p('5. 100k open/close cycles of a 4 KiB segment (RSS and /proc/self/fd before/after, after GC + event-loop turns)')
    p('   target: RSS growth < 2 MiB, fds back to baseline (for the plain tight loop, zero-copy)')
    for (const c of cycleRows) {
      if (c.error) {
        p(`   NOT RUN: ${c.error}`)
        continue
      }
      const what = c.mode === 'fs' ? 'control: fs.openSync+closeSync' : c.mode
      const label = `${what}, ${c.loop === 'sync' ? 'one synchronous loop' : 'batches of 1000 + setImmediate'}`
      p(
        `   ${label.padEnd(48)} RSS ${(c.before.rss / MiB).toFixed(1)} → ${(c.after.rss / MiB).toFixed(1)} MiB (${fmtMiB(c.rssGrowth)}; peak before GC ${(c.peak.rss / MiB).toFixed(1)}), ` +
          `fds ${c.before.fds} → ${c.after.fds}; next 100k: ${fmtMiB(c.rssGrowthSecond)}, fds ${c.fdDeltaSecond >= 0 ? '+' : ''}${c.fdDeltaSecond}; ${(c.elapsedMs / 1000).toFixed(2)} s: ${c.verdict}`,
      )
    }
  }
}
p()
p('peers (npm packages built here with node-gyp into .bench/peers; bench/peers.mjs):')
for (const [key, { info }] of Object.entries(peers)) p(`   ${key} (${info.name}@${info.version}): ${info.status === 'ok' ? 'built' : 'FAILED TO BUILD'} — ${info.note}`)
if (sectionErrors.length) {
  p()
  for (const e of sectionErrors) p(`SECTION FAILED: ${e}`)
}
p()
p(`wall time of the measured sections: ${wallSeconds.toFixed(0)} s; JSON: ${path.relative(ROOT, OUT)}`)
console.log(lines.join('\n'))

fs.writeFileSync(
  OUT,
  JSON.stringify({ machine, peers: Object.fromEntries(Object.entries(peers).map(([k, v]) => [k, v.info])), tasks, comparisons, cycles: cycleRows, sectionErrors, wallSeconds, table: lines }, null, 2) + '\n',
)
fs.rmSync(TMP, { recursive: true, force: true })
if (sectionErrors.length) process.exitCode = 1
if (spawnSync(process.execPath, [path.join(ROOT, 'bench', 'channel.mjs')], { stdio: 'inherit', cwd: ROOT }).status !== 0) process.exitCode = 1 // channel rows: bench/channel.mjs
