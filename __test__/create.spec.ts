// SharedMemory.create / SharedMemory.unlink, seen from a foreign process.
import test from 'ava'
import { statSync } from 'node:fs'
import { SharedMemory } from '../dist'
import { foreignRead, peer, uniqueName } from './helpers/util'

test('create makes a zero-filled segment that a foreign process can open and read', (t) => {
  const name = uniqueName('create')
  t.teardown(() => SharedMemory.unlink(name))
  const mem = SharedMemory.create(name, 10000)
  t.is(mem.length, 10000)
  t.is(mem.name, name)
  if (mem.requiresCopy) mem.copyFrom()
  t.true(new Uint8Array(mem.buffer!).every((b) => b === 0))
  new Uint8Array(mem.buffer!).set(Buffer.from('made in node'), 9000)
  if (mem.requiresCopy) mem.copyTo(9000, 9000, 12)
  t.is(foreignRead(name, 9000, 12).toString(), 'made in node')
  peer('write', name, 0, '0102')
  if (mem.requiresCopy) mem.copyFrom(0, 0, 2)
  t.deepEqual([...new Uint8Array(mem.buffer!, 0, 2)], [1, 2])
  mem.close()
})

test('created segments are 0600 unless asked otherwise', (t) => {
  const a = uniqueName('mode-a')
  const b = uniqueName('mode-b')
  t.teardown(() => {
    SharedMemory.unlink(a)
    SharedMemory.unlink(b)
  })
  SharedMemory.create(a, 4096).close()
  t.is(statSync(`/dev/shm/${a}`).mode & 0o777, 0o600)
  const old = process.umask(0)
  try {
    SharedMemory.create(b, 4096, { mode: 0o640 }).close()
  } finally {
    process.umask(old)
  }
  t.is(statSync(`/dev/shm/${b}`).mode & 0o777, 0o640)
  t.is(statSync(`/dev/shm/${b}`).size, 4096)
})

test('exclusive create of an existing name is EEXIST; exclusive: false opens it', (t) => {
  const name = uniqueName('excl')
  t.teardown(() => SharedMemory.unlink(name))
  const first = SharedMemory.create(name, 8192)
  first.atomicStore(0, 77)
  const err = t.throws(() => SharedMemory.create(name, 8192)) as NodeJS.ErrnoException
  t.is(err.code, 'EEXIST')
  t.is(err.syscall, 'shm_open')
  const again = SharedMemory.create(name, 4096, { exclusive: false })
  t.is(again.length, 4096, 'maps the length asked for')
  t.is(again.atomicLoad(0), 77, 'the same segment')
  t.is(statSync(`/dev/shm/${name}`).size, 8192, 'never resized')
  first.atomicStore(8188, 0x5a5a5a5a)
  const small = t.throws(() => SharedMemory.create(name, 8193, { exclusive: false }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.regex(small!.message, /existing/, `names the existing segment's size: ${small!.message}`)
  t.is(statSync(`/dev/shm/${name}`).size, 8192, 'a too-small existing segment is never grown')
  t.is(first.atomicLoad(0), 77, 'nor its bytes touched')
  t.is(first.atomicLoad(8188), 0x5a5a5a5a)
  t.throws(() => SharedMemory.create(name, 3 * 8192, { exclusive: false }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.is(statSync(`/dev/shm/${name}`).size, 8192, 'not even by whole pages')
  const fresh = uniqueName('nonexcl-new')
  const made = SharedMemory.create(fresh, 100, { exclusive: false })
  t.is(made.length, 100)
  made.close()
  SharedMemory.unlink(fresh)
  first.close()
  again.close()
})

test('unlink removes the name; mappings stay valid; a second unlink is false', (t) => {
  const name = uniqueName('unlink')
  const mem = SharedMemory.create(name, 4096)
  mem.atomicStore(4, 1234)
  t.true(SharedMemory.unlink(name))
  t.false(SharedMemory.unlink(name))
  t.throws(() => new SharedMemory(name), { code: 'ENOENT' })
  t.is(mem.atomicLoad(4), 1234, 'our mapping still works')
  mem.close()
})

test('create and unlink check their arguments', (t) => {
  const name = uniqueName('args')
  t.throws(() => SharedMemory.create(name, undefined as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  for (const bad of [0, -5, 1.5, NaN, 2 ** 53]) {
    t.throws(() => SharedMemory.create(name, bad), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(bad))
  }
  t.throws(() => SharedMemory.create(name, 10, 'x' as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => SharedMemory.create(name, 10, { mode: -1 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => SharedMemory.create(name, 10, { mode: 0o10000 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => SharedMemory.create(name, 10, { mode: '600' as any }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => SharedMemory.create(name, 10, { exclusive: 1 as any }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  const getter = { get mode(): number { throw new Error('from getter') } }
  t.throws(() => SharedMemory.create(name, 10, getter), { message: 'from getter' })
  for (const bad of ['', 'a/b', 'a\0']) {
    t.throws(() => SharedMemory.create(bad, 10), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
    t.throws(() => SharedMemory.unlink(bad), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  }
  t.throws(() => SharedMemory.unlink(5 as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => new SharedMemory(name), { code: 'ENOENT' }, 'no failed call left a segment behind')
})

if (process.env.NODE_SHARED_MEM_FORCE_COPY !== '1') {
  // (Caged mode would copy all 5 GiB into V8's heap; the zero-copy run covers the cleanup path.)
  test('a create the runtime cannot map (past its largest ArrayBuffer) throws and leaves no name behind', (t) => {
    const name = uniqueName('huge')
    const size = 5 * 2 ** 30 // sparse on tmpfs: no memory is used until touched
    let mem: SharedMemory | undefined
    try {
      mem = SharedMemory.create(name, size)
    } catch (e) {
      t.is(typeof (e as NodeJS.ErrnoException).code, 'string', String(e))
      t.false(SharedMemory.unlink(name), 'the half-made segment was removed')
      return
    }
    // Runtimes whose buffers may exceed 4 GiB (Node >= 22) map it whole.
    t.is(mem.length, size)
    t.is(mem.buffer!.byteLength, size)
    mem.close()
    t.true(SharedMemory.unlink(name))
  })
}
