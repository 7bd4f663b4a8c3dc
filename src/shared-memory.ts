// The SharedMemory class. The properties are plain private fields (reads cost what a JS field
// read costs), the hot-path arguments are checked here, and in zero-copy mode the atomics and the
// no-op copies never leave JS. The native handle (crates/shm-napi) does the rest.

import { isMainThread } from 'node:worker_threads'

import {
  checkCount,
  checkIndex,
  checkInt32,
  checkTimeout,
  closed,
  invalidThis,
  invalidType,
  outOfRange,
  readOnly,
} from './errors'
import { native } from './native'

// The intrinsics the hot paths call, captured when this module loads: code that replaces
// `Atomics.load` & co. later neither sees the hidden Int32Array view (it would get a view of the
// segment that bypasses the class) nor changes what the class does. The view itself is made
// natively (no typed-array constructor or ArrayBuffer getter runs), and the length comes from the
// native side, not from `buffer.byteLength`.
const { load: atomicsLoad, store: atomicsStore, add: atomicsAdd, compareExchange: atomicsCompareExchange } = Atomics

// The fault guard (README, Limits) must stay the SIGBUS/SIGSEGV handler on top. A JS listener for
// either signal makes Node install libuv's handler, which does not chain (a caged call on a shrunk
// segment would then fault forever), and removing the last one makes libuv set SIG_DFL (the guard
// gone). Node does both from its own 'newListener'/'removeListener' listeners, registered at
// bootstrap and so called before these: by the time these run, the action has changed, and the
// guard is put back on top, chaining whatever is there now. Captured here, so that patched
// globals cannot break it later. A re-install refused because the chain of actions is full (8
// distinct handlers per signal; adding and removing listeners costs none after the first) is
// reported once, as a process warning with code 'NSM_FAULT_GUARD_EXHAUSTED'.
const reinstallFaultGuard = native.reinstallFaultGuard
const emitWarning = process.emitWarning.bind(process)
let exhaustedWarned = false
function onSignalListener(event: string | symbol): void {
  if (event !== 'SIGBUS' && event !== 'SIGSEGV') return
  if (reinstallFaultGuard() || exhaustedWarned) return
  exhaustedWarned = true
  emitWarning(
    `node-shared-mem: the fault guard could not be put back on top of the ${event} handler Node ` +
      'just changed (too many handlers installed over it): a caged copy or an atomic on a ' +
      'segment another process shrinks may now crash the process or hang instead of throwing ' +
      'ERR_SHM_SHRUNK',
    { code: 'NSM_FAULT_GUARD_EXHAUSTED' },
  )
}
process.on('newListener', onSignalListener)
process.on('removeListener', onSignalListener)

/** Waits in a worker must stay interruptible by `terminate()` (see crates/shm-napi/src/hot.rs). */
const inWorker = !isMainThread

/**
 * How a segment is opened. The numeric values are those of node-shared-mem 2.x, and, as
 * there, a plain object (`{ READ: 0, WRITE: 1 }`, frozen).
 */
export const MemoryAccess = Object.freeze({
  /**
   * Read-only. In zero-copy mode `buffer` is a private copy-on-write view: reads see the
   * segment live; a write into `buffer` changes only this process's copy of that 4 KiB page
   * (which from then on no longer shows the peers' updates) and never reaches the segment.
   * `copyTo()` and the writing atomics throw `EACCES`. (On macOS such a view does not exist:
   * a READ instance is caged there.)
   */
  READ: 0,
  /** Read-write (the default): writes into `buffer` are seen by every process at once. */
  WRITE: 1,
} as const)
/** `MemoryAccess.READ` (0) or `MemoryAccess.WRITE` (1). */
export type MemoryAccess = (typeof MemoryAccess)[keyof typeof MemoryAccess]

/** What a wait returns, as `Atomics.wait` names it. */
export type WaitResult = 'ok' | 'not-equal' | 'timed-out'

/** Options of {@link SharedMemory.create}. */
export interface CreateOptions {
  /**
   * Permission bits of a new segment (default `0o600`: only this user), filtered by the
   * process umask as for `fs.open`; ignored on Windows. Only `0 … 0o777`: setuid, setgid and
   * sticky bits throw `RangeError` `ERR_OUT_OF_RANGE`.
   */
  mode?: number
  /**
   * `true` (default): fail with `EEXIST` if the name exists. `false`: open an existing segment
   * instead, if it has at least `length` bytes (it is never resized; one still being sized by
   * its creator is waited for up to 100 ms, then `ERR_SHM_EMPTY`), else create it.
   */
  exclusive?: boolean
}

type Opened = [handle: object, buffer: ArrayBuffer, caged: boolean, length: number]

/** Set by `create()` for the constructor call it makes. */
let adopt: Opened | undefined

/**
 * A named OS shared-memory segment mapped into this process.
 *
 * `buffer` is an `ArrayBuffer` over the segment's bytes (zero-copy), or, where the runtime
 * forbids external buffers (Electron's V8 memory cage), a copy that `copyFrom()`/`copyTo()`
 * keep in sync (`requiresCopy === true`).
 */
export class SharedMemory {
  /** The native handle; `undefined` once closed. Its presence is also the brand check. */
  #handle: object | undefined
  #name: string | undefined
  #length: number | undefined
  #access: MemoryAccess | undefined
  #buffer: ArrayBuffer | undefined
  #caged: boolean | undefined
  /**
   * Int32 view over the shared mapping for zero-copy atomics, made natively; `null` when caged,
   * read-only or too long for this runtime's typed arrays (the atomics then run natively); lazy.
   * Never leaves this field (only the captured `Atomics` functions above see it).
   */
  #i32: Int32Array | null | undefined
  #shared: SharedArrayBuffer | null | undefined

  /**
   * Opens an existing named shared-memory segment; never creates one.
   *
   * @param name - The segment's name. On Linux/macOS the leading `/` is optional and no other
   *   `/` is allowed; on Windows it is used as given (e.g. `Local\\frames`).
   * @param length - Bytes to map, a positive integer no larger than the segment. Defaults to
   *   the segment's size.
   * @param access - `MemoryAccess.WRITE` (default) or `MemoryAccess.READ`.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad name or type;
   *   `ERR_CONSTRUCT_CALL_REQUIRED` when called without `new`.
   * @throws RangeError `ERR_OUT_OF_RANGE` for a bad length or access.
   * @throws Error `ENOENT`, `EACCES`, `ELOOP` … (with `errno`, `syscall`, `path`) when the OS refuses.
   */
  constructor(name: string, length?: number, access?: MemoryAccess) {
    const opened = adopt ?? (native.openSegment(name, length, access) as Opened)
    adopt = undefined
    // Indexed, not destructured: destructuring would run Array.prototype[Symbol.iterator].
    const handle = opened[0]
    const buffer = opened[1]
    const caged = opened[2]
    this.#handle = handle
    // As the OS got it: UTF-8 (Unix) / UTF-16 (Windows) has no lone surrogates (each became U+FFFD).
    // (`toWellFormed` is missing before Node 20; the name is then kept as given.)
    this.#name = typeof name.toWellFormed === 'function' ? name.toWellFormed() : name
    this.#length = opened[3]
    this.#access = access === MemoryAccess.READ ? MemoryAccess.READ : MemoryAccess.WRITE
    this.#buffer = buffer
    this.#caged = caged
  }

  /**
   * Creates a new segment of `length` zero-filled bytes and opens it read-write.
   *
   * @param options.mode - Permission bits of a new segment (default `0o600`: only this user),
   *   `0 … 0o777`, filtered by the process umask as for `fs.open`; ignored on Windows.
   * @param options.exclusive - `true` (default): fail with `EEXIST` if the name exists.
   *   `false`: open an existing segment instead, if it has at least `length` bytes
   *   (it is never resized), else create it.
   * @throws Error `EEXIST` when exclusive and the name exists.
   */
  static create(name: string, length: number, options?: CreateOptions): SharedMemory {
    const opened = native.createSegment(name, length, options) as Opened
    adopt = opened
    return new SharedMemory(name, undefined, MemoryAccess.WRITE)
  }

  /**
   * Removes a segment's name: later opens fail with `ENOENT`; existing mappings (here and in
   * other processes) stay valid. Returns `false` when no segment had that name.
   *
   * On Windows a name lives exactly as long as some handle to it, so this removes nothing and
   * only reports whether the name exists.
   */
  static unlink(name: string): boolean {
    return native.unlinkSegment(name)
  }

  /** The name the segment was opened with; `undefined` after `close()`. */
  get name(): string | undefined {
    if (!(#handle in this)) throw invalidThis()
    return this.#name
  }

  /** Bytes mapped (the length of `buffer`); `undefined` after `close()`. */
  get length(): number | undefined {
    if (!(#handle in this)) throw invalidThis()
    return this.#length
  }

  /** The access the segment was opened with; `undefined` after `close()`. */
  get access(): MemoryAccess | undefined {
    if (!(#handle in this)) throw invalidThis()
    return this.#access
  }

  /**
   * The bytes: always the same `ArrayBuffer` object. Over the segment itself when
   * `requiresCopy` is `false`; a V8-owned copy when it is `true`. Detached (length 0) by
   * `close()`; `undefined` after it.
   */
  get buffer(): ArrayBuffer | undefined {
    if (!(#handle in this)) throw invalidThis()
    return this.#buffer
  }

  /**
   * `true` when `buffer` is a copy (the V8 memory cage forbids external buffers, e.g. in
   * Electron ≥ 21, or `NODE_SHARED_MEM_FORCE_COPY=1`): sync it with `copyFrom()`/`copyTo()`.
   * `undefined` after `close()`.
   */
  get requiresCopy(): boolean | undefined {
    if (!(#handle in this)) throw invalidThis()
    return this.#caged
  }

  /** `true` once `close()` has run. */
  get closed(): boolean {
    if (!(#handle in this)) throw invalidThis()
    return this.#handle === undefined
  }

  /**
   * A `SharedArrayBuffer` over the segment's bytes (zero-copy), which can be posted to
   * `worker_threads` workers without copying and used with `Atomics` there; always the same
   * object. `null` where the runtime cannot make one: it needs Node-API's experimental
   * `node_api_create_external_sharedarraybuffer` (Node.js 22.23+, 24.21+, 26, Bun), looked up
   * at run time, and zero-copy mode (never in caged mode, where external memory is forbidden).
   * Once it has been read, `close()` cannot revoke it: the mapping then stays until every
   * SharedArrayBuffer over it is garbage-collected (the OS handle is still released at once).
   * `undefined` after `close()`.
   */
  get sharedBuffer(): SharedArrayBuffer | null | undefined {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#handle
    if (handle === undefined) return undefined
    if (this.#shared === undefined) this.#shared = native.sharedBuffer(handle)
    return this.#shared
  }

  /** The open handle, or the `ERR_SHM_CLOSED` error for `method`. */
  #open(method: string): object {
    if (this.#handle === undefined) throw closed(method)
    return this.#handle
  }

  /**
   * Copies segment → `buffer`: `length` bytes from segment offset `srcOffset` to buffer
   * offset `dstOffset`. Defaults: 0, 0, and the most bytes that fit both ranges. A no-op
   * (arguments still checked) when `requiresCopy` is `false`.
   * @throws RangeError `ERR_OUT_OF_RANGE` for negative, fractional or out-of-bounds ranges.
   * @throws Error `ERR_SHM_SHRUNK` when another process truncated the segment under the range.
   */
  copyFrom(srcOffset?: number, dstOffset?: number, length?: number): void {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('copyFrom')
    // Checked inline (no array for three numbers): this is the per-frame call of caged code.
    const len = this.#length as number
    const s = srcOffset === undefined ? 0 : checkIndex(srcOffset, 'srcOffset', len)
    const d = dstOffset === undefined ? 0 : checkIndex(dstOffset, 'dstOffset', len)
    const rest = len - (s > d ? s : d)
    const n = length === undefined ? rest : checkIndex(length, 'length', rest)
    if (this.#caged) native.copyFrom(handle, s, d, n)
  }

  /**
   * Copies `buffer` → segment: `length` bytes from buffer offset `srcOffset` to segment
   * offset `dstOffset`; bytes outside that range are untouched. Same defaults and checks as
   * `copyFrom`; a no-op when `requiresCopy` is `false`.
   * @throws Error `EACCES` on a `MemoryAccess.READ` instance (in both modes).
   */
  copyTo(srcOffset?: number, dstOffset?: number, length?: number): void {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('copyTo')
    const len = this.#length as number
    const s = srcOffset === undefined ? 0 : checkIndex(srcOffset, 'srcOffset', len)
    const d = dstOffset === undefined ? 0 : checkIndex(dstOffset, 'dstOffset', len)
    const rest = len - (s > d ? s : d)
    const n = length === undefined ? rest : checkIndex(length, 'length', rest)
    if (this.#access === MemoryAccess.READ) throw readOnly('copyTo', this.#name as string)
    if (this.#caged) native.copyTo(handle, s, d, n)
  }

  /** Checks an Int32 `byteOffset` (a multiple of 4 inside the mapping). */
  #offset(byteOffset: unknown): number {
    if (typeof byteOffset !== 'number') throw invalidType('byteOffset', 'of type number', byteOffset)
    const len = this.#length as number
    const off = checkIndex(byteOffset, 'byteOffset', len < 4 ? 0 : len - 4)
    if (off % 4 !== 0) throw outOfRange('byteOffset', 'a multiple of 4', String(off))
    if (len < 4) throw outOfRange('byteOffset', `an Int32 inside the mapping of ${len} bytes`, String(off))
    return off
  }

  /** The Int32 view for JS atomics, made on first use; `null`: use the native atomics. */
  #view(handle: object): Int32Array | null {
    let v = this.#i32
    if (v === undefined) v = this.#i32 = native.atomicsView(handle)
    return v
  }

  /** Atomically reads the `Int32` at `byteOffset` (a multiple of 4) of the segment itself, in both modes. */
  atomicLoad(byteOffset: number): number {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('atomicLoad')
    const off = this.#offset(byteOffset)
    const v = this.#i32 ?? this.#view(handle)
    return v === null ? native.load(handle, off) : atomicsLoad(v, off / 4)
  }

  /** Atomically stores `value` (an Int32) at `byteOffset`; returns `value`. */
  atomicStore(byteOffset: number, value: number): number {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('atomicStore')
    const off = this.#offset(byteOffset)
    const x = checkInt32(value, 'value')
    if (this.#access === MemoryAccess.READ) throw readOnly('atomicStore', this.#name as string)
    const v = this.#i32 ?? this.#view(handle)
    return v === null ? native.store(handle, off, x) : atomicsStore(v, off / 4, x)
  }

  /** Atomically adds `delta` (an Int32, wrapping) at `byteOffset`; returns the old value. */
  atomicAdd(byteOffset: number, delta: number): number {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('atomicAdd')
    const off = this.#offset(byteOffset)
    const x = checkInt32(delta, 'delta')
    if (this.#access === MemoryAccess.READ) throw readOnly('atomicAdd', this.#name as string)
    const v = this.#i32 ?? this.#view(handle)
    return v === null ? native.add(handle, off, x) : atomicsAdd(v, off / 4, x)
  }

  /**
   * Atomically replaces the Int32 at `byteOffset` with `replacement` if it equals `expected`;
   * returns the old value (equal to `expected` when it swapped).
   */
  atomicCompareExchange(byteOffset: number, expected: number, replacement: number): number {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('atomicCompareExchange')
    const off = this.#offset(byteOffset)
    const e = checkInt32(expected, 'expected')
    const r = checkInt32(replacement, 'replacement')
    if (this.#access === MemoryAccess.READ) throw readOnly('atomicCompareExchange', this.#name as string)
    const v = this.#i32 ?? this.#view(handle)
    return v === null ? native.compareExchange(handle, off, e, r) : atomicsCompareExchange(v, off / 4, e, r)
  }

  /**
   * Blocks this thread while the Int32 at `byteOffset` equals `expected`, until another
   * process (or thread) calls `notify` on it, or `timeout` ms pass (default: forever).
   * Like `Atomics.wait`, but across processes. A wake can be spurious: re-check the value.
   * A worker blocked here still ends promptly on `worker.terminate()` or `process.exit()`
   * (it re-enters the kernel every 20 ms to check; change the word before you notify, as
   * every futex protocol does, or a notify landing between two of those sleeps is missed).
   */
  wait(byteOffset: number, expected: number, timeout?: number): WaitResult {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('wait')
    const off = this.#offset(byteOffset)
    const e = checkInt32(expected, 'expected')
    const t = checkTimeout(timeout)
    return native.wait(handle, off, e, t, inWorker)
  }

  /**
   * Like `wait`, without blocking: the wait runs on a thread of its own and the promise
   * settles with `'ok' | 'not-equal' | 'timed-out'`; it rejects with `ERR_SHM_CLOSED` if
   * `close()` runs meanwhile. A pending wait keeps the process alive, as a pending read would;
   * a worker that ends cancels its pending waits.
   */
  waitAsync(byteOffset: number, expected: number, timeout?: number): Promise<WaitResult> {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('waitAsync')
    const off = this.#offset(byteOffset)
    const e = checkInt32(expected, 'expected')
    const t = checkTimeout(timeout)
    return native.waitAsync(handle, off, e, t)
  }

  /**
   * Wakes up to `count` (default: all) waiters on the Int32 at `byteOffset`, in any process.
   * Returns how many were woken where the OS tells (Linux, macOS); 0 on Windows. A waiter
   * still in its first few microseconds (spinning before it sleeps) sees the new value
   * without being woken, and is not counted.
   */
  notify(byteOffset: number, count?: number): number {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#open('notify')
    const off = this.#offset(byteOffset)
    return native.notify(handle, off, checkCount(count))
  }

  /**
   * Unmaps and releases the OS handle now. `buffer` is detached (every view over it reads
   * length 0; the native side detaches what it made, never a buffer from JavaScript), pending `waitAsync` promises reject with `ERR_SHM_CLOSED`, later calls throw
   * `ERR_SHM_CLOSED`, and the properties read `undefined`. A second call does nothing.
   */
  close(): void {
    if (!(#handle in this)) throw invalidThis()
    const handle = this.#handle
    if (handle === undefined) return
    native.close(handle) // detaches `buffer` and the view itself (it takes no buffer from JS)
    this.#handle = this.#name = this.#length = this.#access = this.#buffer = this.#caged = undefined
    this.#i32 = this.#shared = undefined
  }

  /** Same as `close()`, so that `using mem = new SharedMemory(…)` closes it. */
  [Symbol.dispose](): void {
    if (!(#handle in this)) throw invalidThis()
    this.close()
  }
}
