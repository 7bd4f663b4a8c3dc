'use strict'
// Cross-process concurrency checks.
//   node reliability/concurrency.js counter <total> [procs]   procs processes add 1 to one Int32
//        <total> times in all: Atomics.add on new Int32Array(mem.buffer) in zero-copy mode,
//        mem.atomicAdd in caged mode → the final value must be exactly <total>.
//   node reliability/concurrency.js handoff <count>           two processes pass a turn back and
//        forth <count> times with wait/notify; a wait that times out while it is still not our
//        turn is a lost wakeup. The parent's timeout (run.js) turns a hang into a failure.
const { spawn } = require('node:child_process')
const { SharedMemory } = require('..')
const { uniqueName, report } = require('./lib')

const FORCED = process.env.NODE_SHARED_MEM_FORCE_COPY === '1'
const [role, ...rest] = process.argv.slice(2)
const WAIT_MS = 10000 // one wait longer than this while not our turn = lost wakeup

function child(args) {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [__filename, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.on('close', (code, signal) => resolve({ code, signal, out }))
  })
}

// Offsets: 0 counter / turn, 4 start flag, 8 ready count.
function barrier(mem) {
  mem.atomicAdd(8, 1)
  mem.notify(8)
  while (mem.atomicLoad(4) === 0) mem.wait(4, 0, 1000)
}
async function startAll(mem, procs, args) {
  const runs = Array.from({ length: procs }, (_, i) => child([...args, String(i)]))
  const t0 = Date.now()
  let ready
  while ((ready = mem.atomicLoad(8)) < procs) {
    await mem.waitAsync(8, ready, 1000)
    if (Date.now() - t0 > 60000) throw new Error(`only ${mem.atomicLoad(8)} of ${procs} workers started`)
  }
  const start = process.hrtime.bigint()
  mem.atomicStore(4, 1)
  mem.notify(4)
  const results = await Promise.all(runs)
  return { results, ms: Number(process.hrtime.bigint() - start) / 1e6 }
}

async function main() {
  if (role === 'counter') {
    const total = Number(rest[0] ?? 1000000)
    const procs = Number(rest[1] ?? 8)
    const name = uniqueName('ctr')
    const mem = SharedMemory.create(name, 4096)
    try {
      const per = Math.floor(total / procs)
      const extra = total - per * procs
      const { results, ms } = await startAll(mem, procs, ['counter-worker', name, String(per), String(extra)])
      const bad = results.filter((r) => r.code !== 0 || r.signal)
      const sum = mem.atomicLoad(0) >>> 0
      const failure = bad.length ? `workers failed: ${bad.map((r) => r.signal ?? r.code).join(',')}`
        : sum !== total ? `counter is ${sum}, expected ${total} (lost ${total - sum} increments)` : null
      report({ kind: 'counter', mode: FORCED ? 'copy' : 'zero-copy', via: FORCED ? 'mem.atomicAdd' : 'Atomics.add', procs, total, sum, ms: Math.round(ms), failure })
      process.exitCode = failure ? 1 : 0
    } finally { mem.close(); SharedMemory.unlink(name) }
  } else if (role === 'counter-worker') {
    const [name, perS, extraS, idxS] = rest
    const mem = new SharedMemory(name)
    const n = Number(perS) + (Number(idxS) === 0 ? Number(extraS) : 0)
    barrier(mem)
    if (mem.requiresCopy) {
      for (let i = 0; i < n; i++) mem.atomicAdd(0, 1)
    } else {
      const v = new Int32Array(mem.buffer)
      for (let i = 0; i < n; i++) Atomics.add(v, 0, 1)
    }
    mem.close()
  } else if (role === 'handoff') {
    const count = Number(rest[0] ?? 1000000)
    const name = uniqueName('hof')
    const mem = SharedMemory.create(name, 4096)
    try {
      const { results, ms } = await startAll(mem, 2, ['handoff-worker', name, String(count)])
      const bad = results.filter((r) => r.code !== 0 || r.signal)
      const final = mem.atomicLoad(0)
      const lost = results.map((r) => r.out.trim()).filter(Boolean)
      const failure = bad.length ? `workers failed (${bad.map((r) => r.signal ?? r.code).join(',')}): ${lost.join(' | ')}`
        : final !== count ? `turn counter ${final}, expected ${count}` : null
      report({ kind: 'handoff', mode: FORCED ? 'copy' : 'zero-copy', handoffs: count, final, ms: Math.round(ms), usPerHandoff: +((ms * 1000) / count).toFixed(2), failure })
      process.exitCode = failure ? 1 : 0
    } finally { mem.close(); SharedMemory.unlink(name) }
  } else if (role === 'handoff-worker') {
    const [name, countS, idxS] = rest
    const count = Number(countS)
    const me = Number(idxS) // 0 moves on even values, 1 on odd
    const mem = new SharedMemory(name)
    const view = mem.requiresCopy ? null : new Int32Array(mem.buffer)
    const load = view ? () => Atomics.load(view, 0) : () => mem.atomicLoad(0)
    const store = view ? (v) => Atomics.store(view, 0, v) : (v) => mem.atomicStore(0, v)
    barrier(mem)
    let v
    for (;;) {
      v = load()
      if (v >= count) break
      if ((v & 1) !== me) {
        const r = mem.wait(0, v, WAIT_MS)
        if (r === 'timed-out' && load() === v) {
          console.log(`lost wakeup: process ${me} waited ${WAIT_MS} ms at turn ${v}`)
          process.exit(3)
        }
        continue
      }
      store(v + 1)
      mem.notify(0)
    }
    mem.close()
  } else {
    console.error('usage: concurrency.js counter|handoff N'); process.exit(2)
  }
}
main().catch((e) => { console.error(e); process.exit(1) })
