// Row 5: 100k open/close cycles of a 4 KiB segment; RSS and open fds before/after.
// Usage: node --expose-gc bench/cycles.mjs OUT.json [zero-copy|caged|fs] [sync|yield] [cycles]
//   fs: control, fs.openSync + fs.closeSync of the segment's /dev/shm file (no addon call)
//   sync:  one tight synchronous loop (the event loop never turns until the end)
//   yield: batches of 1000 cycles with a setImmediate turn between batches (a server's life)
// A second run of as many cycles follows: growth there tells a leak from a high-water mark.
import * as fs from 'node:fs'
import { loadAddon, segmentName } from './lib.mjs'

const [out, mode = 'zero-copy', loop = 'sync', cyclesArg = '100000'] = process.argv.slice(2)
const CYCLES = Number(cyclesArg)
if (typeof gc !== 'function') throw new Error('run with --expose-gc')
if (mode === 'caged') process.env.NODE_SHARED_MEM_FORCE_COPY = '1'
else delete process.env.NODE_SHARED_MEM_FORCE_COPY

const { SharedMemory } = loadAddon()
const name = segmentName(`cyc-${mode}`)

const turn = () => new Promise((r) => setImmediate(r))
// Full GCs with event-loop turns between them: Node runs Node-API finalizers from the loop.
async function settle() {
  for (let i = 0; i < 4; i++) {
    gc()
    await turn()
  }
  gc()
}
const fds = () => fs.readdirSync('/proc/self/fd').length
const rss = () => process.memoryUsage.rss()
const snap = () => ({ rss: rss(), fds: fds() })

const file = `/dev/shm/${name}`
const one = mode === 'fs' ? () => fs.closeSync(fs.openSync(file, 'r+')) : () => new SharedMemory(name).close()
async function cycles(n) {
  if (loop === 'sync') {
    for (let i = 0; i < n; i++) one()
  } else {
    for (let done = 0; done < n; done += 1000) {
      for (let i = 0; i < 1000; i++) one()
      await turn()
    }
  }
}

const creator = SharedMemory.create(name, 4096)
try {
  // Warm up: addon code paths and JIT, before the "before" figures.
  await cycles(1000)
  const probe = new SharedMemory(name)
  const requiresCopy = mode === 'fs' ? null : probe.requiresCopy
  probe.close()
  await settle()
  const before = snap()
  const t0 = process.hrtime.bigint()
  await cycles(CYCLES)
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6
  const peak = snap() // before any GC or loop turn
  await settle()
  const after = snap()
  await cycles(CYCLES)
  await settle()
  const after2 = snap()
  fs.writeFileSync(
    out,
    JSON.stringify({
      mode, loop, requiresCopy, cycles: CYCLES, before, peak, after, after2, elapsedMs,
      rssGrowth: after.rss - before.rss, fdDelta: after.fds - before.fds,
      rssGrowthSecond: after2.rss - after.rss, fdDeltaSecond: after2.fds - after.fds,
    }),
  )
} finally {
  creator.close()
  SharedMemory.unlink(name)
}
