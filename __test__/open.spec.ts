// Opening segments made by a foreign process (Python), reading and writing them, READ mode,
// errors, close. Runs twice from `npm test`: zero-copy and NODE_SHARED_MEM_FORCE_COPY=1.
import test from 'ava'
import { SharedMemory, MemoryAccess } from '../dist'
import { count } from './helpers/proc'
import { spawnSync } from 'node:child_process'
import { FORCED_COPY, foreignCreate, foreignRead, peer, ROOT, runNode, uniqueName } from './helpers/util'

/** Opens and makes `buffer` current, whatever the mode. */
function openSynced(name: string, length?: number, access?: MemoryAccess): SharedMemory {
  const mem = new SharedMemory(name, length, access)
  if (mem.requiresCopy) mem.copyFrom()
  return mem
}

test('opens a segment created by another process and reads its bytes', (t) => {
  const name = foreignCreate('read', 4096, 100, Buffer.from('hello from python'))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = openSynced(name)
  t.is(mem.requiresCopy, FORCED_COPY)
  t.is(mem.length, 4096, 'length defaults to the real size')
  t.is(mem.name, name)
  t.is(mem.access, MemoryAccess.WRITE)
  t.false(mem.closed)
  t.true(mem.buffer instanceof ArrayBuffer)
  t.is(mem.buffer!.byteLength, 4096)
  t.is(Buffer.from(mem.buffer!, 100, 17).toString(), 'hello from python')
  mem.close()
})

test('the leading slash is optional', (t) => {
  const name = foreignCreate('slash', 4096, 0, Buffer.from([9]))
  t.teardown(() => SharedMemory.unlink(name))
  const a = openSynced('/' + name)
  const b = openSynced(name)
  t.is(new Uint8Array(a.buffer!)[0], 9)
  t.is(new Uint8Array(b.buffer!)[0], 9)
  a.close()
  b.close()
})

test('zero-copy: the buffer shows the peer’s later writes without any copy; caged: only after copyFrom', (t) => {
  const name = foreignCreate('live', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = openSynced(name)
  const view = new Uint8Array(mem.buffer!)
  peer('write', name, 10, 'cafe')
  if (mem.requiresCopy) {
    t.deepEqual([view[10], view[11]], [0, 0], 'the copy does not change by itself')
    mem.copyFrom(10, 10, 2)
  }
  t.deepEqual([view[10], view[11]], [0xca, 0xfe])
  mem.close()
})

test('a write through buffer is seen by the other process', (t) => {
  const name = foreignCreate('write', 8192)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = openSynced(name)
  new Uint8Array(mem.buffer!).set([1, 2, 3, 4], 5000)
  if (mem.requiresCopy) mem.copyTo(5000, 5000, 4)
  t.deepEqual([...foreignRead(name, 5000, 4)], [1, 2, 3, 4])
  mem.close()
})

test('a shorter length maps only that many bytes', (t) => {
  const name = foreignCreate('short', 8192, 99, Buffer.from([7]))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = openSynced(name, 100)
  t.is(mem.length, 100)
  t.is(mem.buffer!.byteLength, 100)
  t.is(new Uint8Array(mem.buffer!)[99], 7)
  mem.close()
})

test('READ: a write into buffer neither crashes nor reaches the segment, and the peer’s writes still show', (t) => {
  const name = foreignCreate('ro', 3 * 4096, 0, Buffer.from('abc'))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name, undefined, MemoryAccess.READ)
  // README: "READ reads are zero-copy" (a private copy-on-write view); caged only when forced.
  t.is(mem.requiresCopy, FORCED_COPY, 'a READ instance is zero-copy unless copying is forced')
  t.is(mem.access, MemoryAccess.READ)
  const view = new Uint8Array(mem.buffer!)
  t.is(view[0], 0x61, 'filled / mapped at open')
  view[0] = 0x7a // local write: must not crash
  t.is(view[0], 0x7a, 'the local copy holds the local write')
  t.deepEqual([...foreignRead(name, 0, 3)], [0x61, 0x62, 0x63], 'the segment is untouched')
  t.is(mem.atomicLoad(0) & 0xff, 0x61, 'native calls read the segment itself')
  // A page this process never wrote follows the segment: in zero-copy mode with NO copyFrom.
  peer('write', name, 2 * 4096, '5a')
  peer('write', name, 4096 + 7, '6b')
  if (FORCED_COPY) {
    t.is(view[2 * 4096], 0, 'caged: the copy does not change by itself')
    mem.copyFrom(2 * 4096, 2 * 4096, 1)
    t.is(view[2 * 4096], 0x5a)
    t.is(view[4096 + 7], 0, 'caged: only the range copied')
  } else {
    t.is(view[2 * 4096], 0x5a, "zero-copy READ: the peer's later write shows without any copy")
    t.is(view[4096 + 7], 0x6b, "zero-copy READ: on every page not written locally")
    t.is(view[0], 0x7a, 'the locally written page keeps the local write')
    peer('write', name, 1, '79')
    t.is(view[1], 0x62, 'a page written locally is private from then on (copy-on-write)')
  }
  mem.close()
})

test('zero-copy: a peer that shrinks the segment does not make copyFrom/copyTo throw (they copy nothing); caged: ERR_SHM_SHRUNK', (t) => {
  const PAGE = 4096
  const name = foreignCreate('shrink', 3 * PAGE, PAGE - 4, Buffer.from([1, 2, 3, 4]))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  t.is(mem.requiresCopy, FORCED_COPY)
  peer('truncate', name, PAGE)
  if (FORCED_COPY) {
    t.throws(() => mem.copyFrom(), { code: 'ERR_SHM_SHRUNK' })
    t.throws(() => mem.copyTo(), { code: 'ERR_SHM_SHRUNK' })
  } else {
    // No guard exists for plain reads of buffer (documented: touching bytes past the new end is
    // SIGBUS), so only the bytes still inside the segment are read here.
    t.notThrows(() => mem.copyFrom())
    t.notThrows(() => mem.copyTo())
    t.deepEqual([...new Uint8Array(mem.buffer!, PAGE - 4, 4)], [1, 2, 3, 4])
  }
  t.is(mem.atomicLoad(PAGE - 4), 0x04030201, 'in-range atomics still work')
  // wait and notify are native calls in both modes, and guarded (crates/shm-core/src/fault.rs).
  t.throws(() => mem.wait(2 * PAGE, 0, 10), { code: 'ERR_SHM_SHRUNK' }, 'wait past the new end')
  t.throws(() => mem.notify(PAGE), { code: 'ERR_SHM_SHRUNK' }, 'notify past the new end')
  t.is(mem.wait(PAGE - 4, 0, 1), 'not-equal')
  mem.close()
})

test('READ: copyTo and the writing atomics throw EACCES and change nothing', (t) => {
  const name = foreignCreate('roapi', 4096, 0, Buffer.from([1, 0, 0, 0]))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = openSynced(name, undefined, MemoryAccess.READ)
  new Uint8Array(mem.buffer!)[0] = 200
  t.throws(() => mem.copyTo(), { code: 'EACCES' })
  t.throws(() => mem.copyTo(0, 0, 1), { code: 'EACCES' })
  t.throws(() => mem.atomicStore(0, 5), { code: 'EACCES' })
  t.throws(() => mem.atomicAdd(0, 5), { code: 'EACCES' })
  t.throws(() => mem.atomicCompareExchange(0, 1, 5), { code: 'EACCES' })
  t.is(mem.atomicLoad(0), 1, 'atomicLoad reads the segment itself')
  t.deepEqual([...foreignRead(name, 0, 4)], [1, 0, 0, 0])
  mem.close()
})

test('buffer is one and the same object on every read', (t) => {
  const name = foreignCreate('same', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  t.is(mem.buffer, mem.buffer)
  mem.close()
})

test('zero-copy copyFrom/copyTo are no-ops that never touch the segment (the original corrupted it)', (t) => {
  const name = foreignCreate('noop', 4096, 0, Buffer.from('0123456789'))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  if (mem.requiresCopy) return t.pass('caged mode: covered by caged.spec.ts')
  mem.copyFrom(0, 1, 5)
  mem.copyTo(0, 1, 5)
  t.is(foreignRead(name, 0, 10).toString(), '0123456789')
  mem.close()
})

test('a missing segment is ENOENT shaped like a Node SystemError', (t) => {
  const name = uniqueName('missing')
  const err = t.throws(() => new SharedMemory(name), { instanceOf: Error }) as NodeJS.ErrnoException
  t.is(err.code, 'ENOENT')
  t.is(err.syscall, 'shm_open')
  t.is(err.errno, -2)
  t.is(err.path, name)
  t.true(err.message.includes(name), err.message)
})

test('bad names are TypeErrors before any syscall', (t) => {
  for (const bad of [undefined, null, 42, 10n, {}, [], Symbol('x'), () => 'x', true]) {
    t.throws(() => new SharedMemory(bad as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(typeof bad))
  }
  for (const bad of ['', '/', 'a/b', '/a/b', '//a', 'a\0b', 'x'.repeat(300)]) {
    t.throws(() => new SharedMemory(bad), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' }, JSON.stringify(bad))
  }
})

test('bad lengths are RangeErrors or TypeErrors, never a clamp or a mapping past the end', (t) => {
  const name = foreignCreate('len', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  for (const bad of [0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 4097, 1e300, -0.5]) {
    t.throws(() => new SharedMemory(name, bad), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(bad))
  }
  for (const bad of ['10', 10n, {}, null, [1], true, { valueOf: () => 10 }]) {
    t.throws(() => new SharedMemory(name, bad as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(bad))
  }
  const ok = new SharedMemory(name, 4096)
  t.is(ok.length, 4096)
  ok.close()
})

test('bad access values are RangeErrors or TypeErrors', (t) => {
  const name = foreignCreate('acc', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  for (const bad of [2, -1, 0.5, NaN, Infinity, 256]) {
    t.throws(() => new SharedMemory(name, undefined, bad), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(bad))
  }
  for (const bad of ['0', 'READ', true, null, 1n]) {
    t.throws(() => new SharedMemory(name, undefined, bad as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(bad))
  }
})

test('copyFrom/copyTo check their ranges in both modes', (t) => {
  const name = foreignCreate('ranges', 1024)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  for (const fn of [mem.copyFrom.bind(mem), mem.copyTo.bind(mem)]) {
    for (const args of [[-1], [0, -1], [0, 0, -1], [1.5], [0, 0.5], [0, 0, 0.5], [1025], [0, 1025], [0, 0, 1025],
      [1000, 0, 25], [0, 1000, 25], [NaN], [Infinity], [0, 0, Infinity]]) {
      t.throws(() => fn(...args), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, JSON.stringify(args))
    }
    for (const args of [['0'], [0, '1'], [0, 0, 1n], [null], [{}]]) {
      t.throws(() => fn(...(args as any[])), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(args))
    }
    t.notThrows(() => fn(1000, 0, 24))
    t.notThrows(() => fn(1024, 0))
    t.notThrows(() => fn(0, 1024))
  }
  mem.close()
})

test('close() detaches buffer, is idempotent, and later calls throw ERR_SHM_CLOSED', (t) => {
  const name = foreignCreate('close', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  const buf = mem.buffer!
  const view = new Uint8Array(buf)
  const f64 = new Float64Array(buf)
  t.is(view.length, 4096)
  mem.close()
  t.is(view.length, 0)
  t.is(f64.length, 0)
  t.is(buf.byteLength, 0)
  t.is(view[0], undefined)
  t.true(mem.closed)
  t.is(mem.name, undefined)
  t.is(mem.length, undefined)
  t.is(mem.access, undefined)
  t.is(mem.buffer, undefined)
  t.is(mem.requiresCopy, undefined)
  t.is(mem.sharedBuffer, undefined)
  t.notThrows(() => mem.close())
  for (const call of [() => mem.copyFrom(), () => mem.copyTo(), () => mem.atomicLoad(0), () => mem.atomicStore(0, 1),
    () => mem.atomicAdd(0, 1), () => mem.atomicCompareExchange(0, 0, 1), () => mem.wait(0, 1, 0), () => mem.notify(0)]) {
    t.throws(call, { code: 'ERR_SHM_CLOSED' })
  }
  t.throws(() => mem.waitAsync(0, 0), { code: 'ERR_SHM_CLOSED' })
})

test('close() releases the mapping and the file descriptor at once', (t) => {
  const name = foreignCreate('release', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const before = count(name)
  const mem = new SharedMemory(name)
  const during = count(name)
  t.is(during.maps, before.maps + 1)
  t.is(during.fds, before.fds + 1)
  mem.close()
  t.deepEqual(count(name), before)
})

test('using closes the segment at the end of the block', (t) => {
  const name = foreignCreate('using', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  let kept: SharedMemory
  {
    using mem = new SharedMemory(name)
    kept = mem
    t.false(mem.closed)
  }
  t.true(kept.closed)
  t.is(typeof SharedMemory.prototype[Symbol.dispose], 'function')
})

// The outcome of structuredClone(buffer, { transfer: [buffer] }) is fixed per runtime and mode:
// - caged: buffer is V8-owned, so it moves: the original detaches, the clone holds the bytes
//   (and copyFrom/copyTo then throw ERR_SHM_DETACHED, see caged.spec.ts);
// - zero-copy on Node >= 22: DataCloneError, buffer stays attached and live;
// - zero-copy on Node 20: V8 copies it instead (the clone is an independent copy), buffer stays
//   attached and live.
// In no case can close() leave a buffer pointing at unmapped memory.
test('structuredClone with transfer of buffer: the one outcome of this runtime and mode', (t) => {
  const name = foreignCreate('xfer', 4096, 0, Buffer.from([5]))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  t.is(mem.requiresCopy, FORCED_COPY)
  const buf = mem.buffer!
  const major = Number(process.versions.node.split('.')[0])
  if (FORCED_COPY) {
    const moved = structuredClone(buf, { transfer: [buf] })
    t.is(buf.byteLength, 0, 'caged: the copy moved, the original is detached')
    t.is(moved.byteLength, 4096)
    t.is(new Uint8Array(moved)[0], 5)
    t.throws(() => mem.copyFrom(), { code: 'ERR_SHM_DETACHED' })
    mem.close()
    t.is(new Uint8Array(moved)[0], 5, 'the moved copy is V8-owned and outlives close()')
    return
  }
  if (major >= 22) {
    t.throws(() => structuredClone(buf, { transfer: [buf] }), { name: 'DataCloneError' })
  } else {
    const clone = structuredClone(buf, { transfer: [buf] })
    t.not(clone, buf)
    t.is(clone.byteLength, 4096)
    t.is(new Uint8Array(clone)[0], 5)
    new Uint8Array(clone)[1] = 9
    t.is(foreignRead(name, 1, 1)[0], 0, 'Node 20: the clone is a copy, not the mapping')
    t.is(buf.byteLength, 4096, 'buffer stays attached')
    peer('write', name, 2, '07')
    t.is(new Uint8Array(buf)[2], 7, 'and live')
    mem.close()
    t.is(new Uint8Array(clone)[0], 5, 'and it outlives close()')
    t.is(buf.byteLength, 0, 'close() detached the original')
    return
  }
  t.is(buf.byteLength, 4096, 'buffer stays attached')
  peer('write', name, 2, '07')
  t.is(new Uint8Array(buf)[2], 7, 'and live')
  mem.close()
  t.is(buf.byteLength, 0)
})

test('two Node processes share one segment', async (t) => {
  const name = foreignCreate('twonode', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = openSynced(name)
  new Uint8Array(mem.buffer!)[0] = 7
  if (mem.requiresCopy) mem.copyTo(0, 0, 1)
  // The child reads what we wrote and answers through the segment.
  const child = await runNode(
    `const { SharedMemory } = require('.')
     const m = new SharedMemory(process.argv[1])
     if (m.requiresCopy) m.copyFrom()
     const v = new Uint8Array(m.buffer)
     v.set(Buffer.from('child:' + v[0]), 100)
     if (m.requiresCopy) m.copyTo(100, 100, 7)
     m.close()`,
    [name],
  )
  t.is(child.code, 0, child.stderr)
  if (mem.requiresCopy) mem.copyFrom()
  t.is(Buffer.from(mem.buffer!, 100, 7).toString(), 'child:7')
  mem.close()
})

// The package installs a SIGBUS/SIGSEGV handler (the shrink guard, crates/shm-core/src/fault.rs)
// on top of Node's own SIGSEGV handler, which serves WebAssembly's bounds checks: a wasm
// out-of-bounds load must still be a RuntimeError, and a fault outside the package still kills.
test('after the package installed its fault handler, a WebAssembly out-of-bounds load is still a RuntimeError', async (t) => {
  // (module (memory 1) (func (export "f") (param i32) (result i32) local.get 0 i32.load))
  const wasm = '0061736d0100000001060160017f017f030201000503010001070501016600000a0901070020002802000b'
  const script = `const {SharedMemory}=require('./dist');const n=process.argv.at(-1);const m=SharedMemory.create(n,4096);` +
    `const {f}=new WebAssembly.Instance(new WebAssembly.Module(Buffer.from('${wasm}','hex'))).exports;` +
    `let r;try{f(0x7ffffff0);r='no trap'}catch(e){r=e.constructor.name+': '+e.message}` +
    `console.log(f(0)+' '+r);m.close();SharedMemory.unlink(n)`
  const r = await runNode(script, [uniqueName('wasm')])
  t.is(r.signal, null, r.stderr)
  t.is(r.stdout.trim(), '0 RuntimeError: memory access out of bounds')
})

// The process's own SIGBUS handler (here libuv's, installed by process.on('SIGBUS')) still gets
// every SIGBUS that is not the package's — installed before the package's handler, or after it
// (then the next open puts ours back on top, chaining to it) — while the package's own faults
// (a wait past a shrunk end) stay ERR_SHM_SHRUNK. The foreign SIGBUS is sent with kill(2): a
// real fault would make libuv's handler (which returns) fault again forever.
test('a SIGBUS handler of the process, installed before or after the package, still receives the SIGBUS that is not ours', (t) => {
  for (const order of ['before', 'after']) {
    const script = `const order=process.argv.at(-1);let got=0;const fs=require('fs');` +
      `const listen=()=>process.on('SIGBUS',()=>{got++});if(order==='before')listen();` +
      `const {SharedMemory}=require('./dist');const n='${uniqueName('sigbus')}-'+order;const m=SharedMemory.create(n,3*4096);` +
      `if(order==='after'){listen();SharedMemory.create(n+'b',64).close();SharedMemory.unlink(n+'b')}` +
      `fs.truncateSync('/dev/shm/'+n,4096);let code;try{m.wait(8192,0,1)}catch(e){code=e.code}` +
      `process.kill(process.pid,'SIGBUS');setTimeout(()=>{console.log(code+' '+got);m.close();SharedMemory.unlink(n)},200)`
    const r = spawnSync(process.execPath, ['-e', script, '--', order], { encoding: 'utf8', cwd: ROOT, timeout: 20_000 })
    t.is(r.signal, null, `${order}: ${r.stderr}`)
    t.is(r.stdout.trim(), 'ERR_SHM_SHRUNK 1', order)
  }
})
