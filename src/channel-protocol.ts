// The channel protocol, version 2 (docs/channel.md §3–§6), over the word interface of
// channel-words.ts: each method is one step of the contract and cites its section. The public
// class (channel.ts) checks arguments, shapes errors and runs the async paths on top.
//
// Identity and liveness (§6): a participant is a *token*, not a PID. Each handle that takes a role
// owns a token proved by an exclusive `flock` on `<name>.p<token>` beside the segment
// (shm-core's liveness module): the kernel drops it when the process dies, in whatever PID
// namespace it ran, and a stopped process keeps it. Space claimed by a token that may be alive is
// never reused.

import { availableParallelism, cpus } from 'node:os'

import {
  HEADER,
  MESSAGE,
  O_CONSUMER,
  O_CONSUMER_SLEEPERS,
  O_DATA_SEQ,
  O_ENDED,
  O_HEAD,
  O_LOCK,
  O_LOCK_SLEEPERS,
  O_PRODUCER_SLEEPERS,
  O_SPACE_SEQ,
  O_TAIL,
  PADDING,
  coded,
  layoutError,
  recordSize,
  type Header,
} from './channel-layout'
import type { Words } from './channel-words'
import { native } from './native'

/** What `next()` found when no message is ready. */
export const EMPTY = -1
/** The record at `head` is claimed and not committed yet. */
export const BLOCKED = -2
/** The padding budget of one call is spent: call again (never a reason to sleep). */
export const MORE = -3
/** `tryClaim`: the ring is full, or the claim lock could not be taken by the deadline. */
export const FULL = -1

/** Padding records one consumer call passes before it returns MORE (bounded work per call). */
const PADDING_BUDGET = 4096
/** Loads of a claimed record's `state` before the consumer reports it BLOCKED. */
const CLAIM_RECHECKS = 64
/** Spins on the claim lock before checking its holder and sleeping. */
const LOCK_SPINS = 64
const LOCK_SLEEP_MS = 10
/**
 * Longest single futex wait of a side that relies on a peer's wake-up (§4): a sleeper re-checks
 * at least this often, so a peer that corrupts a sleeper count costs latency, never a hang. Far
 * above any real wake-up latency, so that a lost wake-up still shows as one in the tests.
 */
export const RECHECK_MS = 5000
/** The re-check period once a sleeper count was found negative (peers then never wake us). */
export const GARBAGE_RECHECK_MS = 10

/**
 * How long (ms) a consumer polls for the next message before it registers as a sleeper and goes
 * to the kernel: a producer on another CPU usually commits within microseconds, and a futex
 * wake-up per message costs far more. No spinning where the process has one CPU.
 */
export const SPIN_MS = (typeof availableParallelism === 'function' ? availableParallelism() : cpus().length) > 1 ? 0.05 : 0

/**
 * A producer facing a full ring, after its SPIN_MS of polling, naps (a private futex wait with a
 * timeout, starting at BACKOFF_FIRST_MS and doubling up to BACKOFF_NAP_MS) for up to
 * BACKOFF_MAX_MS before it registers as a sleeper (§4).
 */
const BACKOFF_FIRST_MS = 0.02
const BACKOFF_NAP_MS = 0.2
const BACKOFF_MAX_MS = 2
/** Room a polling producer waits for before it claims again (spinForSpace). */
const BATCH_ROOM = 16 * 1024
/** The word the naps wait on: private, never notified. */
let NAP: Int32Array | undefined
/** Sleeps `ms` on a private word. The word is made on first use, not at load: nothing of this
 * module may call a global constructor while the package loads (one patched before the load
 * could recurse or throw there). */
function sleepFor(ms: number): void {
  NAP ??= new Int32Array(new SharedArrayBuffer(4))
  Atomics.wait(NAP, 0, 0, ms)
}

function claimPendingError(): Error {
  return coded(new Error('a claim() on this channel handle is not committed yet: commit() or abort() it first'), 'ERR_SHM_CHANNEL_CLAIM_PENDING')
}

export function endedError(name: string): Error {
  return coded(new Error(`channel '${name}' has ended`), 'ERR_SHM_CHANNEL_ENDED')
}

function busyError(name: string, role: string, token: number): Error {
  return coded(new Error(`channel '${name}' already has a live ${role} (participant ${token}); a channel has one ${role}`), 'ERR_SHM_CHANNEL_BUSY')
}

/** Whether participant `token` (read from the segment: any int32) is alive (§6). */
export function participantAlive(name: string, token: number): boolean {
  return native.participantAlive(name, token)
}

export class Protocol {
  readonly w: Words
  readonly name: string
  readonly cap: number
  readonly mask: number
  readonly oneToOne: boolean
  readonly recoveryMs: number
  #lock: InstanceType<typeof native.ParticipantLock> | undefined
  /** `#lock.token`, cached (0: none yet): the lock's getter is a native call, too dear per message. */
  #token = 0

  /** Producer: the last `head` read (never ahead of the real one). */
  headSeen = 0
  /** One-to-one producer: registered in `producerLock`, and its private tail. */
  producing = false
  #tail = 0
  /** The pending claim (no object per message): its ring index (-1: none), record size, payload length. */
  claimIndex = -1
  claimSize = 0
  claimLength = 0
  /** The batch claim of `tryClaimMany` (reused arrays: nothing allocated per batch). */
  readonly batchAt: number[] = []
  readonly batchSize: number[] = []
  readonly batchLength: number[] = []
  batchCount = 0
  /**
   * A one-to-one `send` is writing its payload beyond `tail` before it claims ("writing first"):
   * nothing is claimed yet, yet a second claim on this handle (from code that runs inside the
   * copy: a patched global or prototype method) would take the same room, so it is refused as
   * while a claim is pending.
   */
  filling = false
  /** The last FULL from `tryClaim` was the claim lock's deadline, not a full ring. */
  lockedOut = false
  /** Consumer: registered in `consumer`, its private head, the last `tail` read. */
  consuming = false
  #head = 0
  #tailSeen = 0
  /** Consumer: length of the message `next()` returned (validated, §2). */
  length = 0
  /** Consumer: the claimed record at `head` being timed for recovery (§6). */
  #stuckAt = 0
  #stuckState = 0
  #stuckSince = 0

  constructor(w: Words, name: string, header: Header) {
    this.w = w
    this.name = name.replace(/^\/+/, '')
    this.cap = header.capacity
    this.mask = header.capacity - 1
    this.oneToOne = header.oneToOne
    this.recoveryMs = header.recoveryMs
  }

  /** This handle's participant token (§6), taken with its lock file on first use. */
  get token(): number {
    if (this.#token === 0) {
      this.#lock ??= native.ParticipantLock.acquire(this.name)
      this.#token = this.#lock.token
    }
    return this.#token
  }

  #alive(token: number): boolean {
    return (this.#token !== 0 && token === this.#token) || participantAlive(this.name, token)
  }

  /** `used = tail − head` (unsigned), checked: garbage is ERR_SHM_CHANNEL_LAYOUT (§1). */
  #used(tail: number, head: number): number {
    const used = (tail - head) >>> 0
    if (used > this.cap || ((tail | head) & 7) !== 0) {
      throw layoutError(this.name, `tail ${tail >>> 0} − head ${head >>> 0} is ${used}: both must be multiples of 8, within the capacity ${this.cap} of each other`)
    }
    return used
  }

  // ---- producer (§3) ------------------------------------------------------------------------

  /** Wake-consumer step (§3.5). */
  wakeConsumer(): void {
    if (this.w.load(O_CONSUMER_SLEEPERS) > 0) {
      this.w.add(O_DATA_SEQ, 1)
      this.w.notify(O_DATA_SEQ, 1)
    }
  }

  /** The early end check (plain: advisory; the seq-cst load after the claim decides, §3 step 4). */
  #checkEnded(): void {
    if (this.w.loadPlain(O_ENDED) !== 0) throw endedError(this.name)
  }

  /** Many-to-one lock (§3.1), taken over from a dead holder (§6); false once `deadline` passed. */
  #takeLock(deadline: number): boolean {
    this.lockedOut = false
    const me = this.token
    let spins = 0
    for (;;) {
      const holder = this.w.cas(O_LOCK, 0, me)
      if (holder === 0 || holder === me) return true
      if (++spins < LOCK_SPINS) continue
      if (!this.#alive(holder)) {
        if (this.w.cas(O_LOCK, holder, me) === holder) return true
        continue
      }
      const left = deadline - performance.now()
      if (left <= 0) {
        this.lockedOut = true
        return false
      }
      this.w.add(O_LOCK_SLEEPERS, 1)
      try {
        if (this.w.load(O_LOCK) === holder) this.w.wait(O_LOCK, holder, Math.min(left, LOCK_SLEEP_MS))
      } finally {
        this.w.add(O_LOCK_SLEEPERS, -1)
      }
    }
  }

  /** Unlock (§3.3). */
  #unlock(): void {
    this.w.store(O_LOCK, 0)
    if (this.w.load(O_LOCK_SLEEPERS) > 0) this.w.notify(O_LOCK, 1)
  }

  /** Registers as the one producer of a one-to-one channel (§3), taking over a dead one (§6). */
  #register(): void {
    const me = this.token
    for (;;) {
      const holder = this.w.cas(O_LOCK, 0, me)
      if (holder === 0 || holder === me) break
      if (this.#alive(holder)) throw busyError(this.name, 'one-to-one producer', holder)
      if (this.w.cas(O_LOCK, holder, me) === holder) break
    }
    const tail = this.w.load(O_TAIL)
    // The cached tail only moves by whole records from here: a misaligned one (a peer's garbage)
    // would put every record header of this producer off its 8-byte grid (§7).
    if ((tail & 7) !== 0) throw layoutError(this.name, `tail ${tail >>> 0} is not a multiple of 8`)
    this.producing = true
    this.#tail = tail
    this.headSeen = this.w.load(O_HEAD)
  }

  #writePadding(index: number, bytes: number): void {
    this.w.store(HEADER + index + 4, bytes - 8)
    this.w.store(HEADER + index, PADDING)
  }

  /**
   * Claim (§3 steps 1–3, both modes): the ring index of a record for `length` payload bytes,
   * published as claimed (`state = −token`, `tail` moved past it), or FULL (the head seen is left
   * in `headSeen` for the caller's sleep). After the claim, `ended` is read again: a claim made
   * after the end is aborted and ERR_SHM_CHANNEL_ENDED thrown, so that a send is either
   * delivered or refused, never lost (§5).
   */
  tryClaim(length: number, lockDeadline: number): number {
    if (this.oneToOne) {
      const at = this.roomOneToOne(length)
      if (at >= 0) this.claimAt(at, length)
      return at
    }
    if (this.claimIndex >= 0 || this.filling) throw claimPendingError()
    this.#checkEnded()
    const size = recordSize(length)
    const i = this.#claimShared(length, size, lockDeadline)
    if (i < 0) return FULL
    if (this.w.load(O_ENDED) !== 0) {
      this.publish(PADDING)
      throw endedError(this.name)
    }
    return i
  }

  /**
   * One-to-one, before a claim: the ring index where a record of `size` bytes fits now (padding
   * at the ring's end published first, §2), or FULL. Nothing of the record is published: the
   * producer may write its payload there (beyond `tail`, which no one else reads or writes) and
   * then `claimAt` it.
   */
  roomOneToOne(length: number): number {
    if (this.claimIndex >= 0 || this.filling) throw claimPendingError()
    this.#checkEnded()
    if (!this.producing) this.#register()
    const size = recordSize(length)
    const t = this.#tail
    const i = t & this.mask
    // Fits before the ring's end and in the room last seen: the common case, no shared word read.
    if (size <= this.cap - i && size <= this.cap - ((t - this.headSeen) >>> 0)) return i
    return this.#roomOneToOneSlow(size)
  }

  /** `roomOneToOne` past its fast case: `head` read again, padding at the ring's end. */
  #roomOneToOneSlow(size: number): number {
    const cap = this.cap
    for (;;) {
      const t = this.#tail
      const i = t & this.mask
      const toEnd = cap - i
      const need = size > toEnd ? toEnd : size
      if (need > cap - ((t - this.headSeen) >>> 0)) {
        this.headSeen = this.w.load(O_HEAD)
        if (need > cap - this.#used(t, this.headSeen)) return FULL
      }
      if (size <= toEnd) return i
      this.#writePadding(i, toEnd)
      this.#tail = (t + toEnd) | 0
      this.w.store(O_TAIL, this.#tail)
      this.wakeConsumer()
    }
  }

  /** One-to-one: claims (§3 steps 2–4) the record at `roomOneToOne`'s index `i`, whose payload may already be written. */
  claimAt(i: number, length: number): void {
    const size = recordSize(length)
    this.w.storePlain(HEADER + i + 4, length)
    this.w.storePlain(HEADER + i, -this.token)
    this.#tail = (this.#tail + size) | 0
    this.w.store(O_TAIL, this.#tail)
    this.claimIndex = i
    this.claimSize = size
    this.claimLength = length
    if (this.w.load(O_ENDED) !== 0) {
      this.publish(PADDING)
      throw endedError(this.name)
    }
  }

  #claimShared(length: number, size: number, lockDeadline: number): number {
    if (!this.#takeLock(lockDeadline)) return FULL
    const cap = this.cap
    try {
      for (;;) {
        // Other producers move the tail, so a cached head could be arbitrarily stale: read it.
        const t = this.w.load(O_TAIL)
        const h = (this.headSeen = this.w.load(O_HEAD))
        const used = this.#used(t, h)
        const i = t & this.mask
        const toEnd = cap - i
        const need = size > toEnd ? toEnd : size
        if (need > cap - used) return FULL
        if (size > toEnd) {
          this.#writePadding(i, toEnd)
          this.w.store(O_TAIL, (t + toEnd) | 0)
          this.wakeConsumer()
          continue
        }
        this.w.store(HEADER + i + 4, length)
        this.w.store(HEADER + i, -this.token)
        this.w.store(O_TAIL, (t + size) | 0)
        this.claimIndex = i
        this.claimSize = size
        this.claimLength = length
        return i
      }
    } finally {
      this.#unlock()
    }
  }

  /**
   * Batch claim (§3 steps 1–4 for several records, `sendMany`): claims records, in order, for as
   * many of `lengths[from]…lengths[to − 1]` as fit now (padding at the ring's end as §2), with
   * one `tail` store and one end check for the batch. The claimed records are `batchAt` /
   * `batchSize` / `batchLength` [0, n); returns n, 0 when the ring is full (or the claim lock was
   * not free by `lockDeadline`). The caller fills them and calls `commitMany` in the same step.
   */
  tryClaimMany(lengths: number[], from: number, to: number, lockDeadline: number): number {
    if (this.claimIndex >= 0 || this.filling) throw claimPendingError()
    this.#checkEnded()
    let n: number
    if (this.oneToOne) {
      if (!this.producing) this.#register()
      n = this.#claimRun(this.#tail, lengths, from, to)
    } else {
      if (!this.#takeLock(lockDeadline)) return 0
      try {
        n = this.#claimRun(this.w.load(O_TAIL), lengths, from, to)
      } finally {
        this.#unlock()
      }
    }
    if (n > 0 && this.w.load(O_ENDED) !== 0) {
      this.commitMany(0)
      throw endedError(this.name)
    }
    return n
  }

  /** The claim loop of `tryClaimMany` from tail `t0` (one-to-one: the private tail; else locked). */
  #claimRun(t0: number, lengths: number[], from: number, to: number): number {
    const cap = this.cap
    const mask = this.mask
    const w = this.w
    const token = this.token
    let head = this.oneToOne ? this.headSeen : (this.headSeen = w.load(O_HEAD))
    this.#used(t0, head)
    let t = t0
    let n = 0
    for (let k = from; k < to; ) {
      const length = lengths[k]
      const size = recordSize(length)
      const i = t & mask
      const toEnd = cap - i
      const need = size > toEnd ? toEnd : size
      if (need > cap - ((t - head) >>> 0)) {
        head = this.headSeen = w.load(O_HEAD)
        if (need > cap - this.#used(t, head)) break
      }
      // Plain stores: ordered before the consumer's reads by the one `tail` store after them.
      if (size > toEnd) {
        w.storePlain(HEADER + i + 4, toEnd - 8)
        w.storePlain(HEADER + i, PADDING)
        t = (t + toEnd) | 0
        continue
      }
      w.storePlain(HEADER + i + 4, length)
      w.storePlain(HEADER + i, -token)
      this.batchAt[n] = i
      this.batchSize[n] = size
      this.batchLength[n] = length
      n++
      k++
      t = (t + size) | 0
    }
    this.batchCount = n
    if (t !== t0) {
      w.store(O_TAIL, t)
      if (this.oneToOne) this.#tail = t
      if (n === 0) this.wakeConsumer() // padding only
    }
    return n
  }

  /**
   * Commits the first `filled` records of the batch claim as messages and aborts the rest as
   * padding (§3 steps 5–6), then one wake-consumer for the batch.
   */
  commitMany(filled: number): void {
    const n = this.batchCount
    this.batchCount = 0
    for (let c = 0; c < n; c++) {
      const at = HEADER + this.batchAt[c]
      if (c < filled) {
        this.w.flush(at + 8, this.batchLength[c])
        this.w.store(at, MESSAGE)
      } else {
        this.w.store(at + 4, this.batchSize[c] - 8)
        this.w.store(at, PADDING)
      }
    }
    this.wakeConsumer()
  }

  /** Commit (§3.5) as a message (`state` 1) or abort as padding (2), then wake-consumer. */
  publish(state: number): void {
    const at = HEADER + this.claimIndex
    this.claimIndex = -1
    if (state === MESSAGE) this.w.flush(at + 8, this.claimLength)
    else this.w.store(at + 4, this.claimSize - 8)
    this.w.store(at, state)
    this.wakeConsumer()
  }

  /**
   * Producer, ring full: polls `head` (and `ended`) for up to SPIN_MS before the caller sleeps:
   * true as soon as the consumer released something. A consumer that keeps up frees room within
   * microseconds, and a futex sleep makes it pay a wake-up syscall per release until we run.
   */
  spinForSpace(deadline: number): boolean {
    // Not for a lock deadline (`headSeen` is then not the head the full ring was found with).
    if (SPIN_MS === 0 || this.lockedOut) return false
    const seen = this.headSeen
    const now = performance.now()
    if (now >= deadline) return false
    const until = Math.min(deadline, now + SPIN_MS)
    // While polling, wait for a batch of room (a quarter of the ring, at most BATCH_ROOM), so
    // that the two sides do not trade the ring's cache lines one record at a time; after the
    // poll any room will do.
    const want = Math.min(this.cap >>> 2, BATCH_ROOM)
    do {
      if (((this.w.load(O_HEAD) - seen) >>> 0) >= want || this.w.load(O_ENDED) !== 0) return true
    } while (performance.now() < until)
    if (this.w.load(O_HEAD) !== seen) return true
    // Then short private naps (not registered as a sleeper: the consumer pays no wake-up syscall
    // per release while we are merely descheduled), doubling up to BACKOFF_MAX_MS in all.
    const last = Math.min(deadline, until + BACKOFF_MAX_MS)
    for (let nap = BACKOFF_FIRST_MS; performance.now() < last; nap = Math.min(nap * 2, BACKOFF_NAP_MS)) {
      sleepFor(nap)
      if (this.w.load(O_HEAD) !== seen || this.w.load(O_ENDED) !== 0) return true
    }
    return false
  }

  /**
   * Producer sleep (§4) after a full ring: one wait of at most the time left (and a re-check
   * period); false once `deadline` has passed. Returns at once when `head` moved or the channel
   * ended since the claim attempt.
   */
  sleepForSpace(deadline: number): boolean {
    const left = deadline - performance.now()
    if (left <= 0) return false
    const seen = this.headSeen
    const v = this.w.load(O_SPACE_SEQ)
    const before = this.w.add(O_PRODUCER_SLEEPERS, 1)
    try {
      if (this.w.load(O_HEAD) === seen && this.w.load(O_ENDED) === 0) {
        this.w.wait(O_SPACE_SEQ, v, Math.min(left, before < 0 ? GARBAGE_RECHECK_MS : RECHECK_MS))
      }
    } finally {
      this.w.add(O_PRODUCER_SLEEPERS, -1)
    }
    return true
  }

  /**
   * The async form of `sleepForSpace`; `counted` tracks the sleeper count this handle holds while
   * it waits (undone by close()).
   */
  async sleepForSpaceAsync(deadline: number, counted: { producer: number }): Promise<boolean> {
    const left = deadline - performance.now()
    if (left <= 0) return false
    const seen = this.headSeen
    const v = this.w.load(O_SPACE_SEQ)
    const before = this.w.add(O_PRODUCER_SLEEPERS, 1)
    counted.producer++
    try {
      if (this.w.load(O_HEAD) === seen && this.w.load(O_ENDED) === 0) {
        await this.w.waitAsync(O_SPACE_SEQ, v, Math.min(left, before < 0 ? GARBAGE_RECHECK_MS : RECHECK_MS))
      }
    } finally {
      if (counted.producer > 0) {
        counted.producer--
        this.w.add(O_PRODUCER_SLEEPERS, -1)
      }
    }
    return true
  }

  /** Ending (§5): `ended = 1`, then wake every sleeper of both sides. */
  end(): void {
    this.w.store(O_ENDED, 1)
    this.w.add(O_DATA_SEQ, 1)
    this.w.notify(O_DATA_SEQ)
    this.w.add(O_SPACE_SEQ, 1)
    this.w.notify(O_SPACE_SEQ)
  }

  // ---- consumer (§4) ------------------------------------------------------------------------

  #registerConsumer(): void {
    const me = this.token
    for (;;) {
      const holder = this.w.cas(O_CONSUMER, 0, me)
      if (holder === 0 || holder === me) break
      if (this.#alive(holder)) throw busyError(this.name, 'consumer', holder)
      if (this.w.cas(O_CONSUMER, holder, me) === holder) break
    }
    this.consuming = true
    this.#head = this.w.load(O_HEAD)
    this.#tailSeen = this.#head
  }

  /** Release (§4 step 3): `head` past `size` bytes, then wake-producers. */
  release(size: number): void {
    this.#head = (this.#head + size) | 0
    this.publishHead()
  }

  /**
   * Consumer: moves the private `head` past `size` bytes without publishing it, for a batch
   * that ends with one `publishHead()` (one `head` store and at most one wake-up per batch:
   * to producers this is a consumer that released the records at once).
   */
  advance(size: number): void {
    this.#head = (this.#head + size) | 0
  }

  /** Stores the private `head` (§4 step 3), then wake-producers. */
  publishHead(): void {
    this.w.store(O_HEAD, this.#head)
    if (this.w.load(O_PRODUCER_SLEEPERS) > 0) {
      this.w.add(O_SPACE_SEQ, 1)
      this.w.notify(O_SPACE_SEQ)
    }
  }

  /**
   * Read (§4 steps 1–2): the ring index of the next message (its validated length in `length`;
   * padding passed, §6 applied), or EMPTY / BLOCKED / MORE. Bounded work: at most
   * PADDING_BUDGET records per call.
   */
  next(): number {
    if (!this.consuming) this.#registerConsumer()
    const cap = this.cap
    for (let budget = PADDING_BUDGET; budget > 0; budget--) {
      const h = this.#head
      if (h === this.#tailSeen) {
        this.#tailSeen = this.w.load(O_TAIL)
        if (h === this.#tailSeen) return EMPTY
      }
      const used = this.#used(this.#tailSeen, h)
      const i = h & this.mask
      let s = this.w.load(HEADER + i)
      // Claimed: a producer commits within nanoseconds of its claim; look again a few times
      // before the recovery rule's clock is read.
      for (let k = 0; s < 0 && k < CLAIM_RECHECKS; k++) s = this.w.load(HEADER + i)
      if (s === MESSAGE || s === PADDING) {
        // Plain: written before `state` was stored as 1 or 2 (the atomic load above orders it).
        const length = this.w.loadPlain(HEADER + i + 4) >>> 0
        if (length > cap - i - 8) throw layoutError(this.name, `record at position ${h >>> 0} has length ${length}, past the ring's end`)
        const size = recordSize(length)
        if (size > used) throw layoutError(this.name, `record at position ${h >>> 0} (${size} bytes) ends past tail ${this.#tailSeen >>> 0}`)
        if (s === MESSAGE) {
          this.length = length
          return i
        }
        this.release(size)
        continue
      }
      if (s >= 0) throw layoutError(this.name, `record at position ${h >>> 0} has state ${s}`)
      // Claimed by participant −s, not committed yet: the recovery rule (§6).
      const now = performance.now()
      if (this.#stuckAt !== h || this.#stuckState !== s) {
        this.#stuckAt = h
        this.#stuckState = s
        this.#stuckSince = now
        return BLOCKED
      }
      if (now - this.#stuckSince < this.recoveryMs || this.#alive(-s)) return BLOCKED
      this.w.cas(HEADER + i, s, PADDING) // fails only if the producer committed meanwhile
    }
    return MORE
  }

  /** One consumer round (§4, §5): a message index, `null` (ended and drained), or EMPTY/BLOCKED/MORE. */
  poll(): number | null {
    const r = this.next()
    if (r === EMPTY && this.w.load(O_ENDED) !== 0) {
      // A claim made before the end moved `tail` before `ended` was stored: read `tail` again.
      const again = this.next()
      return again === EMPTY ? null : again
    }
    return r
  }

  /** Polls for up to SPIN_MS: a message index, `null` (ended), or EMPTY/BLOCKED/MORE. */
  spin(): number | null {
    let r = this.poll()
    if (r === null || r >= 0 || SPIN_MS === 0) return r
    const until = performance.now() + SPIN_MS
    do {
      r = this.poll()
      if (r === null || r >= 0) return r
    } while (performance.now() < until)
    return r
  }

  /**
   * Consumer, after `spin()` found nothing (blocking calls only: it blocks the thread): short
   * private naps, polling after each, for up to BACKOFF_MAX_MS, before the caller registers as a
   * sleeper — so that producers pay no wake-up syscall per message while this consumer is merely
   * descheduled between its polls. Returns like `poll()`.
   */
  nap(deadline: number): number | null {
    let r: number | null = EMPTY
    if (SPIN_MS === 0) return r
    const last = Math.min(deadline, performance.now() + BACKOFF_MAX_MS)
    for (let nap = BACKOFF_FIRST_MS; performance.now() < last; nap = Math.min(nap * 2, BACKOFF_NAP_MS)) {
      sleepFor(nap)
      r = this.poll()
      if (r === null || r >= 0 || r === MORE) return r
    }
    return r
  }

  /** How long one consumer sleep may last (§4, §6): the time left, capped for re-checks. */
  sleepMs(r: number, left: number, sleepersBefore: number): number {
    let ms = Math.min(left, sleepersBefore < 0 ? GARBAGE_RECHECK_MS : RECHECK_MS)
    if (r === BLOCKED) ms = Math.min(ms, this.recoveryMs)
    return ms
  }

  /** Leaves the roles this handle holds (§3, §4) and drops its token's lock file. */
  leave(): void {
    if (this.claimIndex >= 0) this.publish(PADDING)
    const lock = this.#lock
    if (lock !== undefined) {
      if (this.consuming) this.w.cas(O_CONSUMER, lock.token, 0)
      if (this.producing) this.w.cas(O_LOCK, lock.token, 0)
    }
    this.consuming = this.producing = false
    this.#lock = undefined
    this.#token = 0
    lock?.release()
  }
}
