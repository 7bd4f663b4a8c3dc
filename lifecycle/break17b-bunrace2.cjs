// Bun: worker-made buffers moved to main and collected there while the worker runs Node-API calls.
const { Worker, isMainThread, parentPort } = require('node:worker_threads')
const path = require('node:path')
const lib = () => require(path.join(__dirname, '..') + path.sep)
const gc = () => (globalThis.gc ? gc() : Bun.gc(true))
if (!isMainThread) {
  const { SharedMemory } = lib()
  const name = require('node:worker_threads').workerData
  let stop = false
  parentPort.on('message', () => (stop = true))
  ;(async () => {
    const keep = []
    let n = 0
    while (!stop) {
      const mem = new SharedMemory(name)
      const t = mem.buffer.transfer()
      parentPort.postMessage({ t }, [t])
      keep.push(mem)
      if (keep.length > 40) keep.splice(0, 20)
      for (let i = 0; i < 200; i++) mem.atomicAdd(8, 1)
      if (++n % 20 === 0) await new Promise((r) => setImmediate(r))
    }
    process.exit(0)
  })()
} else {
  const { SharedMemory } = lib()
  const name = 'nsm-b17-br2-' + process.pid
  SharedMemory.create(name, 4096).close()
  const w = new Worker(__filename, { workerData: name })
  let got = 0
  w.on('message', (m) => { new Uint8Array(m.t)[0]++; m.t = null; if (++got % 10 === 0) Bun.gc(true) })
  setTimeout(async () => { w.postMessage('stop'); await new Promise((r) => w.once('exit', r)); SharedMemory.unlink(name); console.log('survived, got', got) }, 3000)
}
