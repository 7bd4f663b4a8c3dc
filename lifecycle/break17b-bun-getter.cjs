const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')
const path = require('node:path'); const fs = require('node:fs')
const lib = () => require(path.join(__dirname, '..') + path.sep)
const maps = (n) => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(n)).length
if (!isMainThread) {
  Object.defineProperty(Object.prototype, 'x', { configurable: true, get() { require('node:fs').writeSync(1, 'getter ran, isMainThread=' + require('node:worker_threads').isMainThread + '\n'); return 1 } })
  const { SharedMemory } = lib()
  const mem = new SharedMemory(workerData)
  globalThis.__mem = mem
  const t = mem.buffer.transfer()
  parentPort.postMessage({ t }, [t])
  parentPort.once('message', () => process.exit(0))
} else {
  const { SharedMemory } = lib()
  const name = 'nsm-b17-w1-' + process.pid
  SharedMemory.create(name, 4096).close()
  const w = new Worker(__filename, { workerData: name })
  w.once('message', async (m) => {
    console.log('main thread', 'maps before', maps(name)); m.t = null
    for (let i = 0; i < 10; i++) { Bun.gc(true); await new Promise((r) => setTimeout(r, 20)) }
    console.log('maps after drop+gc while worker runs', maps(name))
    w.postMessage('end'); await new Promise((r) => w.once('exit', r)); SharedMemory.unlink(name)
  })
}
