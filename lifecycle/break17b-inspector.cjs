// Grab the hidden witness / atomics view through the in-process inspector (no intrinsic patched).
const path = require('node:path')
const inspector = require('node:inspector')
const { isMainThread, parentPort, Worker, workerData } = require('node:worker_threads')
function post(s, m, p) { return new Promise((res, rej) => s.post(m, p, (e, r) => (e ? rej(e) : res(r)))) }
async function allArrayBuffers() {
  const s = new inspector.Session(); s.connect()
  const proto = await post(s, 'Runtime.evaluate', { expression: 'ArrayBuffer.prototype' })
  const q = await post(s, 'Runtime.queryObjects', { prototypeObjectId: proto.result.objectId })
  await post(s, 'Runtime.callFunctionOn', { objectId: q.objects.objectId, functionDeclaration: 'function () { globalThis.__all = this }' })
  s.disconnect()
  return globalThis.__all
}
if (isMainThread) {
  const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
  const name = 'nsm-b17-in-' + process.pid
  SharedMemory.create(name, 4096).close()
  const w = new Worker(__filename, { workerData: { name, what: process.argv[2] || 'view' } })
  w.on('message', async (m) => {
    if (m.info) return console.log(m.info)
    await new Promise((r) => w.once('exit', r))
    for (let i = 0; i < 4; i++) { gc(); await new Promise((r) => setTimeout(r, 10)) }
    console.log(`got ${m.t.byteLength} bytes from the worker (${m.what}); worker ended; writing...`)
    new Uint8Array(m.t).fill(0x41)
    console.log('survived the write'); SharedMemory.unlink(name)
    for (let i = 0; i < 1000; i++) Buffer.alloc(1 + (i % 64)).fill(1) // stir the heap
    console.log('end')
  })
} else {
  (async () => {
    const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
    const mem = new SharedMemory(workerData.name)
    globalThis.__mem = mem
    mem.atomicLoad(0) // makes the hidden atomics view
    const all = await allArrayBuffers()
    const mine = all.filter((ab) => ab !== mem.buffer)
    parentPort.postMessage({ info: `inspector found ${all.length} ArrayBuffers; lengths of the ones that are not mem.buffer: ${[...new Set(mine.map((a) => a.byteLength))].join(',')}` })
    const want = workerData.what === 'witness' ? 1 : 4096
    const target = mine.find((ab) => ab.byteLength === want && (want === 1 || !all.includes(ab) || true))
    const t = target.transfer()
    parentPort.postMessage({ t, what: workerData.what }, [t])
  })()
}
