// TypeScript consumer check: uses the whole public API of node-shared-mem as a consumer would,
// compiled with `tsc --strict --noEmit` against the package's dist/index.d.ts (npm run test:types).
// It is type-checked, never run. Each `@ts-expect-error` line is a misuse the typings must reject:
// if a declaration loosens (e.g. to `any`), that directive becomes unused and tsc fails.
import { SharedMemory, MemoryAccess } from 'node-shared-mem'
import type { SharedMemory as SharedMemoryType } from 'node-shared-mem'

type WaitResult = 'ok' | 'not-equal' | 'timed-out'

// MemoryAccess is a real object (not a const enum) with the 2.x values.
const read: MemoryAccess = MemoryAccess.READ
const write: MemoryAccess = MemoryAccess.WRITE
const readValue: 0 = MemoryAccess.READ
const writeValue: 1 = MemoryAccess.WRITE
const accessName: keyof typeof MemoryAccess = 'WRITE'

// Statics.
const created: SharedMemory = SharedMemory.create('frames', 4096)
const created2: SharedMemoryType = SharedMemory.create('frames', 4096, { mode: 0o600, exclusive: false })
const created3 = SharedMemory.create('frames', 4096, {})
const removed: boolean = SharedMemory.unlink('frames')

// Constructor forms.
const a = new SharedMemory('frames')
const b = new SharedMemory('frames', 1024)
const c = new SharedMemory('/frames', 1024, MemoryAccess.READ)

// Getters (all but `closed` read `undefined` after close()).
const name: string | undefined = a.name
const length: number | undefined = a.length
const access: MemoryAccess | undefined = a.access
const buffer: ArrayBuffer | undefined = a.buffer
const requiresCopy: boolean | undefined = a.requiresCopy
// A SharedArrayBuffer over the segment where the runtime allows it, else null.
const shared: SharedArrayBuffer | null | undefined = a.sharedBuffer
const i32: Int32Array | undefined = shared ? new Int32Array(shared) : undefined
if (i32) Atomics.notify(i32, 0)
const closed: boolean = a.closed

function view(mem: SharedMemory): Uint8Array {
  const buf = mem.buffer
  if (buf === undefined) throw new Error('closed')
  return new Uint8Array(buf)
}

// Copies, every arity.
function sync(mem: SharedMemory, dirty: { offset: number; length: number }): void {
  if (!mem.requiresCopy) return
  mem.copyFrom()
  mem.copyFrom(16)
  mem.copyFrom(16, 32)
  mem.copyFrom(16, 32, 8)
  view(mem).fill(1, dirty.offset, dirty.offset + dirty.length)
  mem.copyTo()
  mem.copyTo(0)
  mem.copyTo(0, 0)
  mem.copyTo(dirty.offset, dirty.offset, dirty.length)
}

// Atomics.
const loaded: number = b.atomicLoad(0)
const stored: number = b.atomicStore(0, 42)
const old: number = b.atomicAdd(4, -1)
const swapped: number = b.atomicCompareExchange(8, 0, 1)

// wait / notify.
const r1: WaitResult = b.wait(0, 0)
const r2: WaitResult = b.wait(0, 0, 10)
const woken: number = b.notify(0)
const woken1: number = b.notify(0, 1)

async function waiter(mem: SharedMemory): Promise<WaitResult> {
  const p: Promise<WaitResult> = mem.waitAsync(0, 0)
  const q = mem.waitAsync(0, 0, 100)
  const [x] = await Promise.all([p, q])
  switch (x) {
    case 'ok':
    case 'not-equal':
    case 'timed-out':
      return x
  }
}

// Error codes: a consumer narrows `unknown` and reads `code` (plus errno/syscall/path for OS errors).
type ShmErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_SHM_CLOSED'
  | 'ERR_SHM_SHRUNK'
  | 'ENOENT'
  | 'EACCES'
  | 'EEXIST'

function errorCode(e: unknown): string | undefined {
  if (e instanceof Error && 'code' in e && typeof e.code === 'string') return e.code
  return undefined
}

function openOrCreate(nm: string, size: number): SharedMemory {
  try {
    return new SharedMemory(nm)
  } catch (e) {
    const code = errorCode(e)
    if (code === ('ENOENT' satisfies ShmErrorCode)) return SharedMemory.create(nm, size, { exclusive: false })
    if (e instanceof RangeError && code === 'ERR_OUT_OF_RANGE') throw e
    const sys = e as NodeJS.ErrnoException
    console.error(sys.code, sys.errno, sys.syscall, sys.path)
    throw e
  }
}

// Explicit resource management: `using` closes at the end of the block.
function withUsing(): number {
  using mem = openOrCreate('frames', 64)
  const first = view(mem)[0]
  return first ?? 0
}

// close() and [Symbol.dispose]() directly.
c.close()
c[Symbol.dispose]()
const closedNow: true = c.closed === true ? true : (() => { throw new Error('not closed') })()

// Every public member of SharedMemory is exercised above: adding one to index.d.ts without
// using it here fails this check (then extend this file).
type Exercised =
  | 'name' | 'length' | 'access' | 'buffer' | 'requiresCopy' | 'sharedBuffer' | 'closed'
  | 'copyFrom' | 'copyTo' | 'atomicLoad' | 'atomicStore' | 'atomicAdd' | 'atomicCompareExchange'
  | 'wait' | 'waitAsync' | 'notify' | 'close' | typeof Symbol.dispose
type Unexercised = Exclude<keyof SharedMemory, Exercised>
const everyMemberExercised: [Unexercised] extends [never] ? true : Unexercised = true
type StaticsExercised = 'create' | 'unlink' | 'prototype'
type UnexercisedStatics = Exclude<keyof typeof SharedMemory, StaticsExercised>
const everyStaticExercised: [UnexercisedStatics] extends [never] ? true : UnexercisedStatics = true

// Misuses the typings must reject.
// @ts-expect-error length must be a number
new SharedMemory('frames', '1024')
// @ts-expect-error access is a MemoryAccess, not a string
new SharedMemory('frames', 1024, 'rw')
// @ts-expect-error create() needs a length
SharedMemory.create('frames')
// @ts-expect-error unknown option
SharedMemory.create('frames', 16, { mod: 0o600 })
// @ts-expect-error name is read-only
a.name = 'other'
// @ts-expect-error buffer may be undefined (after close)
const noCheck: ArrayBuffer = a.buffer
// @ts-expect-error wait() returns a string union, not a number
const badWait: number = a.wait(0, 0)
// @ts-expect-error waitAsync() returns a promise
const badAsync: WaitResult = a.waitAsync(0, 0)
// @ts-expect-error not a MemoryAccess member
MemoryAccess.EXECUTE

export {
  read, write, readValue, writeValue, accessName, created, created2, created3, removed,
  name, length, access, buffer, requiresCopy, shared, i32, closed, everyMemberExercised, everyStaticExercised, sync, loaded, stored, old, swapped,
  r1, r2, woken, woken1, waiter, withUsing, closedNow, noCheck, badWait, badAsync,
}
