'use strict'
// Tiny Node smoke for valgrind memcheck: every entry point once, a bad-argument call of each
// kind, close and GC. Kept small: Node under memcheck runs ~50× slower.
const { SharedMemory, MemoryAccess } = require('..')
const name = `nsm-rel-vg-${process.pid}`
process.on('exit', () => { for (const n of [name, name + 'g']) try { SharedMemory.unlink(n) } catch {} })
const m = SharedMemory.create(name, 8192)
const r = new SharedMemory(name, 4096, MemoryAccess.READ)
new Uint8Array(m.buffer).fill(7, 0, 100)
m.copyTo(); m.copyFrom(0, 0, 16); r.copyFrom()
m.atomicStore(0, 5); m.atomicAdd(0, 2); m.atomicCompareExchange(0, 7, 9)
if (m.atomicLoad(0) !== 9 || r.atomicLoad(0) !== 9) throw new Error('atomics wrong')
if (m.wait(0, 1, 0) !== 'not-equal' || m.wait(0, 9, 1) !== 'timed-out') throw new Error('wait wrong')
m.notify(0, 1)
// Each bad call must throw exactly its documented code (a call that does not throw records
// 'no-throw'); the list is checked before 'smoke ok' is printed.
const EXPECTED = ['ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE', 'EACCES', 'EEXIST',
  'ENOENT', 'ERR_SHM_CLOSED', 'ERR_SHM_CLOSED']
let codes = []
for (const f of [() => new SharedMemory(''), () => new SharedMemory(name, -1), () => m.copyFrom(1.5),
  () => m.atomicLoad(3), () => r.copyTo(), () => SharedMemory.create(name, 1), () => new SharedMemory('nope-' + name)]) {
  try { f(); codes.push('no-throw') } catch (e) { codes.push(e.code) }
}
m.atomicStore(4, 0)
const p = m.waitAsync(4, 0)
m.close(); r.close()
p.then((v) => { throw new Error('waitAsync resolved ' + v + ' although close() ran') }, (e) => {
  codes.push(e.code)
  try { m.atomicLoad(0); codes.push('no-throw') } catch (e) { codes.push(e.code) }
  if (codes.join(',') !== EXPECTED.join(',')) throw new Error(`error codes ${codes.join(',')}, expected ${EXPECTED.join(',')}`)
  SharedMemory.unlink(name)
  // Unclosed instance reclaimed by GC.
  ;(() => { const x = SharedMemory.create(name + 'g', 4096); x.buffer })()
  if (global.gc) { gc(); gc() }
  setImmediate(() => { if (global.gc) gc(); SharedMemory.unlink(name + 'g'); console.log('smoke ok ' + codes.join(',')) })
})
