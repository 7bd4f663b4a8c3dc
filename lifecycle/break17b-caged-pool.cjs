const path = require('node:path')
const { SharedMemory } = require(path.join(__dirname, '..') + path.sep)
const name = 'nsm-b17-pool-' + process.pid
const pool = Buffer.allocUnsafe(1).buffer
const Orig = ArrayBuffer
globalThis.ArrayBuffer = function (n) { return n === pool.byteLength ? pool : new Orig(n) }
let mem
try { mem = SharedMemory.create(name, pool.byteLength) } finally { globalThis.ArrayBuffer = Orig }
console.log('caged:', mem.requiresCopy, 'buffer is the Buffer pool:', mem.buffer === pool)
mem.close(); SharedMemory.unlink(name)
console.log('pool byteLength after close:', pool.byteLength, 'Buffer.from works:', (() => { try { return Buffer.from('hello').toString() } catch (e) { return e.message } })())
