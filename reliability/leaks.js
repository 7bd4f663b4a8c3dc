'use strict'
// Leak soak (run with --expose-gc):  node --expose-gc reliability/leaks.js <openClose> <unclosed>
// Opens and closes a segment <openClose> times, then leaves <unclosed> instances unclosed, drops
// them and forces GC; reports open fds, /proc/self/maps entries and RSS at each stage and
// asserts that fds and mappings return to the baseline.
const fs = require('node:fs')
const { SharedMemory } = require('..')
const { uniqueName, report } = require('./lib')

const N = Number(process.argv[2] ?? 100000)
const M = Number(process.argv[3] ?? 10000)
const FORCED = process.env.NODE_SHARED_MEM_FORCE_COPY === '1'
if (typeof gc !== 'function') { console.error('run with --expose-gc'); process.exit(2) }

const fds = () => fs.readdirSync('/proc/self/fd').length
const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean).length
const shmMaps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/dev/shm/nsm-rel-leak')).length
const rss = () => process.memoryUsage().rss
const snap = () => ({ fds: fds(), maps: maps(), shmMaps: shmMaps(), rssMiB: +(rss() / 2 ** 20).toFixed(1) })
async function collect(rounds = 6) {
  for (let i = 0; i < rounds; i++) { gc(); await new Promise(setImmediate) }
}

function holdAndDrop(name, count) {
  const held = []
  for (let i = 0; i < count; i++) {
    const m = new SharedMemory(name)
    held.push(m.buffer.byteLength) // touch `buffer`: in zero-copy mode it holds the mapping too
    held[i] = m
  }
  return snap()
}

async function main() {
  const name = uniqueName('leak')
  const owner = SharedMemory.create(name, 65536)
  try {
    // Warm up lazily-initialised state (module code, V8 caches) before the baseline.
    for (let i = 0; i < 200; i++) { const m = new SharedMemory(name); m.close() }
    await collect()
    const baseline = snap()

    const t0 = Date.now()
    for (let i = 0; i < N; i++) {
      const m = new SharedMemory(name)
      const v = new Uint8Array(m.buffer)
      v[i & 0xffff] = i & 0xff
      if (m.requiresCopy) m.copyTo(i & 0xffff, i & 0xffff, 1)
      m.close()
    }
    const openCloseMs = Date.now() - t0
    await collect()
    const afterOpenClose = snap()

    // Created and dropped inside a function of its own so that no local of this frame keeps
    // the last instance reachable.
    const whileHeld = holdAndDrop(name, M)
    let rounds = 0
    let afterGc = snap()
    // Finalizers run over a few GC cycles; give them up to 40 rounds.
    while (rounds < 40 && (afterGc.fds > baseline.fds || afterGc.shmMaps > baseline.shmMaps)) {
      await collect(1); rounds++
      afterGc = snap()
    }
    const failures = []
    if (afterOpenClose.fds !== baseline.fds) failures.push(`fds after ${N} open/close: ${afterOpenClose.fds} != baseline ${baseline.fds}`)
    if (afterOpenClose.shmMaps !== baseline.shmMaps) failures.push(`segment mappings after open/close: ${afterOpenClose.shmMaps} != ${baseline.shmMaps}`)
    if (whileHeld.fds < baseline.fds + M || whileHeld.shmMaps < baseline.shmMaps + M) failures.push(`measurement broken: holding ${M} instances shows fds ${whileHeld.fds}, mappings ${whileHeld.shmMaps}`)
    if (afterGc.fds !== baseline.fds) failures.push(`fds after dropping ${M} unclosed + GC: ${afterGc.fds} != baseline ${baseline.fds}`)
    if (afterGc.shmMaps !== baseline.shmMaps) failures.push(`segment mappings after GC: ${afterGc.shmMaps} != ${baseline.shmMaps}`)
    // The total count of /proc/self/maps entries is reported, not asserted: it also counts V8
    // heap pages and malloc arenas, which grow with the 10k caged copies and are kept by the
    // allocator. The segment mappings (asserted above) are the ones the addon owns.
    report({ kind: 'leaks', mode: FORCED ? 'copy' : 'zero-copy', openClose: N, unclosed: M, openCloseMs, perOpenCloseUs: +((openCloseMs * 1000) / Math.max(N, 1)).toFixed(1), gcRounds: rounds + 6, baseline, afterOpenClose, whileHeld, afterGc, failure: failures.join('; ') || null })
    process.exitCode = failures.length ? 1 : 0
  } finally {
    owner.close()
    SharedMemory.unlink(name)
  }
}
main()
