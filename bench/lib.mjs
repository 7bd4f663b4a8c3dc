// Shared helpers of the benchmark sections: run tasks with tinybench and reduce the raw
// samples to per-operation statistics.
import { Bench } from 'tinybench'
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const require = createRequire(path.join(ROOT, 'package.json'))

/** Time budget per task and round, in ms (BENCH_TIME_MS overrides). */
export const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000)
/** Rounds per group: tasks run in order, then reversed, and so on (ABBA), against drift. */
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)

export const MiB = 1024 * 1024

/** Loads the addon from the repository root (the release build `npm run build` made). */
export function loadAddon() {
  return require(ROOT)
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
 * Each task: { id, label, role, fn, batch = 1, bytes?, setup?, teardown? }. `fn` performs
 * `batch` operations (so sub-microsecond operations are not drowned by timer overhead);
 * statistics are reported per operation.
 */
export async function runGroup(tasks, { time = TIME_MS, rounds = ROUNDS, iterations = 16 } = {}) {
  const samples = new Map(tasks.map((t) => [t.id, []]))
  const errors = new Map()
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? tasks : [...tasks].reverse()
    const bench = new Bench({
      time,
      iterations,
      warmupTime: Math.min(250, time / 2),
      retainSamples: true,
      timestampProvider: 'hrtimeNow',
      throws: false,
    })
    for (const t of order) bench.add(t.id, t.fn, t.async ? { async: true } : undefined)
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
      samples.get(task.name).push(...res.latency.samples)
    }
    if (process.env.BENCH_VERBOSE) process.stderr.write(`  round ${r + 1}/${rounds} done\n`)
  }
  return tasks.map((t) => {
    const base = { id: t.id, row: t.row, label: t.label, role: t.role, batch: t.batch ?? 1 }
    if (errors.has(t.id)) return { ...base, error: errors.get(t.id) }
    const stats = summarize(samples.get(t.id), t.batch ?? 1)
    if (t.bytes) stats.gib_per_s = t.bytes / (stats.median_ns * 1e-9) / (1024 * 1024 * 1024)
    return { ...base, ...stats }
  })
}
