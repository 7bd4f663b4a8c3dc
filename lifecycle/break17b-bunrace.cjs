const { Worker, isMainThread, parentPort } = require('node:worker_threads')
const V = process.env.V || 'full'
if (!isMainThread) {
  let n = 0
  parentPort.on('message', (m) => { if (m === 'end') process.exit(0); if (process.env.V === 'hold') (globalThis.k ||= []).push(m.t); m.t = null; if (process.env.V !== 'hold' && ++n % 10 === 0) Bun.gc(true) })
} else {
  const { SharedMemory } = require(require('node:path').join(__dirname, '..') + require('node:path').sep)
  const name = 'nsm-b17-br-' + process.pid
  if (V !== 'plain') SharedMemory.create(name, 4096).close()
  const w = new Worker(__filename)
  let sent = 0; const t0 = Date.now(); const keep = []
  ;(async () => {
    while (Date.now() - t0 < 3000) {
      let t
      if (V === 'plain') t = new ArrayBuffer(4096)
      else { const mem = new SharedMemory(name); t = mem.buffer.transfer(); if (V === 'full') keep.push(mem) }
      w.postMessage({ t }, [t]); sent++
      if (sent % 20 === 0) await new Promise((r) => setImmediate(r))
      if (keep.length > 50) keep.splice(0, 25)
    }
    w.postMessage('end'); await new Promise((r) => w.once('exit', r))
    if (V !== 'plain') SharedMemory.unlink(name)
    console.log('survived', V, sent)
  })()
}
