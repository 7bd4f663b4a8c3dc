// A cross-process message channel on one shared-memory segment: length-prefixed records in a
// ring, producers claim → write → commit, one consumer reads → releases, futex wake-ups only when
// a side must sleep. docs/channel.md (layout/protocol version 2) is the contract. This file is the
// public class: arguments, errors, blocking and async waits. The contract itself lives beside it:
// channel-layout.ts (header, records, attach checks), channel-protocol.ts (the producer and
// consumer steps, liveness) and channel-words.ts (the word interface: zero-copy or caged).

import {
  DEFAULT_RECOVERY_MS,
  HEADER,
  MAGIC,
  MAX_CAPACITY,
  MESSAGE,
  MIN_CAPACITY,
  O_CAPACITY,
  O_CONSUMER_SLEEPERS,
  O_DATA_SEQ,
  O_ENDED,
  O_LOCK,
  O_MAGIC,
  O_MODE,
  O_PRODUCER_SLEEPERS,
  O_RECOVERY,
  O_VERSION,
  PADDING,
  VERSION,
  checkHeader,
  coded,
  layoutError,
  recordSize,
} from './channel-layout'
import { FULL, MORE, Protocol } from './channel-protocol'
import { CagedWords, MappedWords, uncurry, type Words } from './channel-words'
import { checkTimeout, describe, invalidType, outOfRange, type CodedError } from './errors'
import { native } from './native'
import { SharedMemory } from './shared-memory'

/** `sendMany` batches up to this many messages reuse the handle's arrays (larger ones get their own). */
const REUSED_BATCH = 4096
/** How long `trySend`/`tryClaim` may wait for the claim lock (normally held for microseconds). */
const TRY_LOCK_MS = 50
/** How long the async paths block the event loop for the claim lock before yielding. */
const ASYNC_LOCK_MS = 1
/** How long an async producer yields while another producer holds the claim lock. */
const ASYNC_LOCK_SLEEP_MS = 10

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

function timedOut(method: string, ms: number): CodedError {
  return coded(new Error(`ETIMEDOUT: ${method}() timed out after ${ms} ms`), 'ETIMEDOUT', { errno: -110, syscall: method })
}

function closedError(method: string): CodedError {
  return coded(new Error(`Cannot call ${method}(): the channel is closed`), 'ERR_SHM_CLOSED')
}

function checkOptions(options: unknown, what = 'options'): Record<string, unknown> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object') throw invalidType(what, 'of type object', options)
  return options as Record<string, unknown>
}

/** A deadline (ms on the performance clock, Infinity = none) from `options.timeout` (no allocation). */
function deadlineOf(options: unknown): number {
  if (options === undefined) return Infinity
  const timeout = checkTimeout(checkOptions(options).timeout)
  return timeout === Infinity ? Infinity : performance.now() + timeout
}

/** `options.timeout` checked (Infinity = none), for waits that read the clock only once they must wait. */
function waitOf(options: unknown): number {
  return options === undefined ? Infinity : checkTimeout(checkOptions(options).timeout)
}

/** `options.timeout` (already checked by `deadlineOf`), for the ETIMEDOUT message. */
function timeoutOf(options: unknown): number {
  return checkTimeout(checkOptions(options).timeout)
}

/** A fixed-length view of a buffer that may be resizable / growable (a length-tracking view would change under us). */
function fixed(buffer: ArrayBufferLike, offset: number, length: number): Uint8Array {
  return new U8(buffer, offset, length)
}

/** A detached source is an error, not an empty message (`detached` is Node 22+; a view of it throws before). */
function checkAttached(buffer: ArrayBufferLike): void {
  const b = buffer as ArrayBufferLike & { detached?: boolean }
  let detached = b.detached === true
  if (b.detached === undefined) {
    try {
      new Uint8Array(buffer, 0, 0)
    } catch {
      detached = true
    }
  }
  if (detached) throw coded(new TypeError('The data\'s ArrayBuffer is detached (transferred): there is nothing to send'), 'ERR_INVALID_STATE')
}

// The view accessors, captured at load: a getter patched later (`byteLength` reporting less than
// the view holds) must not make the claimed length and the bytes copied disagree (issue 18).
const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array.prototype) as object
const getter = (proto: object, key: PropertyKey) => uncurry(Object.getOwnPropertyDescriptor(proto, key)!.get!)
const taTag = getter(TYPED_ARRAY, Symbol.toStringTag)
const taAccess = { buffer: getter(TYPED_ARRAY, 'buffer'), offset: getter(TYPED_ARRAY, 'byteOffset'), length: getter(TYPED_ARRAY, 'byteLength') }
const dvAccess = { buffer: getter(DataView.prototype, 'buffer'), offset: getter(DataView.prototype, 'byteOffset'), length: getter(DataView.prototype, 'byteLength') }
const taAt = uncurry((TYPED_ARRAY as { at: unknown }).at)
const U8 = Uint8Array

/** A view over a shrunk resizable buffer (or a detached one): an error, never an empty message. */
function outOfBounds(): CodedError {
  return coded(new TypeError('The data view is out of bounds of its (resized or detached) ArrayBuffer: there is nothing to send'), 'ERR_INVALID_STATE')
}

/**
 * Bytes of `data` as a Uint8Array of a fixed length (no copy), or the string to encode. Taken
 * right before the claim, in the same synchronous step as the copy.
 */
function bytesOf(data: unknown): Uint8Array | string {
  if (typeof data === 'string') return data
  if (ArrayBuffer.isView(data)) {
    const tag = taTag(data) // undefined for a DataView
    const g = tag === undefined ? dvAccess : taAccess
    let b: ArrayBufferLike & { resizable?: boolean; growable?: boolean }, offset: number, length: number
    try {
      b = g.buffer(data) as ArrayBufferLike
      length = g.length(data) as number // a DataView's throws when out of bounds
      offset = g.offset(data) as number
      if (length === 0 && tag !== undefined) taAt(data, 0) // throws when out of bounds
    } catch {
      throw outOfBounds()
    }
    if (length === 0) checkAttached(b)
    if (tag === 'Uint8Array' && !b.resizable && !b.growable) return data as Uint8Array
    return fixed(b, offset, length)
  }
  if (data instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && data instanceof SharedArrayBuffer)) {
    if (data.byteLength === 0) checkAttached(data)
    return fixed(data, 0, data.byteLength)
  }
  throw invalidType('data', 'of type string or an instance of Buffer, TypedArray, DataView, ArrayBuffer or SharedArrayBuffer', data)
}

function lengthOf(bytes: Uint8Array | string): number {
  return typeof bytes === 'string' ? Buffer.byteLength(bytes, 'utf8') : (taAccess.length(bytes) as number)
}

/** NAME_MAX (255) less the longest lock-file suffix `.p2147483647` (docs/channel.md §6). */
const MAX_NAME_BYTES = 255 - 12

/** A name whose lock files could not be created is refused up front, not at the first send. */
function checkNameLength(name: unknown): void {
  if (typeof name !== 'string') return // SharedMemory reports the type
  const bytes = Buffer.byteLength(name.replace(/^\/+/, ''), 'utf8')
  if (bytes > MAX_NAME_BYTES) {
    throw coded(new Error(`ENAMETOOLONG: channel name of ${bytes} bytes: at most ${MAX_NAME_BYTES}, so that its lock files <name>.p<token> fit in NAME_MAX (255)`), 'ENAMETOOLONG', { syscall: 'open' })
  }
}

/** `new SharedMemory(name)`; an empty segment is no channel (ERR_SHM_CHANNEL_LAYOUT, not ERR_SHM_EMPTY). */
function attach(name: string): SharedMemory {
  try {
    return new SharedMemory(name)
  } catch (e) {
    if ((e as CodedError).code === 'ERR_SHM_EMPTY') throw layoutError(name, 'the segment has 0 bytes')
    throw e
  }
}

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
  readonly #w: Words
  readonly #p: Protocol
  readonly #caged: boolean
  /** Sleeper counts this handle holds while async waits are pending (undone by close()). */
  readonly #counted = { producer: 0, consumer: 0 }
  /** `sendMany`'s message lengths (reused). */
  readonly #lengths: number[] = []
  /** `sendMany`'s message bytes from its checking pass (reused; emptied after each call). */
  readonly #list: (Uint8Array | string | undefined)[] = []
  #inSendMany = false
  /** The last `send` data found to be a plain Uint8Array over a fixed-length buffer (see `send`). */
  #lastU8: unknown = undefined
  /** Record size of the message a `receiveView()` handed out and `release()` has not released (-1: none). */
  #viewSize = -1

  /**
   * Attaches to an existing channel by its segment name (as producer, consumer or both; the
   * role is taken by the first `send`/`receive`).
   * @throws Error `ENOENT` (no such segment), `EACCES` … as `new SharedMemory(name)` does.
   * @throws Error `ERR_SHM_CHANNEL_LAYOUT` when the segment is not a channel of layout version 2
   *   (a version-1 channel is refused, naming its version), or its header is torn (wrong magic,
   *   capacity, mode, size or indices).
   */
  constructor(name: string) {
    if (adopt === undefined) checkNameLength(name)
    const mem = adopt ?? attach(name)
    adopt = undefined
    this.#name = name
    try {
      this.#caged = mem.requiresCopy as boolean
      if ((mem.length as number) < HEADER) throw layoutError(name, `the segment has ${mem.length as number} bytes, less than the ${HEADER}-byte header`)
      const buffer = mem.buffer as ArrayBuffer
      const w = (this.#w = this.#caged ? new CagedWords(mem, buffer) : new MappedWords(mem, buffer))
      for (const until = Date.now() + 100; w.load(O_MAGIC) === 0 && Date.now() < until; ) {
        mem.wait(O_MAGIC, 0, 5) // the creator may be writing the header
      }
      this.#p = new Protocol(w, name, checkHeader(name, (off) => w.load(off), mem.length as number))
      this.#mem = mem
    } catch (e) {
      mem.close()
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
    checkNameLength(name)
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

  /**
   * Removes a channel's segment name (as `SharedMemory.unlink`) and the lock files its dead
   * participants left beside it (docs/channel.md §6); open handles keep working.
   */
  static unlink(name: string): boolean {
    const removed = SharedMemory.unlink(name)
    if (typeof name === 'string') native.removeStaleParticipants(name)
    return removed
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
    return this.#p.cap
  }

  /** The largest message, in bytes (`capacity - 8`). */
  get maxMessageLength(): number {
    return this.#p.cap - 8
  }

  /** `'many-to-one'` or `'one-to-one'`, as the creator chose. */
  get mode(): ChannelMode {
    return this.#p.oneToOne ? 'one-to-one' : 'many-to-one'
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
    return this.#w.load(O_ENDED) !== 0
  }

  // ---- producer -----------------------------------------------------------------------------

  #checkLength(length: number): void {
    if (length > this.#p.cap - 8) {
      throw outOfRange('data.byteLength', `<= ${this.#p.cap - 8} (the channel's capacity minus 8)`, String(length))
    }
  }

  /** Writes the bytes into the claimed record and commits it; anything that fails publishes padding. */
  #fillAndCommit(index: number, bytes: Uint8Array | string, length: number): void {
    try {
      this.#w.write(HEADER + index + 8, bytes, length)
    } catch (e) {
      this.#p.publish(PADDING)
      throw e
    }
    this.#p.publish(MESSAGE)
  }

  /**
   * Sends one message, waiting while the channel is full. A string is sent as UTF-8.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` for data that is not a string, TypedArray,
   *   DataView, Buffer or (Shared)ArrayBuffer.
   * @throws RangeError `ERR_OUT_OF_RANGE` for a message longer than `maxMessageLength`.
   * @throws Error `ETIMEDOUT` when `options.timeout` ms pass with the channel still full (nothing
   *   was sent); `ERR_SHM_CHANNEL_ENDED` after `end()` (a send either is delivered or throws
   *   this); `ERR_SHM_CHANNEL_BUSY` on a one-to-one channel whose producer is another live
   *   handle; `ERR_SHM_CHANNEL_LAYOUT` when a peer corrupted the header; `ERR_SHM_CLOSED`.
   */
  send(data: ChannelData, options?: ChannelWaitOptions): void {
    this.#open('send')
    let bytes: Uint8Array | string
    let length: number
    // The same Uint8Array as last time: its kind, buffer and offset cannot have changed (a
    // fixed-length buffer's view only loses its bytes by detaching, which the length shows).
    if (data === this.#lastU8 && (length = taAccess.length(data) as number) !== 0) {
      bytes = data as Uint8Array
    } else {
      bytes = bytesOf(data)
      length = lengthOf(bytes)
      this.#lastU8 = typeof bytes !== 'string' && bytes === data ? data : undefined
    }
    const timeout = waitOf(options)
    this.#checkLength(length)
    const p = this.#p
    if (!p.oneToOne) return this.#sendShared(bytes, length, timeout, options)
    // One-to-one: the payload is written beyond `tail` before the claim (docs/channel.md §3,
    // "Writing first"): the consumer never waits on a claimed record while the bytes are copied,
    // and a copy that throws published nothing. No lock, and the clock is read only once the
    // ring is found full.
    let i = p.roomOneToOne(length)
    if (i === FULL) i = this.#waitForRoom(length, timeout, options)
    p.filling = true
    try {
      this.#w.write(HEADER + i + 8, bytes, length)
    } finally {
      p.filling = false
    }
    // Code run inside the copy (a patched global) may have closed this handle.
    if (this.#mem === undefined) throw closedError('send')
    p.claimAt(i, length) // claim and end check (§3 steps 2–4), then commit at once
    p.publish(MESSAGE)
  }

  /** One-to-one `send`, ring full: waits for room for `length` bytes; its index, or ETIMEDOUT. */
  #waitForRoom(length: number, timeout: number, options: unknown): number {
    const p = this.#p
    const deadline = performance.now() + timeout
    let i: number
    while ((i = p.roomOneToOne(length)) === FULL) {
      if (p.spinForSpace(deadline)) continue
      if (!p.sleepForSpace(deadline)) throw timedOut('send', timeoutOf(options))
    }
    return i
  }

  /** Many-to-one `send`: claim under the lock, then fill and commit. */
  #sendShared(bytes: Uint8Array | string, length: number, timeout: number, options: unknown): void {
    const p = this.#p
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout
    let i: number
    while ((i = p.tryClaim(length, deadline)) === FULL) {
      if (p.spinForSpace(deadline)) continue
      if (!p.sleepForSpace(deadline)) throw timedOut('send', timeoutOf(options))
    }
    this.#fillAndCommit(i, bytes, length)
  }

  /**
   * Sends one message if there is room now: `true` when sent, `false` when the channel is
   * full (nothing was sent). Same errors as `send`, without `ETIMEDOUT`.
   */
  trySend(data: ChannelData): boolean {
    this.#open('trySend')
    const bytes = bytesOf(data)
    const length = lengthOf(bytes)
    this.#checkLength(length)
    const i = this.#p.tryClaim(length, performance.now() + TRY_LOCK_MS)
    if (i === FULL) return false
    this.#fillAndCommit(i, bytes, length)
    return true
  }

  /**
   * Sends every message of `messages`, in order, as `send` would one by one, but claims as many
   * as fit at a time with one `tail` store, one end check and at most one wake-up of the consumer
   * per batch (docs/channel.md §3, "Batches"). Every element is checked first: a bad one throws
   * before anything is sent. Waits while the channel is full; a batch larger than the ring goes
   * out in as many parts as it takes.
   * @throws as `send`. An `ETIMEDOUT` or `ERR_SHM_CHANNEL_ENDED` that comes after part of the
   *   batch was sent carries `err.sent`: how many of the first messages were sent (the rest were not).
   */
  sendMany(messages: readonly ChannelData[], options?: ChannelWaitOptions): void {
    this.#open('sendMany')
    if (!Array.isArray(messages)) throw invalidType('messages', 'an instance of Array', messages)
    const count = messages.length
    // An array proxy's trap could call sendMany again while this one checks: that call gets
    // arrays of its own (as does a batch too large to keep arrays of its size for later).
    const outer = !this.#inSendMany && count <= REUSED_BATCH
    const lengths = outer ? this.#lengths : []
    const list = outer ? this.#list : []
    if (outer) this.#inSendMany = true
    try {
      for (let k = 0; k < count; k++) {
        // Each element read once (an array proxy could hand out another one the second time).
        const bytes = (list[k] = bytesOf(messages[k]))
        const length = lengthOf(bytes)
        this.#checkLength(length)
        lengths[k] = length
      }
      this.#open('sendMany') // a proxy's trap may have closed this handle
      this.#sendList(lengths, list, count, options)
    } finally {
      for (let k = 0; k < count; k++) list[k] = undefined
      if (outer) this.#inSendMany = false
    }
  }

  #sendList(lengths: number[], list: (Uint8Array | string | undefined)[], count: number, options: unknown): void {
    const deadline = deadlineOf(options)
    const p = this.#p
    const w = this.#w
    let k = 0
    try {
      while (k < count) {
        const got = p.tryClaimMany(lengths, k, count, deadline)
        if (got === 0) {
          if (p.spinForSpace(deadline)) continue
          if (!p.sleepForSpace(deadline)) throw timedOut('sendMany', timeoutOf(options))
          continue
        }
        let filled = 0
        try {
          for (; filled < got; filled++) {
            const length = lengths[k + filled]
            const bytes = list[k + filled]!
            // Read again right before the copy: nothing of ours runs user code in between, but
            // a view's length must match its claim whatever happened (detached: 0).
            if (typeof bytes !== 'string' && (taAccess.length(bytes) as number) !== length) {
              throw coded(new TypeError(`messages[${k + filled}] changed length while sendMany() ran`), 'ERR_INVALID_STATE')
            }
            w.write(HEADER + p.batchAt[filled] + 8, bytes, length)
          }
        } finally {
          p.commitMany(filled)
          k += filled
        }
      }
    } catch (e) {
      if (k > 0 && e !== null && typeof e === 'object') (e as { sent?: number }).sent = k
      throw e
    }
  }

  /**
   * Like `send`, without blocking the event loop while the channel is full (the wait for room
   * runs off-thread). The data's bytes and length are taken once there is room, in the same
   * step as the copy. Rejects as `send` throws; with `ERR_SHM_CLOSED` if `close()` runs meanwhile.
   */
  async sendAsync(data: ChannelData, options?: ChannelWaitOptions): Promise<void> {
    this.#open('sendAsync')
    const deadline = deadlineOf(options)
    this.#checkLength(lengthOf(bytesOf(data)))
    for (;;) {
      const bytes = bytesOf(data)
      const length = lengthOf(bytes)
      this.#checkLength(length)
      const lockDeadline = Math.min(deadline, performance.now() + ASYNC_LOCK_MS)
      const i = this.#p.tryClaim(length, lockDeadline)
      if (i !== FULL) return this.#fillAndCommit(i, bytes, length)
      if (!this.#p.oneToOne && this.#p.lockedOut) {
        if (performance.now() >= deadline) throw timedOut('sendAsync', timeoutOf(options))
        await this.#w.waitAsync(O_LOCK, this.#w.load(O_LOCK), Math.min(ASYNC_LOCK_SLEEP_MS, deadline - performance.now()))
      } else if (!(await this.#p.sleepForSpaceAsync(deadline, this.#counted))) {
        throw timedOut('sendAsync', timeoutOf(options))
      }
      this.#open('sendAsync')
    }
  }

  /**
   * Claims room for a message of `length` bytes and returns a view of exactly those bytes in
   * the ring (in caged mode: in the local copy), for writers that fill the ring directly. Fill
   * it, then `commit()` (or `abort()`). Waits while the channel is full, as `send` does. One
   * claim at a time per handle; a claim never committed holds up the consumer until this
   * handle's process exits (then the recovery rule skips it), so always commit or abort.
   * @throws Error `ERR_SHM_CHANNEL_CLAIM_PENDING` while a claim is pending; otherwise as `send`.
   */
  claim(length: number, options?: ChannelWaitOptions): Uint8Array {
    this.#open('claim')
    const n = this.#claimLength(length)
    const deadline = deadlineOf(options)
    let i: number
    while ((i = this.#p.tryClaim(n, deadline)) === FULL) {
      if (this.#p.spinForSpace(deadline)) continue
      if (!this.#p.sleepForSpace(deadline)) throw timedOut('claim', timeoutOf(options))
    }
    return this.#w.view(HEADER + i + 8, n)
  }

  /** Like `claim`, but returns `null` at once when the channel is full. */
  tryClaim(length: number): Uint8Array | null {
    this.#open('tryClaim')
    const n = this.#claimLength(length)
    const i = this.#p.tryClaim(n, performance.now() + TRY_LOCK_MS)
    return i === FULL ? null : this.#w.view(HEADER + i + 8, n)
  }

  #claimLength(length: unknown): number {
    if (typeof length !== 'number') throw invalidType('length', 'of type number', length)
    if (!Number.isInteger(length) || length < 0 || length > this.#p.cap - 8) {
      throw outOfRange('length', `an integer >= 0 and <= ${this.#p.cap - 8}`, String(length))
    }
    return length
  }

  /**
   * Publishes the pending claim: the consumer receives its bytes as they are now.
   * @throws Error `ERR_SHM_CHANNEL_NO_CLAIM` when there is no pending claim.
   */
  commit(): void {
    this.#open('commit')
    if (this.#p.claimIndex < 0) throw coded(new Error('commit() without a pending claim()'), 'ERR_SHM_CHANNEL_NO_CLAIM')
    this.#p.publish(MESSAGE)
  }

  /**
   * Drops the pending claim: its room is published as padding and no message is delivered.
   * @throws Error `ERR_SHM_CHANNEL_NO_CLAIM` when there is no pending claim.
   */
  abort(): void {
    this.#open('abort')
    if (this.#p.claimIndex < 0) throw coded(new Error('abort() without a pending claim()'), 'ERR_SHM_CHANNEL_NO_CLAIM')
    this.#p.publish(PADDING)
  }

  /**
   * Ends the channel for every peer (docs/channel.md §5): later sends fail with
   * `ERR_SHM_CHANNEL_ENDED`; the consumer still gets every message already committed, then
   * `receive()` returns `null` and `for await` stops. Wakes all sleepers.
   */
  end(): void {
    this.#open('end')
    this.#p.end()
  }

  // ---- consumer -----------------------------------------------------------------------------

  /** Takes the message `next()` found at `index` as a new Uint8Array, and releases it. */
  #take(index: number): Uint8Array {
    const p = this.#p
    const length = p.length
    const out = new Uint8Array(length)
    this.#w.read(HEADER + index + 8, out, length)
    p.release(recordSize(length))
    return out
  }

  /** Waits up to `timeout` ms for a message: its index, `null` (ended), or -1 (timed out). */
  #await(timeout: number): number | null {
    const p = this.#p
    // A message ready now: no clock read (a `performance.now()` per message costs more than the read).
    const first = p.poll()
    if (first === null || first >= 0) return first
    const deadline = timeout === Infinity ? Infinity : performance.now() + timeout
    for (;;) {
      const r = p.spin()
      if (r === null || r >= 0) return r
      if (r === MORE) continue
      const n = p.nap(deadline)
      if (n === null || n >= 0) return n
      if (n === MORE) continue
      const v = this.#w.load(O_DATA_SEQ)
      const before = this.#w.add(O_CONSUMER_SLEEPERS, 1)
      try {
        const again = p.poll() // the re-check under the sleeper count (§4)
        if (again === null || again >= 0) return again
        if (again === MORE) continue
        const left = deadline - performance.now()
        if (left <= 0) return -1
        this.#w.wait(O_DATA_SEQ, v, p.sleepMs(again, left, before))
      } finally {
        this.#w.add(O_CONSUMER_SLEEPERS, -1)
      }
    }
  }

  /**
   * Receives the next message as a new `Uint8Array` (a copy), waiting while there is none.
   * Returns `null` once the channel has ended (`end()`) and every message has been received.
   * The first receive makes this handle the channel's one consumer.
   * @throws Error `ETIMEDOUT` after `options.timeout` ms without a message;
   *   `ERR_SHM_CHANNEL_BUSY` when another live handle (in this or another process) is the
   *   consumer; `ERR_SHM_CHANNEL_LAYOUT` when a peer wrote garbage; `ERR_SHM_CLOSED`.
   */
  receive(options?: ChannelWaitOptions): Uint8Array | null {
    this.#open('receive')
    this.#noView('receive')
    const i = this.#await(waitOf(options))
    if (i === null) return null
    if (i < 0) throw timedOut('receive', timeoutOf(options))
    return this.#take(i)
  }

  /**
   * Receives the next message into `view` (no allocation for a Uint8Array or Buffer) and returns
   * its length, or `null` once the channel has ended and is drained. Waits like `receive`.
   * @throws RangeError `ERR_OUT_OF_RANGE` when the message is longer than `view` (the message
   *   stays queued; `err.messageLength` tells its size).
   */
  receiveInto(view: ArrayBufferView, options?: ChannelWaitOptions): number | null {
    this.#open('receiveInto')
    if (!ArrayBuffer.isView(view)) throw invalidType('view', 'an instance of Buffer, TypedArray or DataView', view)
    this.#noView('receiveInto')
    const i = this.#await(waitOf(options))
    if (i === null) return null
    if (i < 0) throw timedOut('receiveInto', timeoutOf(options))
    const length = this.#p.length
    if (length > view.byteLength) {
      throw coded(outOfRange('view.byteLength', `>= ${length} (the next message's length)`, String(view.byteLength)), 'ERR_OUT_OF_RANGE', { messageLength: length })
    }
    const target = view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
    this.#w.read(HEADER + i + 8, target, length)
    this.#p.release(recordSize(length))
    return length
  }

  /** Receives the next message if one is ready now (a copy), else returns `null` at once. */
  tryReceive(): Uint8Array | null {
    this.#open('tryReceive')
    this.#noView('tryReceive')
    const i = this.#p.next()
    return i < 0 ? null : this.#take(i)
  }

  #noView(method: string): void {
    if (this.#viewSize >= 0) {
      throw coded(new Error(`Cannot call ${method}() while a receiveView() is not released: call release() first`), 'ERR_SHM_CHANNEL_VIEW_PENDING')
    }
  }

  /** The view of the message at `index` (its length in the protocol), held until `release()`. */
  #hold(index: number): Uint8Array {
    const length = this.#p.length
    const view = this.#w.readView(HEADER + index + 8, length)
    this.#viewSize = recordSize(length)
    return view
  }

  /**
   * Receives the next message **in place**: a view of its bytes in the ring (zero-copy; in caged
   * mode a view of the local copy, into which exactly this message's bytes were copied), valid
   * until `release()`. The message's room is not reused before `release()`, so producers may
   * fill the rest of the ring meanwhile; after `release()` the view's bytes may change at any
   * time (do not keep it: copy what you need). Waits like `receive`; returns `null` once the
   * channel has ended and is drained. While a view is held, the other receive calls throw
   * `ERR_SHM_CHANNEL_VIEW_PENDING`.
   * @throws Error `ERR_SHM_CHANNEL_VIEW_PENDING` when the previous view is not released;
   *   otherwise as `receive`.
   */
  receiveView(options?: ChannelWaitOptions): Uint8Array | null {
    this.#open('receiveView')
    this.#noView('receiveView')
    const i = this.#await(waitOf(options))
    if (i === null) return null
    if (i < 0) throw timedOut('receiveView', timeoutOf(options))
    return this.#hold(i)
  }

  /** Like `receiveView`, but returns `null` at once when no message is ready. */
  tryReceiveView(): Uint8Array | null {
    this.#open('tryReceiveView')
    this.#noView('tryReceiveView')
    const i = this.#p.next()
    return i < 0 ? null : this.#hold(i)
  }

  /**
   * Releases the message of the last `receiveView()`: its room in the ring goes back to the
   * producers, and the view must not be used any more.
   * @throws Error `ERR_SHM_CHANNEL_NO_VIEW` when no view is held.
   */
  release(): void {
    this.#open('release')
    const size = this.#viewSize
    if (size < 0) throw coded(new Error('release() without a view from receiveView()'), 'ERR_SHM_CHANNEL_NO_VIEW')
    this.#viewSize = -1
    this.#p.release(size)
  }

  /**
   * Receives a batch in place: calls `fn(view)` for each message ready now, in order, with a
   * view of its bytes in the ring (caged: in the local copy) that is valid **only during that
   * call**; returns how many messages it delivered. Waits like `receive` while there is none;
   * returns `null` once the channel has ended and is drained. The room of the batch goes back to
   * the producers with one `head` store (and at most one wake-up) at the end, or every quarter
   * of the capacity in a long batch. A message whose `fn` throws counts as delivered: the batch
   * stops there and the error propagates. At most `options.max` messages (default: all ready).
   * @throws RangeError `ERR_OUT_OF_RANGE` for a `max` that is not an integer >= 1; otherwise as `receive`.
   */
  drain(fn: (view: Uint8Array) => void, options?: ChannelWaitOptions & { max?: number }): number | null {
    this.#open('drain')
    return this.#drain('drain', fn, options, false)
  }

  /**
   * Like `drain`, without a view object per message: calls `fn(ring, offset, length)` for each
   * message, where `ring` is one `Uint8Array` over the whole ring (the same object every call;
   * caged: over the local copy, into which exactly this message's bytes were copied) and the
   * message is `ring[offset … offset + length)`, valid only during that call. Make a view
   * (`ring.subarray(offset, offset + length)`) only where one is needed. Read only the
   * message's bytes: the rest of the ring belongs to other messages and to the producers.
   * Returns, waits and throws as `drain`.
   */
  drainRange(fn: (ring: Uint8Array, offset: number, length: number) => void, options?: ChannelWaitOptions & { max?: number }): number | null {
    this.#open('drainRange')
    return this.#drain('drainRange', fn, options, true)
  }

  /** The ring as one Uint8Array (made on first use), for `drainRange`. */
  #ring: Uint8Array | undefined

  #drain(method: string, fn: unknown, options: unknown, range: boolean): number | null {
    this.#noView(method)
    if (typeof fn !== 'function') throw invalidType('fn', 'of type function', fn)
    let max = Infinity
    if (options !== undefined && (options as { max?: unknown }).max !== undefined) {
      const m = (checkOptions(options) as { max?: unknown }).max
      if (typeof m !== 'number') throw invalidType('options.max', 'of type number', m)
      if (!(m >= 1) || (m !== Infinity && !Number.isInteger(m))) throw outOfRange('options.max', 'an integer >= 1 or Infinity', String(m))
      max = m
    }
    let i = this.#await(waitOf(options))
    if (i === null) return null
    if (i < 0) throw timedOut(method, timeoutOf(options))
    const p = this.#p
    const w = this.#w
    const ring = range ? (this.#ring ??= w.view(HEADER, p.cap)) : undefined
    const flushAt = p.cap >>> 2
    let pending = 0
    let n = 0
    try {
      for (;;) {
        const length = p.length
        const size = recordSize(length)
        p.advance(size) // before fn: a message whose fn throws counts as delivered
        pending += size
        n++
        if (ring !== undefined) {
          w.stage(HEADER + i + 8, length)
          ;(fn as (ring: Uint8Array, offset: number, length: number) => void)(ring, i + 8, length)
        } else (fn as (view: Uint8Array) => void)(w.readView(HEADER + i + 8, length))
        if (n >= max) break
        if (pending >= flushAt) {
          p.publishHead()
          pending = 0
        }
        const r = p.next()
        if (r < 0) break
        i = r
      }
    } finally {
      if (pending > 0) p.publishHead()
    }
    return n
  }

  /**
   * Like `receive`, without blocking the event loop (the wait runs off-thread). Resolves with
   * `null` once the channel has ended and is drained; rejects with `ERR_SHM_CLOSED` if this
   * handle is closed meanwhile, and with `ETIMEDOUT` after `options.timeout` ms. Several
   * pending calls on one handle each get a different message (each takes its message in the
   * same step as it finds it).
   */
  async receiveAsync(options?: ChannelWaitOptions): Promise<Uint8Array | null> {
    this.#open('receiveAsync')
    this.#noView('receiveAsync')
    const deadline = deadlineOf(options)
    const p = this.#p
    const w = this.#w
    const counted = this.#counted
    for (;;) {
      if (this.#viewSize >= 0) this.#noView('receiveAsync') // a view was taken while we waited
      const r = p.spin()
      if (r === null) return null
      if (r >= 0) return this.#take(r)
      if (r === MORE) continue
      const v = w.load(O_DATA_SEQ)
      const before = w.add(O_CONSUMER_SLEEPERS, 1)
      counted.consumer++
      try {
        const again = p.poll()
        if (again === null) return null
        if (again >= 0) {
          this.#noView('receiveAsync')
          return this.#take(again)
        }
        if (again === MORE) continue
        const left = deadline - performance.now()
        if (left <= 0) throw timedOut('receiveAsync', timeoutOf(options))
        await w.waitAsync(O_DATA_SEQ, v, p.sleepMs(again, left, before))
      } catch (e) {
        if (this.#mem === undefined) throw closedError('receiveAsync')
        throw e
      } finally {
        if (counted.consumer > 0) {
          counted.consumer--
          w.add(O_CONSUMER_SLEEPERS, -1)
        }
      }
      if (this.#mem === undefined) throw closedError('receiveAsync')
    }
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
   * handle's consumer/producer registration is released, pending async calls reject with
   * `ERR_SHM_CLOSED` (an async iteration just stops), later calls throw `ERR_SHM_CLOSED`.
   * A second call does nothing.
   */
  close(): void {
    const mem = this.#mem
    if (mem === undefined) return
    const counted = this.#counted
    if (counted.consumer) this.#w.add(O_CONSUMER_SLEEPERS, -counted.consumer)
    if (counted.producer) this.#w.add(O_PRODUCER_SLEEPERS, -counted.producer)
    counted.consumer = counted.producer = 0
    this.#lastU8 = undefined
    this.#p.leave()
    this.#mem = undefined
    mem.close()
  }

  /** Same as `close()`, for `using ch = new Channel(…)`. */
  [Symbol.dispose](): void {
    this.close()
  }
}
