'use strict'
// Witness confusion: a worker reaches the hidden 1-byte witness through the in-process inspector,
// detaches it (transfer() and drop) and collects, so the witness is finalized early and records
// "ATTACHED" while the buffer is still here; then it moves mem.buffer to main and ends. The
// buffer's finalizer trusts the stale verdict and unmaps under main.
//   node --expose-gc lifecycle/break17b-witness-early.cjs
const path = require('node:path')
const inspector = require('node:inspector')
const { isMainThread, parentPort, Worker, workerData } = require('node:worker_threads')
const post = (s, m, p) => new Promise((res, rej) => s.post(m, p, (e, r) => (e ? rej(e) : res(r))))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
if (isMainThread) {
  const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
  const name = 'nsm-b17-we-' + process.pid
  SharedMemory.create(name, 4096).close()
  const w = new Worker(__filename, { workerData: { name } })
  w.on('message', async (m) => {
    if (m.info) return console.log(m.info)
    await new Promise((r) => w.once('exit', r))
    for (let i = 0; i < 4; i++) { gc(); await sleep(10) }
    console.log(`main: got mem.buffer (${m.t.byteLength} bytes); the worker ended; writing...`)
    new Uint8Array(m.t).fill(7)
    console.log('main: survived the write')
    SharedMemory.unlink(name)
  })
} else {
  ;(async () => {
    const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
    const before = new Set()
    {
      const s = new inspector.Session(); s.connect()
      const proto = await post(s, 'Runtime.evaluate', { expression: 'ArrayBuffer.prototype' })
      const q = await post(s, 'Runtime.queryObjects', { prototypeObjectId: proto.result.objectId })
      await post(s, 'Runtime.callFunctionOn', { objectId: q.objects.objectId, functionDeclaration: 'function () { globalThis.__all = this }' })
      s.disconnect()
      for (const ab of globalThis.__all) before.add(ab)
    }
    const mem = new SharedMemory(workerData.name)
    globalThis.__mem = mem
    const s = new inspector.Session(); s.connect()
    const proto = await post(s, 'Runtime.evaluate', { expression: 'ArrayBuffer.prototype' })
    const q = await post(s, 'Runtime.queryObjects', { prototypeObjectId: proto.result.objectId })
    await post(s, 'Runtime.callFunctionOn', { objectId: q.objects.objectId, functionDeclaration: 'function () { globalThis.__all = this }' })
    s.disconnect()
    const fresh = globalThis.__all.filter((ab) => !before.has(ab) && ab !== mem.buffer && ab.byteLength === 1)
    globalThis.__all = null
    parentPort.postMessage({ info: `worker: ${fresh.length} new 1-byte ArrayBuffer(s) since the package made its buffer (the witness)` })
    for (const ab of fresh) ab.transfer() // detached; the moved copy is dropped at once
    for (let i = 0; i < 6; i++) { gc(); await sleep(10) } // its backing store goes: witness_finalized runs now
    const t = mem.buffer.transfer()
    parentPort.postMessage({ t }, [t])
    // …and the worker ends by itself.
  })()
}
