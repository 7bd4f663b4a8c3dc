// Hostile JavaScript (issue 17): the raw native callbacks called directly with bad arguments,
// patched intrinsics before and after the package loads, buffers the native side did not make,
// setuid modes, and upper bounds on wait timeouts. Runs in both modes.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { SharedMemory, MemoryAccess } from '../dist'
import { FORCED_COPY, ROOT, uniqueName } from './helpers/util'

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports */
/** The binding object the class uses (the generated loader's exports). */
const b: any = require('../index.js')

type Call = { name: string; args: unknown[] }

/** Every raw callback with valid arguments for handle `h` of a `len`-byte WRITE segment. */
function validCalls(h: object, len: number): Call[] {
  return [
    { name: 'copyFrom', args: [h, 0, 0, 4] },
    { name: 'copyTo', args: [h, 0, 0, 4] },
    { name: 'load', args: [h, 0] },
    { name: 'store', args: [h, 0, 0] },
    { name: 'add', args: [h, 0, 0] },
    { name: 'compareExchange', args: [h, 0, 1, 2] },
    // The word is 0 and `expected` 1: both waits return 'not-equal' at once.
    { name: 'wait', args: [h, 0, 1, 0, false] },
    { name: 'waitAsync', args: [h, 0, 1, 0] },
    { name: 'notify', args: [h, len - 4, 1] },
    { name: 'atomicsView', args: [h] },
    { name: 'sharedBuffer', args: [h] },
  ]
}

const HOSTILE_NUMBERS: unknown[] = [
  -1, -4, -0.5, 0.5, 3, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 32, 2 ** 32 + 4, 2 ** 53, 2 ** 64, 1e308, -1e308,
  Number.MIN_VALUE, '4', 4n, {}, [], null, undefined, true, Symbol('x'), () => 0,
]

function hostileHandles(foreign: object): unknown[] {
  return [undefined, null, 0, 1, 'h', {}, [], new ArrayBuffer(8), foreign, () => 0, Symbol('h'), 10n]
}

/** Calls `fn` and returns what happened; a thrown error must carry a string `code`. */
function show(v: unknown): string {
  try {
    return typeof v === 'symbol' ? 'symbol' : String(v)
  } catch {
    return Object.prototype.toString.call(v)
  }
}

async function outcome(t: any, what: string, fn: () => unknown): Promise<unknown> {
  try {
    let r = fn()
    if (r instanceof Promise) r = await r
    return r
  } catch (e: any) {
    t.true(e instanceof Error, `${what}: threw a non-Error ${String(e)}`)
    t.is(typeof e.code, 'string', `${what}: threw ${e?.name}: ${e?.message} without a code`)
    return e
  }
}

test('pageOffset: -1 for anything but a live typed array, the address modulo 4096 for one; it reads no byte', (t) => {
  const pageOffset = b.pageOffset as (v: unknown) => number
  for (const v of [...HOSTILE_NUMBERS, ...hostileHandles({}), new DataView(new ArrayBuffer(8)), 'x'.repeat(64)]) {
    t.is(pageOffset(v), -1, show(v))
  }
  t.is(pageOffset(), -1)
  const ab = new ArrayBuffer(16384)
  const base = pageOffset(new Uint8Array(ab))
  t.true(Number.isInteger(base) && base >= 0 && base < 4096)
  for (const off of [1, 8, 4095, 4096, 5000]) t.is(pageOffset(new Uint8Array(ab, off, 8)), (base + off) % 4096, `offset ${off}`)
  t.is(pageOffset(new Float64Array(ab, 8, 2)), (base + 8) % 4096)
  const moved = new Uint8Array(new ArrayBuffer(4096))
  structuredClone(moved.buffer, { transfer: [moved.buffer] })
  t.is(pageOffset(moved), -1, 'a detached view')
})

test.serial('every raw native callback refuses hostile arguments with a coded error, never bad memory', async (t) => {
  const len = 4096
  const name = uniqueName('hostile-raw')
  const mem = SharedMemory.create(name, len)
  const other = new SharedMemory(name)
  try {
    // Keep the instance's buffer referenced: the native side holds it only weakly.
    const [h, hBuffer] = b.openSegment(name, undefined, undefined)
    const [closedHandle] = b.openSegment(name, undefined, undefined)
    b.close(closedHandle)
    for (const call of validCalls(h, len)) {
      const fn = b[call.name]
      t.is(typeof fn, 'function', call.name)
      for (const bad of [...hostileHandles(closedHandle), closedHandle]) {
        const r: any = await outcome(t, `${call.name}(handle=${show(bad)})`, () => fn(bad, ...call.args.slice(1)))
        if (bad !== closedHandle) t.true(r instanceof Error || r === null, `${call.name} accepted a foreign handle`)
      }
      for (let i = 1; i < call.args.length; i++) {
        for (const v of HOSTILE_NUMBERS) {
          const args = call.args.slice()
          args[i] = v
          await outcome(t, `${call.name} arg ${i} = ${show(v)}`, () => fn(...args))
        }
      }
    }
    // Past the end by one Int32 / byte, and at 2^32 + the end: always ERR_OUT_OF_RANGE.
    for (const off of [len, len - 2, len + 4, 2 ** 32, 2 ** 32 + 4, 2 ** 53]) {
      for (const [fn, args] of [
        [b.load, [h, off]],
        [b.store, [h, off, 1]],
        [b.add, [h, off, 1]],
        [b.compareExchange, [h, off, 0, 1]],
        [b.notify, [h, off, 1]],
        [b.wait, [h, off, 1, 0, false]],
      ] as const) {
        const e = t.throws(() => (fn as any)(...args), undefined, `${fn.name} at ${off}`)
        t.is((e as any)?.code, 'ERR_OUT_OF_RANGE', `${fn.name} at ${off}`)
      }
      await t.throwsAsync(async () => b.waitAsync(h, off, 1, 0), { code: 'ERR_OUT_OF_RANGE' })
    }
    // The caged copies: each range that does not fit the buffer or the segment, by one byte.
    const copies: [number, number, number][] = [
      [0, 0, len + 1],
      [1, 0, len],
      [0, 1, len],
      [len, 0, 1],
      [0, len, 1],
      [len - 8, 0, 16],
      [0, len - 8, 16],
      [2 ** 32, 0, 4],
      [0, 2 ** 32, 4],
      [0, 0, 2 ** 32],
      [2 ** 64, 0, 1],
      [0, 2 ** 64 - 1, 2],
    ]
    new Uint8Array(mem.buffer as ArrayBuffer).fill(7)
    mem.copyTo()
    for (const [s, d, n] of copies) {
      for (const fn of [b.copyFrom, b.copyTo]) {
        const e: any = t.throws(() => fn(h, s, d, n), undefined, `${fn.name}(${s}, ${d}, ${n})`)
        t.is(e?.code, FORCED_COPY ? 'ERR_OUT_OF_RANGE' : 'ERR_SHM_DETACHED', `${fn.name}(${s}, ${d}, ${n})`)
      }
    }
    if (FORCED_COPY) {
      // In range at the very end: exactly those bytes, nothing past them.
      b.copyFrom(h, len - 4, len - 4, 4)
    }
    const bytes = new Uint8Array(other.buffer as ArrayBuffer)
    if (other.requiresCopy) other.copyFrom()
    t.true(bytes.every((x) => x === 7), 'no out-of-range call changed the segment')
    b.close(h)
    t.is(hBuffer.byteLength, 0)
  } finally {
    other.close()
    mem.close()
    SharedMemory.unlink(name)
  }
})

test.serial('close() detaches what the native side made, never a buffer JavaScript hands it', (t) => {
  const name = uniqueName('hostile-close')
  const mem = SharedMemory.create(name, 4096)
  try {
    const [h, buffer] = b.openSegment(name, undefined, undefined)
    const views = [b.atomicsView(h), b.atomicsView(h)]
    const foreign = new ArrayBuffer(4096)
    const pool = Buffer.from('x').buffer
    const poolLength = pool.byteLength
    b.close(h, foreign, pool)
    t.is(foreign.byteLength, 4096, 'a foreign buffer passed to close() stays attached')
    t.is(pool.byteLength, poolLength, "Node's Buffer pool stays attached")
    t.is(buffer.byteLength, 0, 'the instance buffer is detached')
    for (const v of views) if (v !== null) t.is(v.length, 0, 'every atomics view is detached, the second too')
    t.is(views[0] === null, FORCED_COPY)
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
})

test.serial('a patched %TypedArray%.prototype.buffer or Atomics never sees the hidden view; results stay right', (t) => {
  const name = uniqueName('hostile-patch')
  const mem = SharedMemory.create(name, 4096)
  const reader = new SharedMemory(name, undefined, MemoryAccess.READ)
  const TA = Object.getPrototypeOf(Int32Array.prototype)
  const bufferDesc = Object.getOwnPropertyDescriptor(TA, 'buffer')!
  const saved = { load: Atomics.load, store: Atomics.store, add: Atomics.add, compareExchange: Atomics.compareExchange }
  const seen: unknown[] = []
  const foreign = new ArrayBuffer(4096)
  try {
    Object.defineProperty(TA, 'buffer', {
      configurable: true,
      get() {
        seen.push(this)
        return foreign
      },
    })
    for (const k of Object.keys(saved) as (keyof typeof saved)[]) {
      ;(Atomics as any)[k] = (...args: unknown[]) => {
        seen.push(args[0])
        return 0
      }
    }
    t.is(mem.atomicStore(8, 41), 41)
    t.is(mem.atomicAdd(8, 1), 41)
    t.is(mem.atomicCompareExchange(8, 42, 43), 42)
    t.is(mem.atomicLoad(8), 43)
    t.is(reader.atomicLoad(8), 43)
    reader.close()
    mem.close()
    t.is(foreign.byteLength, 4096, 'close() did not detach what the patched getter returned')
    t.deepEqual(seen, [], 'no patched intrinsic was called by the class')
  } finally {
    Object.defineProperty(TA, 'buffer', bufferDesc)
    Object.assign(Atomics, saved)
    if (!reader.closed) reader.close()
    if (!mem.closed) mem.close()
    SharedMemory.unlink(name)
  }
})

test.serial('no view over a READ mapping exists; a view moved away keeps its mapping after close()', (t) => {
  const name = uniqueName('hostile-read')
  const mem = SharedMemory.create(name, 4096)
  try {
    const [hr] = b.openSegment(name, undefined, MemoryAccess.READ)
    t.is(b.atomicsView(hr), null, 'a READ instance has no JS atomics view')
    mem.atomicStore(4, 5)
    t.is(b.load(hr, 4), 5)
    b.close(hr)
    if (FORCED_COPY) return
    const [hw] = b.openSegment(name, undefined, undefined)
    const view: Int32Array = b.atomicsView(hw)
    const moved = structuredClone(view.buffer, { transfer: [view.buffer] })
    const transferred = view.length === 0 // Node 20 copies an external buffer instead
    b.close(hw)
    if (transferred) {
      new Int32Array(moved)[1] = 9 // the mapping stayed: no SIGSEGV
      t.is(mem.atomicLoad(4), 9)
    } else {
      t.is(view.length, 0, 'close() detached the view')
    }
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
})

test.serial("a patched globalThis.ArrayBuffer does not make close() detach someone else's buffer", (t) => {
  const name = uniqueName('hostile-ab')
  const pool = Buffer.from('x').buffer
  const poolLength = pool.byteLength
  const Saved = globalThis.ArrayBuffer
  let mem: SharedMemory | undefined
  try {
    ;(globalThis as any).ArrayBuffer = function () {
      return pool
    }
    mem = SharedMemory.create(name, poolLength)
    ;(globalThis as any).ArrayBuffer = Saved
    t.not(mem.buffer, pool)
    mem.atomicStore(0, 3)
    mem.copyFrom()
    t.is(new Int32Array(mem.buffer as ArrayBuffer)[0], 3)
    mem.close()
    t.is(pool.byteLength, poolLength, "Node's Buffer pool is still attached")
  } finally {
    ;(globalThis as any).ArrayBuffer = Saved
    mem?.close()
    SharedMemory.unlink(name)
  }
})

test.serial('intrinsics patched before the package loads: no crash, no READ view, right results (child process)', (t) => {
  const script = `
    const seen = []
    const TA = Object.getPrototypeOf(Int32Array.prototype)
    const foreign = new ArrayBuffer(4096)
    const pool = Buffer.from('x').buffer
    Object.defineProperty(TA, 'buffer', { configurable: true, get() { seen.push('buffer'); return foreign } })
    Object.defineProperty(ArrayBuffer.prototype, 'byteLength', { configurable: true, get() { seen.push('byteLength'); return 64 } })
    const RealAB = ArrayBuffer
    globalThis.ArrayBuffer = function () { seen.push('ArrayBuffer'); return pool }
    globalThis.Int32Array = function () { seen.push('Int32Array'); return new Int32Array(8) }
    const views = []
    for (const k of ['load', 'store', 'add', 'compareExchange']) {
      const real = Atomics[k]
      Atomics[k] = (v, ...rest) => { views.push(v); return real(v, ...rest) }
    }
    const { SharedMemory, MemoryAccess } = require('.')
    const name = process.argv[1]
    const mem = SharedMemory.create(name, 8192)
    const reader = new SharedMemory(name, undefined, MemoryAccess.READ)
    const out = []
    out.push(mem.length, mem.atomicStore(8188, 7), mem.atomicAdd(8188, 1), reader.atomicLoad(8188), mem.atomicLoad(8188))
    const stolen = views.slice()
    for (const v of stolen) { try { v[0] = 1 } catch {} } // a write through a stolen view
    reader.close()
    mem.close()
    SharedMemory.unlink(name)
    console.log(JSON.stringify({ out, seen: [...new Set(seen)], stolenLen: stolen.map((v) => v.length),
      poolAttached: new Uint8Array(pool).length > 0 }))
  `
  const name = uniqueName('hostile-before')
  const r = spawnSync(process.execPath, ['-e', script, name], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  t.is(r.status, 0, `child: ${r.signal ?? ''} ${r.stderr}`)
  const res = JSON.parse(r.stdout)
  t.deepEqual(res.out, [8192, 7, 7, 8, 8])
  t.true(res.poolAttached, 'the Buffer pool a patched ArrayBuffer returns is never detached')
  t.false(res.seen.includes('buffer'), 'close() never read %TypedArray%.prototype.buffer')
  t.false(res.seen.includes('Int32Array'), 'no typed-array constructor ran')
  t.false(res.seen.includes('ArrayBuffer'), 'no ArrayBuffer constructor ran')
  // A spy installed before load sees the WRITE instance's view only (none for READ); close()
  // detached it: a stolen view is empty afterwards.
  for (const l of res.stolenLen) t.is(l, 0)
})

test('create refuses setuid, setgid and sticky bits in mode', (t) => {
  for (const mode of [0o7777, 0o4755, 0o2700, 0o1777, 0o1000, 0o1000 + 0o600]) {
    const name = uniqueName('hostile-mode')
    const e: any = t.throws(() => SharedMemory.create(name, 4096, { mode }), { instanceOf: RangeError }, mode.toString(8))
    t.is(e?.code, 'ERR_OUT_OF_RANGE')
    t.throws(() => new SharedMemory(name), { code: 'ENOENT' }, 'nothing was created')
  }
  const name = uniqueName('hostile-mode-ok')
  const mem = SharedMemory.create(name, 4096, { mode: 0o777 })
  try {
    if (process.platform === 'linux') t.is(statSync(`/dev/shm/${name}`).mode & 0o7000, 0)
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
})

// Generous upper bounds: a timeout converted 10x too long (2 s for 200 ms) must fail these.
test.serial('wait(…, 200) times out within 1500 ms', (t) => {
  const name = uniqueName('hostile-wait-bound')
  const mem = SharedMemory.create(name, 4096)
  try {
    const t0 = performance.now()
    t.is(mem.wait(0, 0, 200), 'timed-out')
    const ms = performance.now() - t0
    t.true(ms >= 150 && ms < 1500, `wait took ${ms.toFixed(0)} ms`)
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
})

test.serial('waitAsync(…, 200) times out within 1500 ms', async (t) => {
  const name = uniqueName('hostile-waitasync-bound')
  const mem = SharedMemory.create(name, 4096)
  try {
    const t0 = performance.now()
    t.is(await mem.waitAsync(0, 0, 200), 'timed-out')
    const ms = performance.now() - t0
    t.true(ms >= 150 && ms < 1500, `waitAsync took ${ms.toFixed(0)} ms`)
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
})
