// A cross-process message channel on one shared-memory segment: length-prefixed records in a
// ring, producers claim → write → commit, one consumer reads → releases, futex wake-ups only when
// a side must sleep. The layout and protocol are language-neutral: docs/channel.md is the
// contract, and every offset and step below is named after it.
//
// Zero-copy mode: the atomics are JS `Atomics` on an Int32Array over the mapping and payloads are
// copied straight into / out of it, so a message costs no native call unless a side sleeps.
// Caged mode (`requiresCopy`): the same steps through the native atomics and copyFrom/copyTo of
// exactly the bytes of each record.

import { readFileSync } from 'node:fs'
import { availableParallelism, cpus } from 'node:os'

import { checkTimeout, describe, invalidType, outOfRange, type CodedError } from './errors'
import { SharedMemory } from './shared-memory'

// Captured when this module loads, as in shared-memory.ts: a later patch of `Atomics` neither sees
// the channel's view nor changes what it does. (Offsets here stay below 2^31: the ring is at most
// 2^30 bytes after a 1 KiB header, so `>> 2` is exact.)
const { load: atomicsLoad, store: atomicsStore, add: atomicsAdd, compareExchange: atomicsCompareExchange } = Atomics

/** Header layout (docs/channel.md §1). */
const MAGIC = 0x434d534e
const VERSION = 1
const HEADER = 1024
const O_MAGIC = 0
const O_VERSION = 4
const O_CAPACITY = 8
const O_MODE = 12
const O_RECOVERY = 16
const O_ENDED = 20
const O_TAIL = 128
const O_LOCK = 132
const O_LOCK_SLEEPERS = 136
const O_HEAD = 256
const O_CONSUMER = 260
const O_DATA_SEQ = 384
const O_CONSUMER_SLEEPERS = 388
const O_SPACE_SEQ = 512
const O_PRODUCER_SLEEPERS = 516

/** Record states (docs/channel.md §2); a claimed record holds `-pid`. */
const MESSAGE = 1
const PADDING = 2

const MIN_CAPACITY = 256
const MAX_CAPACITY = 2 ** 30
const DEFAULT_RECOVERY_MS = 1000

/** What `#next()` found when no message is ready. */
const EMPTY = -1
const BLOCKED = -2

/** Spins on the claim lock before checking its holder and sleeping. */
const LOCK_SPINS = 64
const LOCK_SLEEP_MS = 10

/**
 * How long (ms) a consumer polls for the next message before it registers as a sleeper and goes
 * to the kernel: a producer on another CPU usually commits within microseconds, and a futex
 * wake-up per message costs far more. No spinning where the process has one CPU.
 */
const SPIN_MS = (typeof availableParallelism === 'function' ? availableParallelism() : cpus().length) > 1 ? 0.05 : 0

/** Bytes a record of `length` payload bytes occupies. */
const recordSize = (length: number): number => (8 + length + 7) & ~7

/** The channel's producer arrangement. */
export type ChannelMode = 'many-to-one' | 'one-to-one'

/** Message data accepted by `send`: a string is sent as its UTF-8 bytes. */
export type ChannelData = string | ArrayBufferView | ArrayBuffer | SharedArrayBuffer

/** Options of {@link Channel.create}. */
export interface ChannelCreateOptions {
  /** Ring size in bytes: a power of two from 256 to 2^30. A message holds at most `capacity - 8` bytes. */
  capacity: number
  /** `'many-to-one'` (default): any number of producers; `'one-to-one'`: one producer, no lock per message. */
  mode?: ChannelMode
  /**
   * How long (ms) a record claimed by a producer that has since died must stay uncommitted
   * before the consumer skips it (docs/channel.md §6). Default 1000.
   */
  recoveryMs?: number
  /** Permission bits of the new segment (default `0o600`), filtered by the umask. */
  permissions?: number
}

/** Options of the blocking calls. */
export interface ChannelWaitOptions {
  /** Give up after this many ms with an `ETIMEDOUT` error (default: wait forever). */
  timeout?: number
}

function coded<E extends Error>(error: E, code: string, extra?: object): CodedError<E> {
  return Object.assign(error, { code }, extra)
}

function layoutError(name: string, why: string): CodedError {
  return coded(new Error(`shared memory '${name}' is not a usable channel: ${why} (see docs/channel.md)`), 'ERR_SHM_CHANNEL_LAYOUT')
}

function timedOut(method: string, ms: number): CodedError {
  return coded(new Error(`ETIMEDOUT: ${method}() timed out after ${ms} ms`), 'ETIMEDOUT', { errno: -110, syscall: method })
}

function closedError(method: string): CodedError {
  return coded(new Error(`Cannot call ${method}(): the channel is closed`), 'ERR_SHM_CLOSED')
}

/** Whether process `pid` is alive (docs/channel.md §6: ESRCH, or a zombie, is dead). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    if ((e as CodedError).code === 'ESRCH') return false
    // EPERM: it exists, owned by someone else.
  }
  if (process.platform === 'linux') {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
      const state = stat[stat.lastIndexOf(')') + 2]
      if (state === 'Z' || state === 'X') return false
    } catch {
      return false
    }
  }
  return true
}

function checkOptions(options: unknown, what = 'options'): Record<string, unknown> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object') throw invalidType(what, 'of type object', options)
  return options as Record<string, unknown>
}

/** A deadline (ms on the performance clock, Infinity = none) from `options.timeout`. */
function deadlineOf(options: unknown): [deadline: number, timeout: number] {
  const timeout = checkTimeout(checkOptions(options).timeout)
  return [timeout === Infinity ? Infinity : performance.now() + timeout, timeout]
}

/** Bytes of `data` as a Uint8Array (no copy), or the string to encode. */
function bytesOf(data: unknown): Uint8Array | string {
  if (typeof data === 'string') return data
  if (data instanceof Uint8Array) return data
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (data instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && data instanceof SharedArrayBuffer)) {
    return new Uint8Array(data)
  }
  throw invalidType('data', 'of type string or an instance of Buffer, TypedArray, DataView, ArrayBuffer or SharedArrayBuffer', data)
}

type Claim = { index: number; size: number; length: number; tail: number }

/** Set by `create()` for the constructor call it makes. */
let adopt: SharedMemory | undefined

/**
 * A message channel between processes over one named shared-memory segment: any number of
 * producers (or exactly one, in `'one-to-one'` mode) and one consumer, in any language that
 * follows [docs/channel.md](../docs/channel.md). Messages arrive whole, in order per producer,
 * never dropped: a full channel makes `send` wait (or `trySend` return `false`).
 */
export class Channel {
  #mem: SharedMemory | undefined
  readonly #name: string
  /** Int32 view over the mapping (zero-copy), or `null` when caged. */
  #i32: Int32Array | null
  /** Bytes of `mem.buffer`: the mapping itself (zero-copy) or the local copy (caged). */
  #buf: Buffer
  readonly #caged: boolean
  readonly #cap: number
  readonly #mask: number
  readonly #oneToOne: boolean
  readonly #recoveryMs: number
  readonly #pid = process.pid
  /** Producer: the last `head` read (never ahead of the real one). */
  #headSeen = 0
  /** One-to-one producer: registered in `producerLock`, and its private tail. */
  #producing = false
  #tail = 0
  #claim: Claim | undefined
  /** Consumer: registered in `consumerPid`, its head, and the last `tail` read. */
  #consuming = false
  #head = 0
  #tailSeen = 0
  /** Consumer: the claimed record at `head` being timed for recovery (§6). */
  #stuckAt = 0
  #stuckState = 0
  #stuckSince = 0
  /** Sleeper counts this handle holds while an async wait is pending (undone by close()). */
  #asyncConsumerSleeps = 0
  #asyncProducerSleeps = 0

  /**
   * Attaches to an existing channel by its segment name (as producer, consumer or both; the
   * role is taken by the first `send`/`receive`).
   * @throws Error `ENOENT` (no such segment), `EACCES` … as `new SharedMemory(name)` does.
   * @throws Error `ERR_SHM_CHANNEL_LAYOUT` when the segment is not a channel of this version, or
   *   its header is torn (wrong magic, version, capacity, mode, size or indices).
   */
  constructor(name: string) {
    const mem = adopt ?? new SharedMemory(name)
    adopt = undefined
    this.#name = name
    try {
      this.#caged = mem.requiresCopy as boolean
      const buffer = mem.buffer as ArrayBuffer
      // Length from the native side (`mem.length`), not the patchable `byteLength` getter; `/ 4`, not
      // `>> 2`, which wraps past 2^31 bytes.
      this.#i32 = this.#caged ? null : new Int32Array(buffer, 0, Math.floor((mem.length as number) / 4))
      this.#buf = Buffer.from(buffer)
      this.#mem = mem
      let magic = this.#ld(O_MAGIC)
      for (const until = Date.now() + 100; magic === 0 && Date.now() < until; magic = this.#ld(O_MAGIC)) {
        mem.wait(O_MAGIC, 0, 5) // the creator may be writing the header
      }
      if (magic !== MAGIC) throw layoutError(name, `magic is 0x${(magic >>> 0).toString(16)}, expected 0x${MAGIC.toString(16)}`)
      const version = this.#ld(O_VERSION)
      if (version !== VERSION) throw layoutError(name, `layout version ${version}, this package speaks version ${VERSION}`)
      const cap = this.#ld(O_CAPACITY) >>> 0
      if (cap < MIN_CAPACITY || cap > MAX_CAPACITY || (cap & (cap - 1)) !== 0) throw layoutError(name, `capacity ${cap} is not a power of two from ${MIN_CAPACITY} to 2^30`)
      if ((mem.length as number) < HEADER + cap) throw layoutError(name, `the segment has ${mem.length} bytes, the header says ${HEADER + cap}`)
      const mode = this.#ld(O_MODE)
      if (mode !== 0 && mode !== 1) throw layoutError(name, `unknown mode ${mode}`)
      const recovery = this.#ld(O_RECOVERY)
      if (recovery < 1) throw layoutError(name, `recoveryMs ${recovery} is not >= 1`)
      const used = (this.#ld(O_TAIL) - this.#ld(O_HEAD)) >>> 0
      if (used > cap || used % 8 !== 0) throw layoutError(name, `tail - head is ${used}, not a multiple of 8 within the capacity ${cap}`)
      this.#cap = cap
      this.#mask = cap - 1
      this.#oneToOne = mode === 1
      this.#recoveryMs = recovery
    } catch (e) {
      mem.close()
      this.#mem = undefined
      throw e
    }
  }

  /**
   * Creates a new channel: a segment of `1024 + capacity` bytes named `name` (fails with
   * `EEXIST` if the name exists), with the header of docs/channel.md.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options.
   * @throws RangeError `ERR_OUT_OF_RANGE` for a capacity that is not a power of two from 256 to 2^30.
   */
  static create(name: string, options: ChannelCreateOptions): Channel {
    if (options === null || typeof options !== 'object') throw invalidType('options', 'of type object', options)
    const { capacity, mode = 'many-to-one', recoveryMs = DEFAULT_RECOVERY_MS, permissions } = options
    if (typeof capacity !== 'number') throw invalidType('options.capacity', 'of type number', capacity)
    if (!Number.isInteger(capacity) || capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
      throw outOfRange('options.capacity', `a power of two >= ${MIN_CAPACITY} and <= 2^30`, String(capacity))
    }
    if (mode !== 'many-to-one' && mode !== 'one-to-one') {
      throw coded(new TypeError(`The property 'options.mode' must be 'many-to-one' or 'one-to-one'. Received ${describe(mode)}`), 'ERR_INVALID_ARG_VALUE')
    }
    if (typeof recoveryMs !== 'number') throw invalidType('options.recoveryMs', 'of type number', recoveryMs)
    if (!Number.isInteger(recoveryMs) || recoveryMs < 1 || recoveryMs > 2 ** 31 - 1) {
      throw outOfRange('options.recoveryMs', 'an integer >= 1 and <= 2147483647', String(recoveryMs))
    }
    const mem = SharedMemory.create(name, HEADER + capacity, permissions === undefined ? undefined : { mode: permissions })
    mem.atomicStore(O_VERSION, VERSION)
    mem.atomicStore(O_CAPACITY, capacity | 0)
    mem.atomicStore(O_MODE, mode === 'one-to-one' ? 1 : 0)
    mem.atomicStore(O_RECOVERY, recoveryMs)
    mem.atomicStore(O_MAGIC, MAGIC) // last: attachers wait for it
    mem.notify(O_MAGIC)
    adopt = mem
    return new Channel(name)
  }

  /** Removes a channel's segment name (as `SharedMemory.unlink`); open handles keep working. */
  static unlink(name: string): boolean {
    return SharedMemory.unlink(name)
  }

  // ---- words --------------------------------------------------------------------------------

  #ld(off: number): number {
    const a = this.#i32
    return a !== null ? atomicsLoad(a, off >> 2) : (this.#mem as SharedMemory).atomicLoad(off)
  }

  #st(off: number, v: number): void {
    const a = this.#i32
    if (a !== null) atomicsStore(a, off >> 2, v)
    else (this.#mem as SharedMemory).atomicStore(off, v | 0)
  }

  #add(off: number, v: number): number {
    const a = this.#i32
    return a !== null ? atomicsAdd(a, off >> 2, v) : (this.#mem as SharedMemory).atomicAdd(off, v)
  }

  #cas(off: number, expected: number, replacement: number): number {
    const a = this.#i32
    return a !== null ? atomicsCompareExchange(a, off >> 2, expected, replacement) : (this.#mem as SharedMemory).atomicCompareExchange(off, expected, replacement)
  }

  #open(method: string): SharedMemory {
    const mem = this.#mem
    if (mem === undefined) throw closedError(method)
    return mem
  }

  // ---- properties ---------------------------------------------------------------------------

  /** The segment name the channel was opened with. */
  get name(): string {
    return this.#name
  }

  /** Ring size in bytes. */
  get capacity(): number {
    return this.#cap
  }

  /** The largest message, in bytes (`capacity - 8`). */
  get maxMessageLength(): number {
    return this.#cap - 8
  }

  /** `'many-to-one'` or `'one-to-one'`, as the creator chose. */
  get mode(): ChannelMode {
    return this.#oneToOne ? 'one-to-one' : 'many-to-one'
  }

  /** `true` when the segment is a caged copy (payloads go through copyFrom/copyTo). */
  get requiresCopy(): boolean {
    return this.#caged
  }

  /** `true` once `close()` has run on this handle. */
  get closed(): boolean {
    return this.#mem === undefined
  }

  /** `true` once some peer has called `end()` (read from the shared header). */
  get ended(): boolean {
    this.#open('ended')
    return this.#ld(O_ENDED) !== 0
  }

  // ---- producer -----------------------------------------------------------------------------

  /** Wake-consumer step (§3.5). */
  #wakeConsumer(mem: SharedMemory): void {
    if (this.#ld(O_CONSUMER_SLEEPERS) > 0) {
      this.#add(O_DATA_SEQ, 1)
      mem.notify(O_DATA_SEQ, 1)
    }
  }

  #writePadding(index: number, bytes: number): void {
    this.#st(HEADER + index + 4, bytes - 8)
    this.#st(HEADER + index, PADDING)
  }

  #checkLength(length: number): void {
    if (length > this.#cap - 8) {
      throw outOfRange('data.byteLength', `<= ${this.#cap - 8} (the channel's capacity minus 8)`, String(length))
    }
  }

  /** Takes the claim lock (many-to-one), taking it over from a dead holder (§6). */
  #lock(mem: SharedMemory): void {
    const me = this.#pid
    let spins = 0
    for (;;) {
      const holder = this.#cas(O_LOCK, 0, me)
      if (holder === 0) return
      if (++spins < LOCK_SPINS) continue
      if (holder > 0 && holder !== me && !isProcessAlive(holder)) {
        if (this.#cas(O_LOCK, holder, me) === holder) return
        continue
      }
      this.#add(O_LOCK_SLEEPERS, 1)
      if (this.#ld(O_LOCK) === holder) mem.wait(O_LOCK, holder, LOCK_SLEEP_MS)
      this.#add(O_LOCK_SLEEPERS, -1)
    }
  }

  #unlock(mem: SharedMemory): void {
    this.#st(O_LOCK, 0)
    if (this.#ld(O_LOCK_SLEEPERS) > 0) mem.notify(O_LOCK, 1)
  }

  /** Registers as the one producer of a one-to-one channel (§3), taking over a dead one (§6). */
  #register(): void {
    const me = this.#pid
    for (;;) {
      const holder = this.#cas(O_LOCK, 0, me)
      if (holder === 0) break
      if (holder !== me && holder > 0 && !isProcessAlive(holder)) {
        if (this.#cas(O_LOCK, holder, me) === holder) break
        continue
      }
      throw coded(new Error(`channel '${this.#name}' is one-to-one and process ${holder} is its producer`), 'ERR_SHM_CHANNEL_BUSY')
    }
    this.#producing = true
    this.#tail = this.#ld(O_TAIL)
    this.#headSeen = this.#ld(O_HEAD)
  }

  /**
   * Claims a record for `length` payload bytes (§3 steps 1–3): its ring index, or -1 when the
   * ring is full (the head seen is left in `#headSeen` for the caller's sleep).
   */
  #tryClaim(mem: SharedMemory, length: number): number {
    if (this.#claim !== undefined) {
      throw coded(new Error('a claim() on this channel handle is not committed yet: commit() or abort() it first'), 'ERR_SHM_CHANNEL_CLAIM_PENDING')
    }
    if (this.#ld(O_ENDED) !== 0) throw coded(new Error(`channel '${this.#name}' has ended`), 'ERR_SHM_CHANNEL_ENDED')
    const size = recordSize(length)
    const cap = this.#cap
    if (this.#oneToOne) {
      if (!this.#producing) this.#register()
      for (;;) {
        const t = this.#tail
        const i = t & this.#mask
        const toEnd = cap - i
        const need = size > toEnd ? toEnd : size
        if (need > cap - ((t - this.#headSeen) | 0)) {
          this.#headSeen = this.#ld(O_HEAD)
          if (need > cap - ((t - this.#headSeen) | 0)) return -1
        }
        if (size > toEnd) {
          this.#writePadding(i, toEnd)
          this.#tail = (t + toEnd) | 0
          this.#st(O_TAIL, this.#tail)
          this.#wakeConsumer(mem)
          continue
        }
        this.#claim = { index: i, size, length, tail: t }
        return i
      }
    }
    this.#lock(mem)
    for (;;) {
      // Other producers move the tail, so a cached head could be arbitrarily stale: read it.
      const t = this.#ld(O_TAIL)
      const h = (this.#headSeen = this.#ld(O_HEAD))
      const i = t & this.#mask
      const toEnd = cap - i
      const need = size > toEnd ? toEnd : size
      if (need > cap - ((t - h) | 0)) {
        this.#unlock(mem)
        return -1
      }
      if (size > toEnd) {
        this.#writePadding(i, toEnd)
        this.#st(O_TAIL, (t + toEnd) | 0)
        this.#wakeConsumer(mem)
        continue
      }
      this.#st(HEADER + i + 4, length)
      this.#st(HEADER + i, -this.#pid)
      this.#st(O_TAIL, (t + size) | 0)
      this.#unlock(mem)
      this.#claim = { index: i, size, length, tail: t }
      return i
    }
  }

  /** Publishes the pending claim as a message (`state` 1) or padding (2). */
  #publish(mem: SharedMemory, state: number): void {
    const c = this.#claim as Claim
    this.#claim = undefined
    const at = HEADER + c.index
    if (this.#caged && state === MESSAGE && c.length > 0) mem.copyTo(at + 8, at + 8, c.length)
    if (this.#oneToOne) {
      this.#st(at + 4, state === MESSAGE ? c.length : c.size - 8)
      this.#st(at, state)
      this.#tail = (c.tail + c.size) | 0
      this.#st(O_TAIL, this.#tail)
    } else {
      if (state === PADDING) this.#st(at + 4, c.size - 8)
      this.#st(at, state)
    }
    this.#wakeConsumer(mem)
  }

  /** Producer sleep (§4) after a full ring; false once `deadline` has passed. */
  #sleepForSpace(mem: SharedMemory, deadline: number): boolean {
    const left = deadline - performance.now()
    if (left <= 0) return false
    const seen = this.#headSeen
    const v = this.#ld(O_SPACE_SEQ)
    this.#add(O_PRODUCER_SLEEPERS, 1)
    try {
      if (this.#ld(O_HEAD) === seen && this.#ld(O_ENDED) === 0) mem.wait(O_SPACE_SEQ, v, left)
    } finally {
      this.#add(O_PRODUCER_SLEEPERS, -1)
    }
    return true
  }

  async #sleepForSpaceAsync(mem: SharedMemory, deadline: number): Promise<boolean> {
    const left = deadline - performance.now()
    if (left <= 0) return false
    const seen = this.#headSeen
    const v = this.#ld(O_SPACE_SEQ)
    this.#add(O_PRODUCER_SLEEPERS, 1)
    this.#asyncProducerSleeps++
    try {
      if (this.#ld(O_HEAD) === seen && this.#ld(O_ENDED) === 0) await mem.waitAsync(O_SPACE_SEQ, v, left)
    } finally {
      if (this.#mem !== undefined) {
        this.#add(O_PRODUCER_SLEEPERS, -1)
        this.#asyncProducerSleeps--
      }
    }
    return true
  }

  /** Writes `data` (bytes or a string of `length` UTF-8 bytes) into the claimed record. */
  #fill(index: number, data: Uint8Array | string, length: number): void {
    const at = HEADER + index + 8
    if (typeof data === 'string') this.#buf.write(data, at, length, 'utf8')
    else this.#buf.set(data, at)
  }

  /**
   * Sends one message, waiting while the channel is full. A string is sent as UTF-8.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` for data that is not a string, TypedArray,
   *   DataView, Buffer or (Shared)ArrayBuffer.
   * @throws RangeError `ERR_OUT_OF_RANGE` for a message longer than `maxMessageLength`.
   * @throws Error `ETIMEDOUT` when `options.timeout` ms pass with the channel still full (nothing
   *   was sent); `ERR_SHM_CHANNEL_ENDED` after `end()`; `ERR_SHM_CHANNEL_BUSY` on a one-to-one
   *   channel whose producer is another live process; `ERR_SHM_CLOSED` after `close()`.
   */
  send(data: ChannelData, options?: ChannelWaitOptions): void {
    const mem = this.#open('send')
    const bytes = bytesOf(data)
    const [deadline, timeout] = deadlineOf(options)
    const length = typeof bytes === 'string' ? Buffer.byteLength(bytes, 'utf8') : bytes.byteLength
    this.#checkLength(length)
    let i: number
    while ((i = this.#tryClaim(mem, length)) < 0) {
      if (!this.#sleepForSpace(mem, deadline)) throw timedOut('send', timeout)
    }
    this.#fill(i, bytes, length)
    this.#publish(mem, MESSAGE)
  }

  /**
   * Sends one message if there is room now: `true` when sent, `false` when the channel is
   * full (nothing was sent). Same errors as `send`, without `ETIMEDOUT`.
   */
  trySend(data: ChannelData): boolean {
    const mem = this.#open('trySend')
    const bytes = bytesOf(data)
    const length = typeof bytes === 'string' ? Buffer.byteLength(bytes, 'utf8') : bytes.byteLength
    this.#checkLength(length)
    const i = this.#tryClaim(mem, length)
    if (i < 0) return false
    this.#fill(i, bytes, length)
    this.#publish(mem, MESSAGE)
    return true
  }

  /**
   * Like `send`, without blocking the event loop while the channel is full (the wait for room
   * runs off-thread). Rejects as `send` throws; with `ERR_SHM_CLOSED` if `close()` runs meanwhile.
   */
  async sendAsync(data: ChannelData, options?: ChannelWaitOptions): Promise<void> {
    const mem = this.#open('sendAsync')
    const bytes = bytesOf(data)
    const [deadline, timeout] = deadlineOf(options)
    const length = typeof bytes === 'string' ? Buffer.byteLength(bytes, 'utf8') : bytes.byteLength
    this.#checkLength(length)
    let i: number
    while ((i = this.#tryClaim(mem, length)) < 0) {
      if (!(await this.#sleepForSpaceAsync(mem, deadline))) throw timedOut('sendAsync', timeout)
      this.#open('sendAsync')
    }
    this.#fill(i, bytes, length)
    this.#publish(mem, MESSAGE)
  }

  /**
   * Claims room for a message of `length` bytes and returns a view of exactly those bytes in
   * the ring (in caged mode: in the local copy), for writers that fill the ring directly. Fill
   * it, then `commit()` (or `abort()`). Waits while the channel is full, as `send` does. One
   * claim at a time per handle; a claim never committed holds up the consumer until this
   * process exits (then the recovery rule skips it), so always commit or abort.
   * @throws Error `ERR_SHM_CHANNEL_CLAIM_PENDING` while a claim is pending; otherwise as `send`.
   */
  claim(length: number, options?: ChannelWaitOptions): Uint8Array {
    const mem = this.#open('claim')
    const n = this.#claimLength(length)
    const [deadline, timeout] = deadlineOf(options)
    let i: number
    while ((i = this.#tryClaim(mem, n)) < 0) {
      if (!this.#sleepForSpace(mem, deadline)) throw timedOut('claim', timeout)
    }
    return new Uint8Array(this.#buf.buffer, this.#buf.byteOffset + HEADER + i + 8, n)
  }

  /** Like `claim`, but returns `null` at once when the channel is full. */
  tryClaim(length: number): Uint8Array | null {
    const mem = this.#open('tryClaim')
    const n = this.#claimLength(length)
    const i = this.#tryClaim(mem, n)
    return i < 0 ? null : new Uint8Array(this.#buf.buffer, this.#buf.byteOffset + HEADER + i + 8, n)
  }

  #claimLength(length: unknown): number {
    if (typeof length !== 'number') throw invalidType('length', 'of type number', length)
    if (!Number.isInteger(length) || length < 0 || length > this.#cap - 8) {
      throw outOfRange('length', `an integer >= 0 and <= ${this.#cap - 8}`, String(length))
    }
    return length
  }

  /**
   * Publishes the pending claim: the consumer receives its bytes as they are now.
   * @throws Error `ERR_SHM_CHANNEL_NO_CLAIM` when there is no pending claim.
   */
  commit(): void {
    const mem = this.#open('commit')
    if (this.#claim === undefined) throw coded(new Error('commit() without a pending claim()'), 'ERR_SHM_CHANNEL_NO_CLAIM')
    this.#publish(mem, MESSAGE)
  }

  /**
   * Drops the pending claim: its room is published as padding and no message is delivered.
   * @throws Error `ERR_SHM_CHANNEL_NO_CLAIM` when there is no pending claim.
   */
  abort(): void {
    const mem = this.#open('abort')
    if (this.#claim === undefined) throw coded(new Error('abort() without a pending claim()'), 'ERR_SHM_CHANNEL_NO_CLAIM')
    this.#publish(mem, PADDING)
  }

  /**
   * Ends the channel for every peer (docs/channel.md §5): later sends fail with
   * `ERR_SHM_CHANNEL_ENDED`; the consumer still gets every message already committed, then
   * `receive()` returns `null` and `for await` stops. Wakes all sleepers.
   */
  end(): void {
    const mem = this.#open('end')
    this.#st(O_ENDED, 1)
    this.#add(O_DATA_SEQ, 1)
    mem.notify(O_DATA_SEQ)
    this.#add(O_SPACE_SEQ, 1)
    mem.notify(O_SPACE_SEQ)
  }

  // ---- consumer -----------------------------------------------------------------------------

  #registerConsumer(): void {
    const me = this.#pid
    const holder = this.#cas(O_CONSUMER, 0, me)
    if (holder !== 0 && holder !== me) {
      if (isProcessAlive(holder) || this.#cas(O_CONSUMER, holder, me) !== holder) {
        throw coded(new Error(`channel '${this.#name}' already has a consumer: process ${holder}`), 'ERR_SHM_CHANNEL_BUSY')
      }
    }
    this.#consuming = true
    this.#head = this.#ld(O_HEAD)
    this.#tailSeen = this.#head
  }

  /** Consumer release (§4 step 3). */
  #release(mem: SharedMemory, length: number): void {
    const h = (this.#head + recordSize(length)) | 0
    this.#head = h
    this.#st(O_HEAD, h)
    if (this.#ld(O_PRODUCER_SLEEPERS) > 0) {
      this.#add(O_SPACE_SEQ, 1)
      mem.notify(O_SPACE_SEQ)
    }
  }

  /** The ring index of the next message (padding skipped, §6 applied), or EMPTY / BLOCKED. */
  #next(mem: SharedMemory): number {
    if (!this.#consuming) this.#registerConsumer()
    for (;;) {
      const h = this.#head
      if (h === this.#tailSeen) {
        this.#tailSeen = this.#ld(O_TAIL)
        if (h === this.#tailSeen) return EMPTY
      }
      const i = h & this.#mask
      const s = this.#ld(HEADER + i)
      if (s === MESSAGE || s === PADDING) {
        const length = this.#ld(HEADER + i + 4) >>> 0
        if (recordSize(length) > this.#cap - i) throw layoutError(this.#name, `record at position ${h >>> 0} has length ${length}, past the ring's end`)
        if (s === MESSAGE) return i
        this.#release(mem, length)
        continue
      }
      if (s >= 0) throw layoutError(this.#name, `record at position ${h >>> 0} has state ${s}`)
      // Claimed by process -s, not committed yet: the recovery rule (§6).
      const now = performance.now()
      if (this.#stuckAt !== h || this.#stuckState !== s) {
        this.#stuckAt = h
        this.#stuckState = s
        this.#stuckSince = now
        return BLOCKED
      }
      if (now - this.#stuckSince < this.#recoveryMs || isProcessAlive(-s)) return BLOCKED
      this.#cas(HEADER + i, s, PADDING) // fails only if the producer committed meanwhile
    }
  }

  /** Length of the message at `index`, its bytes pulled into the local copy when caged. */
  #pull(mem: SharedMemory, index: number): number {
    const length = this.#ld(HEADER + index + 4) >>> 0
    if (this.#caged && length > 0) mem.copyFrom(HEADER + index + 8, HEADER + index + 8, length)
    return length
  }

  #take(mem: SharedMemory, index: number): Uint8Array {
    const length = this.#pull(mem, index)
    const at = HEADER + index + 8
    const out = new Uint8Array(length)
    this.#buf.copy(out, 0, at, at + length)
    this.#release(mem, length)
    return out
  }

  /** One consumer round: a message, `null` (ended and drained), or EMPTY/BLOCKED after a re-check under the sleeper count. */
  #poll(mem: SharedMemory): number | null {
    const r = this.#next(mem)
    if (r >= 0) return r
    if (r === EMPTY && this.#ld(O_ENDED) !== 0) {
      const again = this.#next(mem) // a message committed just before the end
      return again >= 0 ? again : again === EMPTY ? null : again
    }
    return r
  }

  /** Polls for up to SPIN_MS: a message index, `null` (ended), or EMPTY/BLOCKED. */
  #spin(mem: SharedMemory): number | null {
    let r = this.#poll(mem)
    if (r === null || r >= 0 || SPIN_MS === 0) return r
    const until = performance.now() + SPIN_MS
    do {
      r = this.#poll(mem)
      if (r === null || r >= 0) return r
    } while (performance.now() < until)
    return r
  }

  /** Waits for a message: its index, `null` (ended), or -1 (timed out). */
  #await(mem: SharedMemory, deadline: number): number | null {
    for (;;) {
      const r = this.#spin(mem)
      if (r === null || r >= 0) return r
      const v = this.#ld(O_DATA_SEQ)
      this.#add(O_CONSUMER_SLEEPERS, 1)
      let again: number | null
      try {
        again = this.#poll(mem)
        if (again !== null && again < 0) {
          const left = deadline - performance.now()
          if (left <= 0) return -1
          mem.wait(O_DATA_SEQ, v, again === BLOCKED ? Math.min(left, this.#recoveryMs) : left)
        }
      } finally {
        this.#add(O_CONSUMER_SLEEPERS, -1)
      }
      if (again === null || again >= 0) return again
    }
  }

  async #awaitAsync(mem: SharedMemory, deadline: number): Promise<number | null> {
    for (;;) {
      const r = this.#spin(mem)
      if (r === null || r >= 0) return r
      const v = this.#ld(O_DATA_SEQ)
      this.#add(O_CONSUMER_SLEEPERS, 1)
      this.#asyncConsumerSleeps++
      let again: number | null
      try {
        again = this.#poll(mem)
        if (again !== null && again < 0) {
          const left = deadline - performance.now()
          if (left <= 0) return -1
          await mem.waitAsync(O_DATA_SEQ, v, again === BLOCKED ? Math.min(left, this.#recoveryMs) : left)
        }
      } finally {
        if (this.#mem !== undefined) {
          this.#add(O_CONSUMER_SLEEPERS, -1)
          this.#asyncConsumerSleeps--
        }
      }
      if (this.#mem === undefined) throw closedError('receiveAsync')
      if (again === null || again >= 0) return again
    }
  }

  /**
   * Receives the next message as a new `Uint8Array` (a copy), waiting while there is none.
   * Returns `null` once the channel has ended (`end()`) and every message has been received.
   * The first receive makes this process the channel's one consumer.
   * @throws Error `ETIMEDOUT` after `options.timeout` ms without a message;
   *   `ERR_SHM_CHANNEL_BUSY` when another live process is the consumer; `ERR_SHM_CLOSED`.
   */
  receive(options?: ChannelWaitOptions): Uint8Array | null {
    const mem = this.#open('receive')
    const [deadline, timeout] = deadlineOf(options)
    const i = this.#await(mem, deadline)
    if (i === null) return null
    if (i < 0) throw timedOut('receive', timeout)
    return this.#take(mem, i)
  }

  /**
   * Receives the next message into `view` (no allocation for a Uint8Array or Buffer) and returns
   * its length, or `null` once the channel has ended and is drained. Waits like `receive`.
   * @throws RangeError `ERR_OUT_OF_RANGE` when the message is longer than `view` (the message
   *   stays queued; `err.messageLength` tells its size).
   */
  receiveInto(view: ArrayBufferView, options?: ChannelWaitOptions): number | null {
    const mem = this.#open('receiveInto')
    if (!ArrayBuffer.isView(view)) throw invalidType('view', 'an instance of Buffer, TypedArray or DataView', view)
    const [deadline, timeout] = deadlineOf(options)
    const i = this.#await(mem, deadline)
    if (i === null) return null
    if (i < 0) throw timedOut('receiveInto', timeout)
    const length = this.#pull(mem, i)
    if (length > view.byteLength) {
      throw coded(outOfRange('view.byteLength', `>= ${length} (the next message's length)`, String(view.byteLength)), 'ERR_OUT_OF_RANGE', { messageLength: length })
    }
    const target = view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
    const at = HEADER + i + 8
    this.#buf.copy(target, 0, at, at + length)
    this.#release(mem, length)
    return length
  }

  /** Receives the next message if one is ready now (a copy), else returns `null` at once. */
  tryReceive(): Uint8Array | null {
    const mem = this.#open('tryReceive')
    const i = this.#next(mem)
    return i < 0 ? null : this.#take(mem, i)
  }

  /**
   * Like `receive`, without blocking the event loop (the wait runs off-thread). Resolves with
   * `null` once the channel has ended and is drained; rejects with `ERR_SHM_CLOSED` if this
   * handle is closed meanwhile, and with `ETIMEDOUT` after `options.timeout` ms.
   */
  async receiveAsync(options?: ChannelWaitOptions): Promise<Uint8Array | null> {
    const mem = this.#open('receiveAsync')
    const [deadline, timeout] = deadlineOf(options)
    let i: number | null
    try {
      i = await this.#awaitAsync(mem, deadline)
    } catch (e) {
      if (this.#mem === undefined) throw closedError('receiveAsync')
      throw e
    }
    if (i === null) return null
    if (i < 0) throw timedOut('receiveAsync', timeout)
    return this.#take(mem, i)
  }

  /**
   * `for await (const message of channel)`: every message as a `Uint8Array`, until the
   * channel ends (`end()`, after the last message) or this handle is closed (`close()`).
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      if (this.#mem === undefined) return
      let m: Uint8Array | null
      try {
        m = await this.receiveAsync()
      } catch (e) {
        if ((e as CodedError).code === 'ERR_SHM_CLOSED') return
        throw e
      }
      if (m === null) return
      yield m
    }
  }

  /**
   * Closes this handle (not the channel: see `end()`): a pending claim is aborted, this
   * process's consumer/producer registration is released, pending async calls reject with
   * `ERR_SHM_CLOSED` (an async iteration just stops), later calls throw `ERR_SHM_CLOSED`.
   * A second call does nothing.
   */
  close(): void {
    const mem = this.#mem
    if (mem === undefined) return
    if (this.#claim !== undefined) this.#publish(mem, PADDING)
    if (this.#consuming) this.#cas(O_CONSUMER, this.#pid, 0)
    if (this.#producing) this.#cas(O_LOCK, this.#pid, 0)
    if (this.#asyncConsumerSleeps) this.#add(O_CONSUMER_SLEEPERS, -this.#asyncConsumerSleeps)
    if (this.#asyncProducerSleeps) this.#add(O_PRODUCER_SLEEPERS, -this.#asyncProducerSleeps)
    this.#asyncConsumerSleeps = this.#asyncProducerSleeps = 0
    this.#consuming = this.#producing = false
    this.#mem = undefined
    mem.close()
  }

  /** Same as `close()`, for `using ch = new Channel(…)`. */
  [Symbol.dispose](): void {
    this.close()
  }
}
