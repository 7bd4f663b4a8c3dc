// The witness (1-byte external ArrayBuffer whose byte lives in a Box freed by witness_finalized)
// grabbed through the inspector, moved to main; the worker ends; main reads the byte.
// Run with GLIBC_TUNABLES=glibc.malloc.perturb=85: freed heap memory is filled with 0x55.
const path = require('node:path')
const inspector = require('node:inspector')
const { isMainThread, parentPort, Worker, workerData } = require('node:worker_threads')
const post = (s, m, p) => new Promise((res, rej) => s.post(m, p, (e, r) => (e ? rej(e) : res(r))))
if (isMainThread) {
  const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
  const name = 'nsm-b17-wu-' + process.pid
  SharedMemory.create(name, 4096).close()
  const w = new Worker(__filename, { workerData: { name } })
  w.on('message', async (m) => {
    const before = Array.from(new Uint8Array(m.t)).map((b) => b.toString(16))
    await new Promise((r) => w.once('exit', r))
    const after = Array.from(new Uint8Array(m.t)).map((b) => b.toString(16))
    console.log(`${m.n} one-byte ArrayBuffers moved from the worker; bytes before its end: ${before.join(',')}; after: ${after.join(',')}`)
    SharedMemory.unlink(name)
  })
} else {
  ;(async () => {
    const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
    const mem = process.env.NOADDON ? { buffer: null } : new SharedMemory(workerData.name)
    globalThis.__mem = mem
    const s = new inspector.Session(); s.connect()
    const proto = await post(s, 'Runtime.evaluate', { expression: 'ArrayBuffer.prototype' })
    const q = await post(s, 'Runtime.queryObjects', { prototypeObjectId: proto.result.objectId })
    await post(s, 'Runtime.callFunctionOn', { objectId: q.objects.objectId, functionDeclaration: 'function () { globalThis.__all = this }' })
    s.disconnect()
    const ones = globalThis.__all.filter((ab) => ab.byteLength === 1)
    // Move one 1-byte buffer (WHICH, default 0) that is not V8's own.
    const k = Number(process.env.WHICH || 0)
    const t = ones[k].transfer()
    parentPort.postMessage({ t, n: ones.length }, [t])
  })()
}
