// Native atomics on the segment itself; JS Atomics on a zero-copy buffer.
import test from 'ava'
import { SharedMemory } from '../dist'
import { FORCED_COPY, runNode, uniqueName } from './helpers/util'

const ADDER = `
const { SharedMemory } = require('.')
const [name, n, how] = process.argv.slice(1)
const m = new SharedMemory(name)
if (how === 'js') {
  if (m.requiresCopy) { console.error('JS Atomics need zero-copy'); process.exit(2) }
  const a = new Int32Array(m.buffer)
  for (let i = 0; i < Number(n); i++) Atomics.add(a, 1, 1)
} else {
  for (let i = 0; i < Number(n); i++) m.atomicAdd(4, 1)
}
m.close()
`

async function fourAdders(t: any, how: 'native' | 'js', offset: number) {
  const name = uniqueName('adders-' + how)
  const mem = SharedMemory.create(name, 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const results = await Promise.all([0, 1, 2, 3].map(() => runNode(ADDER, [name, '250000', how])))
  for (const r of results) t.is(r.code, 0, r.stderr)
  t.is(mem.atomicLoad(offset), 1_000_000)
  mem.close()
}

test('4 processes × 250k atomicAdd give the exact sum (this run’s mode)', async (t) => {
  await fourAdders(t, 'native', 4)
})

if (!FORCED_COPY) {
  test('4 processes × 250k JS Atomics.add on a zero-copy Int32Array give the exact sum', async (t) => {
    await fourAdders(t, 'js', 4)
  })
} else {
  test('caged: JS Atomics on buffer act on the copy only, never on the segment', (t) => {
    const name = uniqueName('jscopy')
    const mem = SharedMemory.create(name, 64)
    t.teardown(() => SharedMemory.unlink(name))
    t.true(mem.requiresCopy)
    Atomics.add(new Int32Array(mem.buffer!), 0, 5)
    t.is(mem.atomicLoad(0), 0)
    mem.copyTo(0, 0, 4)
    t.is(mem.atomicLoad(0), 5)
    mem.close()
  })
}

test('atomics: load, store, add (wrapping) and compareExchange mean what Atomics means', (t) => {
  const name = uniqueName('atom')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  t.is(mem.atomicStore(12, -7), -7)
  t.is(mem.atomicLoad(12), -7)
  t.is(mem.atomicAdd(12, 10), -7)
  t.is(mem.atomicLoad(12), 3)
  t.is(mem.atomicCompareExchange(12, 4, 100), 3, 'no swap: old value returned')
  t.is(mem.atomicLoad(12), 3)
  t.is(mem.atomicCompareExchange(12, 3, 100), 3, 'swapped')
  t.is(mem.atomicLoad(12), 100)
  mem.atomicStore(12, 2 ** 31 - 1)
  t.is(mem.atomicAdd(12, 1), 2 ** 31 - 1)
  t.is(mem.atomicLoad(12), -(2 ** 31), 'wraps like Int32')
  if (!mem.requiresCopy) t.is(new Int32Array(mem.buffer!)[3], -(2 ** 31), 'same bytes as the zero-copy buffer')
  mem.close()
})

test('atomics check their arguments', (t) => {
  const name = uniqueName('atomargs')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  for (const off of [1, 2, 3, -4, 64, 1e10, NaN]) {
    t.throws(() => mem.atomicLoad(off), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(off))
    t.throws(() => mem.atomicStore(off, 1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(off))
    t.throws(() => mem.atomicAdd(off, 1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(off))
    t.throws(() => mem.atomicCompareExchange(off, 0, 1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(off))
  }
  for (const v of [2 ** 31, -(2 ** 31) - 1, 1.5, NaN, Infinity]) {
    t.throws(() => mem.atomicStore(0, v), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(v))
    t.throws(() => mem.atomicAdd(0, v), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(v))
    t.throws(() => mem.atomicCompareExchange(0, v, 0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(v))
    t.throws(() => mem.atomicCompareExchange(0, 0, v), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(v))
  }
  for (const v of ['1', 1n, null, undefined, {}]) {
    t.throws(() => mem.atomicStore(0, v as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(v))
  }
  t.is(mem.atomicLoad(0), 0, 'no failed call changed anything')
  mem.close()
})
