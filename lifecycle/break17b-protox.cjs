// Object.prototype.x getter: env_stopping() reads "x" of a fresh object inside the buffer finalizer.
const path = require('node:path'); const fs = require('node:fs')
const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
const maps = (n) => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(n)).length
const gc = () => (globalThis.gc ? globalThis.gc() : Bun.gc(true))
let calls = 0
Object.defineProperty(Object.prototype, 'x', { configurable: true, get() { calls++; if (process.env.THROW) throw new Error('getter in finalizer'); return 1 } })
process.on('uncaughtException', (e) => console.log('uncaught:', e.message))
const name = 'nsm-b17-px-' + process.pid
SharedMemory.create(name, 4096).close()
;(async () => {
  for (let i = 0; i < 50; i++) new SharedMemory(name).atomicAdd(0, 1)
  for (let i = 0; i < 10; i++) { gc(); await new Promise((r) => setTimeout(r, 20)) }
  console.log(`getter calls from the finalizer: ${calls}; maps left after 50 dropped unclosed instances + GC: ${maps(name)}`)
  SharedMemory.unlink(name)
})()
