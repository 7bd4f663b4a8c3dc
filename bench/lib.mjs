// Shared helpers of the benchmark sections: run tasks with tinybench and reduce the raw
// samples to per-operation statistics.
import { Bench } from 'tinybench'
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const require = createRequire(path.join(ROOT, 'package.json'))

/** Time budget per task and round, in ms (BENCH_TIME_MS overrides). */
export const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 400)
/**
 * Rounds per group: tasks run in order, then reversed, and so on (ABBA), so that a change in
 * the machine's load hits baseline and target alike (BENCH_ROUNDS overrides).
 */
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6)

export const MiB = 1024 * 1024

/**
 * Loads the addon from the repository root (the release build `npm run build` made), or from
 * BENCH_ADDON (a package directory: a candidate build to compare, e.g. a patched dist/).
 */
export function loadAddon() {
  return require(process.env.BENCH_ADDON ? path.resolve(process.env.BENCH_ADDON) : ROOT)
}

export function segmentName(tag) {
  return `nsm-bench-${tag}-${process.pid}-${Math.random().toString(16).slice(2, 10)}`
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
}

/** Statistics of per-operation times in nanoseconds from samples in ms per iteration. */
export function summarize(samplesMs, batch) {
  const ns = samplesMs.map((s) => (s * 1e6) / batch).sort((a, b) => a - b)
  const median = quantile(ns, 0.5)
  const dev = ns.map((x) => Math.abs(x - median)).sort((a, b) => a - b)
  return {
    median_ns: median,
    mad_ns: quantile(dev, 0.5),
    p25_ns: quantile(ns, 0.25),
    p75_ns: quantile(ns, 0.75),
    p99_ns: quantile(ns, 0.99),
    min_ns: ns[0],
    max_ns: ns[ns.length - 1],
    samples: ns.length,
  }
}

/**
 * Runs a group of tasks with tinybench, ROUNDS times, alternating their order, and merges
 * each task's samples across rounds.
 *
 * Each task: { id, label, role, fn, batch = 1, bytes?, async?, afterEach? }. `fn` performs
 * `batch` operations (so sub-microsecond operations are not drowned by timer overhead);
 * statistics are reported per operation. `afterEach` runs after every sample, outside the
 * timed window. Warm-up (JIT) runs in the first round only. Besides the pooled statistics,
 * each task reports its median per round (`round_medians_ns`), for paired ratios.
 */
export async function runGroup(tasks, { time = TIME_MS, rounds = ROUNDS, iterations = 16 } = {}) {
  const samples = new Map(tasks.map((t) => [t.id, []]))
  const roundMedians = new Map(tasks.map((t) => [t.id, []]))
  const errors = new Map()
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? tasks : [...tasks].reverse()
    const bench = new Bench({
      time,
      iterations,
      warmup: r === 0,
      warmupTime: Math.min(250, time / 2),
      retainSamples: true,
      timestampProvider: 'hrtimeNow',
      throws: false,
    })
    for (const t of order) {
      const opts = {}
      if (t.async) opts.async = true
      if (t.afterEach) opts.afterEach = t.afterEach
      bench.add(t.id, t.fn, opts)
    }
    await bench.run()
    for (const task of bench.tasks) {
      const res = task.result
      if (res.state === 'errored') {
        errors.set(task.name, String(res.error?.stack ?? res.error))
        continue
      }
      if (res.state !== 'completed') {
        errors.set(task.name, `task ended in state ${res.state}`)
        continue
      }
      const pooled = samples.get(task.name)
      for (const x of res.latency.samples) pooled.push(x) // (spread would overflow the stack)
      const batch = tasks.find((t) => t.id === task.name).batch ?? 1
      roundMedians.get(task.name).push((res.latency.p50 * 1e6) / batch)
    }
    if (process.env.BENCH_VERBOSE) process.stderr.write(`  round ${r + 1}/${rounds} done\n`)
  }
  return tasks.map((t) => {
    const base = { id: t.id, row: t.row, label: t.label, role: t.role, batch: t.batch ?? 1 }
    if (errors.has(t.id)) return { ...base, error: errors.get(t.id) }
    const stats = summarize(samples.get(t.id), t.batch ?? 1)
    stats.round_medians_ns = roundMedians.get(t.id)
    if (t.bytes) stats.gib_per_s = t.bytes / (stats.median_ns * 1e-9) / (1024 * 1024 * 1024)
    return { ...base, ...stats }
  })
}
