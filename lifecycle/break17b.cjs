'use strict'
// Hostile-review attacks on the worker-teardown ownership (issue 17, branch break17b).
//   node --expose-gc lifecycle/break17b.cjs <attack>      (bun: bun lifecycle/break17b.cjs <attack>)
// Each attack prints "RESULT <attack>: ..." on survival; a crash shows as the signal.
const fs = require('node:fs')
const path = require('node:path')
const { isMainThread, parentPort, workerData, Worker, MessageChannel } = require('node:worker_threads')
const ROOT = path.join(__dirname, '..')
const lib = () => require(ROOT + path.sep)
const RT = typeof Bun !== 'undefined' ? 'bun' : typeof Deno !== 'undefined' ? 'deno' : 'node'
const gc = () => (globalThis.gc ? globalThis.gc() : globalThis.Bun?.gc(true))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function gcHard(n = 4) {
  for (let i = 0; i < n; i++) {
    gc()
    await new Promise((r) => setImmediate(r))
    await sleep(10)
  }
}
function mapsOf(name) {
  const want = '/dev/shm/' + name
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(' ' + want) || l.endsWith(' ' + want + ' (deleted)')).length
}
const uniq = (t) => `nsm-b17-${process.pid}-${t}-${Math.random().toString(16).slice(2, 8)}`
function spawnW(role, data, extra = {}) {
  const w = new Worker(__filename, { workerData: { role, ...data }, ...extra })
  w.exitP = new Promise((r) => w.once('exit', r)) // attached at once: 'exit' may follow the last message in one tick
  return w
}
function once(w, pred = () => true) {
  return new Promise((res, rej) => {
    const f = (m) => {
      if (pred(m)) {
        w.off('message', f)
        res(m)
      }
    }
    w.on('message', f)
    w.once('error', rej)
  })
}
const exited = (w) => w.exitP
function moveOut(ab) {
  return typeof ab.transfer === 'function' ? ab.transfer() : ab
}

// ------------------------------------------------------------------- worker roles
const ROLES = {
  // Steals the hidden atomics view by patching Atomics.load, moves it to the parent, ends.
  async stealView({ name }) {
    let stolen
    const orig = Atomics.load
    Atomics.load = function (v, i) {
      stolen = v
      return orig(v, i)
    }
    const { SharedMemory } = lib()
    const mem = new SharedMemory(name)
    globalThis.__mem = mem
    mem.atomicLoad(0)
    Atomics.load = orig
    if (!stolen) return parentPort.postMessage({ type: 'nosteal' })
    const t = moveOut(stolen.buffer)
    parentPort.postMessage({ type: 'moved', t, len: t.byteLength }, [t])
  },
  // Grandchild creates, moves its buffer to its parent (worker A), which moves it to main.
  async nestA({ name }) {
    const b = spawnW('nestB', { name })
    const m = await once(b)
    const t = moveOut(m.t)
    parentPort.postMessage({ type: 'moved', t }, [t])
    await exited(b)
  },
  async nestB({ name }) {
    const { SharedMemory } = lib()
    const mem = new SharedMemory(name)
    globalThis.__mem = mem
    const t = moveOut(mem.buffer)
    parentPort.postMessage({ type: 'moved', t }, [t])
  },
  // Owner: sends its buffer through a MessagePort to a third worker and ends.
  async portOwner({ name, port }) {
    const { SharedMemory } = lib()
    const mem = new SharedMemory(name)
    globalThis.__mem = mem
    const t = moveOut(mem.buffer)
    port.postMessage({ t }, [t])
  },
  async portHolder({ port }) {
    port.once('message', ({ t }) => {
      globalThis.__t = t
      parentPort.postMessage({ type: 'got', len: t.byteLength })
      parentPort.on('message', async (m) => {
        if (m === 'write') {
          await gcHard()
          new Uint8Array(t).fill(7, 0, 64)
          parentPort.postMessage({ type: 'wrote', v: new Uint8Array(t)[5] })
        } else process.exit(0)
      })
    })
  },
  // Transfers in a FinalizationRegistry callback, in beforeExit, and in exit.
  async lateMoves({ name }) {
    const { SharedMemory } = lib()
    const mems = [0, 1, 2].map(() => new SharedMemory(name))
    globalThis.__mems = mems
    const reg = new FinalizationRegistry(() => {
      const t = moveOut(mems[0].buffer)
      parentPort.postMessage({ type: 'moved', tag: 'fr', t }, [t])
    })
    reg.register({}, 0)
    gc()
    process.once('beforeExit', () => {
      const t = moveOut(mems[1].buffer)
      parentPort.postMessage({ type: 'moved', tag: 'beforeExit', t }, [t])
    })
    process.on('exit', () => {
      const t = moveOut(mems[2].buffer)
      parentPort.postMessage({ type: 'moved', tag: 'exit', t }, [t])
    })
  },
  // Process.exit mid-transfer: posts and exits at once.
  async exitMidTransfer({ name, n }) {
    const { SharedMemory } = lib()
    for (let i = 0; i < n; i++) {
      const mem = new SharedMemory(name)
      const t = moveOut(mem.buffer)
      parentPort.postMessage({ type: 'moved', t }, [t])
    }
    process.exit(0)
  },
  // Posts for ever (terminate() races with it).
  async postLoop({ name }) {
    const { SharedMemory } = lib()
    for (;;) {
      const mem = new SharedMemory(name)
      const t = moveOut(mem.buffer)
      parentPort.postMessage({ type: 'moved', t }, [t])
      if (Math.random() < 0.3) mem.close()
      await null
    }
  },
  // Many segments, views kept, some moved, same segment opened twice.
  async many({ names }) {
    const { SharedMemory } = lib()
    const keep = []
    for (const [i, name] of names.entries()) {
      const a = new SharedMemory(name)
      const b = new SharedMemory(name) // same segment twice
      keep.push(new Uint8Array(a.buffer), new Int32Array(b.buffer, 4))
      if (i % 2 === 0) {
        const t = moveOut(b.buffer)
        parentPort.postMessage({ type: 'moved', i, t }, [t])
      }
      a.atomicAdd(0, 1) // makes the hidden atomics view
      b.atomicAdd(4, 1)
      if (i % 3 === 0) a.close()
    }
    globalThis.__keep = keep
    gc()
  },
  // Receives buffers from main and drops + collects them while main is busy in Node-API calls.
  async sink() {
    let n = 0
    parentPort.on('message', async (m) => {
      if (m === 'end') return process.exit(0)
      new Uint8Array(m.t)[0]++
      m.t = null
      if (++n % 10 === 0) {
        gc()
        parentPort.postMessage({ type: 'ack', n })
      }
    })
  },
  async writer() {
    parentPort.once('message', async ({ t }) => {
      const u = new Uint8Array(t)
      parentPort.postMessage('got')
      await new Promise((r) => parentPort.once('message', r))
      u[0] = 1
      parentPort.postMessage('wrote')
    })
  },
  // Keeps only a Uint8Array over the buffer, drops instance and buffer, GC, exits.
  async viewOnly({ name }) {
    const { SharedMemory } = lib()
    let mem = new SharedMemory(name)
    globalThis.__v = new Uint8Array(mem.buffer, 8, 8)
    mem = null
    for (let i = 0; i < 5; i++) gc()
    parentPort.postMessage({ type: 'ready' })
  },
}

// ------------------------------------------------------------------- attacks (main thread)
const ATTACKS = {
  // The atomics view has no witness (seen: None): unmapped at teardown even if moved.
  async 'steal-view-worker-exit'() {
    const { SharedMemory } = lib()
    const name = uniq('sv')
    const mem = SharedMemory.create(name, 4096)
    mem.close()
    const w = spawnW('stealView', { name })
    const m = await once(w)
    await exited(w)
    if (m.type !== 'moved') return `worker: ${m.type}`
    await gcHard()
    console.log(`got ${m.len} bytes; maps=${mapsOf(name)}; writing...`)
    new Uint8Array(m.t)[0] = 1
    SharedMemory.unlink(name)
    return `wrote into the stolen atomics view after its worker ended (maps=${mapsOf(name)})`
  },
  // Same steal on the main thread, then close(): close unmaps (buffer still attached).
  async 'steal-view-close'() {
    const { SharedMemory } = lib()
    const name = uniq('sc')
    const mem = SharedMemory.create(name, 4096)
    let stolen
    const orig = Atomics.load
    Atomics.load = (v, i) => ((stolen = v), orig(v, i))
    mem.atomicLoad(0)
    Atomics.load = orig
    mem.close()
    SharedMemory.unlink(name)
    console.log(`stolen view length after close: ${stolen?.length}; writing...`)
    stolen[0] = 1
    return 'survived'
  },
  // The %TypedArray%.prototype.buffer getter decides which buffer close() detaches.
  async 'buffer-getter-close'() {
    const { SharedMemory } = lib()
    const name = uniq('bg')
    const mem = SharedMemory.create(name, 4096)
    const TA = Object.getPrototypeOf(Int32Array.prototype)
    let view
    const origAL = Atomics.load
    Atomics.load = (v, i) => ((view = v), origAL(v, i))
    mem.atomicLoad(0)
    Atomics.load = origAL
    const d = Object.getOwnPropertyDescriptor(TA, 'buffer')
    Object.defineProperty(TA, 'buffer', { get() { return new ArrayBuffer(8) }, configurable: true })
    mem.close()
    Object.defineProperty(TA, 'buffer', d)
    SharedMemory.unlink(name)
    console.log(`view.length after close: ${view.length}`)
    view[0] = 1
    return 'survived'
  },
  async 'nested-two-levels'() {
    const { SharedMemory } = lib()
    const name = uniq('ne')
    SharedMemory.create(name, 4096).close()
    const w = spawnW('nestA', { name })
    const m = await once(w)
    await exited(w)
    await gcHard()
    new Uint8Array(m.t).fill(9, 0, 16)
    const before = mapsOf(name)
    const len = m.t.byteLength
    m.t = null
    await gcHard(8)
    SharedMemory.unlink(name)
    return `moved up two levels, both workers ended, written OK (len ${len}); maps with it held ${before}, after drop+GC ${mapsOf(name)}`
  },
  async 'port-to-third-worker'() {
    const { SharedMemory } = lib()
    const name = uniq('pt')
    SharedMemory.create(name, 4096).close()
    const { port1, port2 } = new MessageChannel()
    const c = spawnW('portHolder', { port: port2 }, { transferList: [port2] })
    const a = spawnW('portOwner', { name, port: port1 }, { transferList: [port1] })
    const got = await once(c, (m) => m.type === 'got')
    await exited(a)
    await gcHard()
    c.postMessage('write')
    const wrote = await once(c, (m) => m.type === 'wrote')
    c.postMessage('end')
    await exited(c)
    await gcHard()
    SharedMemory.unlink(name)
    return `owner A ended, C (got ${got.len}) wrote ${wrote.v}; maps after C ended + GC: ${mapsOf(name)}`
  },
  async 'late-moves'() {
    const { SharedMemory } = lib()
    const name = uniq('lm')
    SharedMemory.create(name, 4096).close()
    const w = spawnW('lateMoves', { name })
    const got = []
    w.on('message', (m) => got.push(m))
    await exited(w)
    await sleep(50)
    await gcHard()
    for (const m of got) new Uint8Array(m.t).fill(3, 0, 16)
    SharedMemory.unlink(name)
    return `moves received: ${got.map((m) => `${m.tag}(${m.t.byteLength})`).join(', ') || 'none'}; all written`
  },
  async 'exit-mid-transfer'() {
    const { SharedMemory } = lib()
    const name = uniq('em')
    SharedMemory.create(name, 4096).close()
    let total = 0
    for (let k = 0; k < 10; k++) {
      const w = spawnW('exitMidTransfer', { name, n: 5 })
      const got = []
      w.on('message', (m) => got.push(m))
      await exited(w)
      await sleep(20)
      await gcHard(1)
      for (const m of got) new Uint8Array(m.t).fill(3, 0, 16)
      total += got.length
    }
    SharedMemory.unlink(name)
    return `10 workers × 5 posts then process.exit(0): ${total} buffers arrived, all written; maps held ${mapsOf(name)}`
  },
  async 'terminate-during-post'() {
    const { SharedMemory } = lib()
    const name = uniq('tp')
    SharedMemory.create(name, 4096).close()
    let total = 0
    for (let k = 0; k < 15; k++) {
      const w = spawnW('postLoop', { name })
      const got = []
      w.on('message', (m) => got.push(m))
      await once(w)
      await sleep(k * 3)
      await w.terminate()
      await sleep(10)
      await gcHard(1)
      for (const m of got) new Uint8Array(m.t).fill(3, 0, 16)
      total += got.length
    }
    SharedMemory.unlink(name)
    return `15 workers posting in a loop, terminate()d: ${total} buffers received, all written`
  },
  async 'many-gc-pressure'() {
    const { SharedMemory } = lib()
    const names = Array.from({ length: 40 }, (_, i) => uniq('mg' + i))
    for (const n of names) SharedMemory.create(n, 1 << 20).close()
    const w = spawnW('many', { names })
    const got = []
    w.on('message', (m) => got.push(m))
    await exited(w)
    await gcHard()
    for (const m of got) new Uint8Array(m.t).fill(1, 0, 1 << 20)
    const held = names.reduce((s, n) => s + mapsOf(n), 0)
    got.length = 0
    await gcHard(8)
    const after = names.reduce((s, n) => s + mapsOf(n), 0)
    for (const n of names) SharedMemory.unlink(n)
    return `40 × 1 MiB, opened twice each in a worker, 20 moved here; wrote all; maps held ${held}, after drop+GC ${after}`
  },
  // Main-made buffers released on the receiving worker's thread while main runs Node-API calls.
  async 'm2w-release-race'() {
    const { SharedMemory } = lib()
    const name = uniq('mr')
    SharedMemory.create(name, 4096).close()
    const w = spawnW('sink', {})
    let acks = 0
    w.on('message', () => acks++)
    const keep = []
    const t0 = Date.now()
    let sent = 0
    while (Date.now() - t0 < 4000) {
      const mem = new SharedMemory(name)
      const t = moveOut(mem.buffer)
      w.postMessage({ t }, [t])
      sent++
      if (sent % 3 === 0) mem.close()
      else keep.push(mem)
      for (let i = 0; i < 200; i++) keep[keep.length - 1]?.atomicAdd(8, 1)
      if (keep.length > 50) keep.splice(0, 25)
      if (sent % 20 === 0) await new Promise((r) => setImmediate(r))
    }
    w.postMessage('end')
    await exited(w)
    await gcHard()
    keep.length = 0
    await gcHard(6)
    const n = mapsOf(name)
    SharedMemory.unlink(name)
    return `${sent} buffers main → worker, dropped there while main called atomics; acks ${acks}; maps left ${n}`
  },
  // Main steals its own atomics view, moves it to a worker, then close(): the view was moved, the
  // buffer was not, so close() unmaps under the worker.
  async 'steal-view-transfer-close'() {
    const { SharedMemory } = lib()
    const name = uniq('st')
    const mem = SharedMemory.create(name, 4096)
    let stolen
    const orig = Atomics.load
    Atomics.load = (v, i) => ((stolen = v), orig(v, i))
    mem.atomicLoad(0)
    Atomics.load = orig
    const t = moveOut(stolen.buffer)
    const w = spawnW('writer', {})
    w.postMessage({ t }, [t])
    await once(w)
    mem.close()
    SharedMemory.unlink(name)
    w.postMessage('write')
    await once(w)
    return 'the worker wrote through the moved view after close()'
  },
  async 'view-only-exit'() {
    const { SharedMemory } = lib()
    const name = uniq('vo')
    SharedMemory.create(name, 4096).close()
    const w = spawnW('viewOnly', { name })
    await once(w)
    await exited(w)
    await gcHard()
    const n = mapsOf(name)
    SharedMemory.unlink(name)
    return `worker kept a Uint8Array over the buffer only, dropped instance and buffer, GC, ended: maps ${n}`
  },
}

if (isMainThread) {
  const which = process.argv[2]
  if (!ATTACKS[which]) {
    console.log(Object.keys(ATTACKS).join('\n'))
    process.exit(2)
  }
  ATTACKS[which]().then(
    (r) => console.log(`RESULT ${which} [${RT} ${process.env.NODE_SHARED_MEM_FORCE_COPY === '1' ? 'caged' : 'zero-copy'}]: ${r}`),
    (e) => {
      console.log(`ERROR ${which}: ${e?.stack ?? e}`)
      process.exitCode = 1
    },
  )
} else {
  ROLES[workerData.role](workerData).catch((e) => {
    console.log(`worker ${workerData.role} error: ${e?.stack ?? e}`)
  })
}
