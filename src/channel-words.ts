// The small word interface the channel protocol runs over (docs/channel.md, "Conventions"):
// sequentially consistent 32-bit loads/stores/adds/CAS, futex wait/wake, and payload copies.
// Two implementations: zero-copy (JS `Atomics` on an Int32Array over the mapping, payloads copied
// straight into / out of it) and caged (`requiresCopy`: the native atomics, and copyFrom/copyTo of
// exactly the bytes of each record through the local copy).

import type { SharedMemory } from './shared-memory'
import { native } from './native'

export interface Words {
  load(off: number): number
  store(off: number, v: number): void
  /**
   * A plain (non-atomic) load/store, for words ordered by the atomics around them, as payload
   * bytes are (docs/channel.md "Conventions"): a record's `length` read after its `state`, a
   * claimed record's `length`/`state` written before `tail` is stored past it. In V8 an `Atomics`
   * call is a builtin call (~100 instructions), a plain element access a few. Caged: atomic.
   */
  loadPlain(off: number): number
  storePlain(off: number, v: number): void
  /** Adds `v`; returns the value before. */
  add(off: number, v: number): number
  /** Returns the value found (== `expected` when swapped). */
  cas(off: number, expected: number, replacement: number): number
  wait(off: number, expected: number, ms: number): void
  waitAsync(off: number, expected: number, ms: number): Promise<unknown>
  notify(off: number, count?: number): void
  /** Copies `length` payload bytes at segment byte `at` into `target` (from index 0). */
  read(at: number, target: Uint8Array, length: number): void
  /** Writes `source` (bytes, or a string of `length` UTF-8 bytes) at segment byte `at`. */
  write(at: number, source: Uint8Array | string, length: number): void
  /** A view of `length` bytes at `at` for a writer (the mapping itself, or the local copy). */
  view(at: number, length: number): Uint8Array
  /** A view of `length` bytes at `at` for a reader (caged: exactly those bytes copied in first). */
  readView(at: number, length: number): Uint8Array
  /** Makes `length` bytes at `at` readable through `view` (caged: copies exactly them in; zero-copy: nothing). */
  stage(at: number, length: number): void
  /** Makes bytes written through `view`/`write` visible to other processes (caged: copyTo). */
  flush(at: number, length: number): void
}

// Captured when this module loads, as in shared-memory.ts: a later patch of `Atomics` neither sees
// the channel's view nor changes what it does. (Offsets here stay below 2^31: the ring is at most
// 2^30 bytes after a 1 KiB header, so `>> 2` is exact.)
const { load: atomicsLoad, store: atomicsStore, add: atomicsAdd, compareExchange: atomicsCompareExchange } = Atomics

// Payload copies with %TypedArray% methods captured at load, never more than the claimed `length`
// bytes: a getter or `set` patched later cannot make a copy overrun its record (issue 18).
const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array.prototype) as object
/** `uncurry(fn)(self, ...args)` is `fn.call(self, ...args)` with the `call` of load time. */
export const uncurry = Function.prototype.bind.bind(Function.prototype.call) as <F>(fn: F) => (self: unknown, ...args: unknown[]) => unknown
const taGet = (key: string) => uncurry(Object.getOwnPropertyDescriptor(TYPED_ARRAY, key)!.get!)
const [taBuffer, taOffset, taLength] = [taGet('buffer'), taGet('byteOffset'), taGet('byteLength')]
const taSet = uncurry((TYPED_ARRAY as { set: unknown }).set)
const U8 = Uint8Array
const I32 = Int32Array
/** Buffer#copy captured at load (it calls only Node's own primordials). */
const bufCopy = uncurry(Buffer.prototype.copy)
function copyInto(target: Uint8Array, at: number, source: Uint8Array, length: number): void {
  const over = (taLength(source) as number) > length
  taSet(target, over ? new U8(taBuffer(source) as ArrayBufferLike, taOffset(source) as number, length) : source, at)
}

/**
 * Large copies on x86-64 Linux: glibc's memmove copies 2 KiB and more with `rep movsb`, which on
 * AMD Zen runs ~15× slower when the destination is 1–31 bytes past the source modulo 4096
 * (64 KiB: 2 GiB/s instead of 35 on this project's machine; 33–63 bytes past still cost ~30%).
 * A ring whose records and a caller's buffer fall that way would pay it on every message, so
 * such a copy is made in pieces below the size where glibc switches to `rep movsb` (64 KiB then
 * runs at ~13 GiB/s). Where the bytes sit is asked of the native side once per buffer view.
 */
const SPLIT = process.platform === 'linux' && process.arch === 'x64'
const SPLIT_MIN = 2048
const PIECE = 2016

/** The destination 1–63 bytes past the source modulo 4096 (-1: unknown, never split). */
function aliased(dstPage: number, srcPage: number): boolean {
  if (dstPage < 0 || srcPage < 0) return false
  const d = (dstPage - srcPage) & 4095
  return d !== 0 && d < 64
}

/** Copies made by `copyPieces` (read by the tests: which distances take the split path). */
export const splitCopies = { count: 0 }

/** `length` bytes from `source[from…]` to `target[at…]` in PIECE-byte pieces (see SPLIT). */
function copyPieces(target: Uint8Array, at: number, source: Uint8Array, from: number, length: number): void {
  splitCopies.count++
  const b = taBuffer(source) as ArrayBufferLike
  const o = (taOffset(source) as number) + from
  // No global (`Math.min`) here: one patched after load must not change what is copied (issue 18).
  for (let k = 0; k < length; k += PIECE) taSet(target, new U8(b, o + k, length - k < PIECE ? length - k : PIECE), at + k)
}

/** The page offset of the last view asked about (a caller's reused send or receive buffer). */
class PageOf {
  #last: Uint8Array | undefined
  #page = -1

  of(a: Uint8Array): number {
    if (a !== this.#last) {
      // A view of 2 KiB or more lives outside V8's heap: its bytes never move while it exists.
      this.#page = native.pageOffset(a)
      this.#last = a
    }
    return this.#page
  }
}

/**
 * Payloads up to this many bytes are copied by a JS loop of 32-bit words: Buffer#copy of a part of
 * a buffer (and TypedArray#set of a subarray) allocates a view and crosses into C++, which costs
 * several times the loop for a small message (64 B: ~140 ns for the word loop, ~470 ns bytes,
 * ~700–800 ns set/copy, measured interleaved in one process).
 */
const SMALL_COPY = 256

/**
 * The Int32Array over a caller's Uint8Array, for the word loop: made the second time in a row the
 * same array comes (a reused receive buffer or send buffer), so a caller that passes a new array
 * each time allocates nothing here. `null` when the array is not 4-byte aligned.
 */
class WordView {
  #last: Uint8Array | undefined
  #seen: Uint8Array | undefined
  #i32: Int32Array | null = null

  of(a: Uint8Array): Int32Array | null {
    if (a === this.#last) return this.#i32
    if (a !== this.#seen) {
      this.#seen = a
      return null
    }
    this.#last = a
    // The getters captured at load: a patched `byteOffset`/`buffer`/`byteLength` cannot point the
    // word loop at other memory (its writes are bounded by the claimed length anyway).
    const off = taOffset(a) as number
    this.#i32 = (off & 3) === 0 ? new I32(taBuffer(a) as ArrayBufferLike, off, (taLength(a) as number) >> 2) : null
    return this.#i32
  }
}

/** Zero-copy: the Int32Array and the bytes are the mapping itself. */
export class MappedWords implements Words {
  readonly #i32: Int32Array
  readonly #u8: Buffer
  readonly #bytes: Uint8Array
  readonly #mem: SharedMemory
  readonly #into = new WordView()
  readonly #from = new WordView()
  readonly #intoPage = new PageOf()
  readonly #fromPage = new PageOf()
  /** The mapping's page offset (0: mappings start on a page). */
  readonly #page: number

  constructor(mem: SharedMemory, buffer: ArrayBuffer) {
    this.#mem = mem
    // Length from the native side (`mem.length`), not the patchable `byteLength` getter; `/ 4`,
    // not `>> 2`, which wraps past 2^31 bytes.
    this.#i32 = new Int32Array(buffer, 0, Math.floor((mem.length as number) / 4))
    this.#u8 = Buffer.from(buffer)
    this.#bytes = new Uint8Array(buffer)
    this.#page = SPLIT ? native.pageOffset(this.#bytes) : -1
  }

  load(off: number): number {
    return atomicsLoad(this.#i32, off >> 2)
  }
  store(off: number, v: number): void {
    atomicsStore(this.#i32, off >> 2, v)
  }
  loadPlain(off: number): number {
    return this.#i32[off >> 2]
  }
  storePlain(off: number, v: number): void {
    this.#i32[off >> 2] = v
  }
  add(off: number, v: number): number {
    return atomicsAdd(this.#i32, off >> 2, v)
  }
  cas(off: number, expected: number, replacement: number): number {
    return atomicsCompareExchange(this.#i32, off >> 2, expected, replacement)
  }
  wait(off: number, expected: number, ms: number): void {
    this.#mem.wait(off, expected, ms)
  }
  waitAsync(off: number, expected: number, ms: number): Promise<unknown> {
    return this.#mem.waitAsync(off, expected, ms)
  }
  notify(off: number, count?: number): void {
    this.#mem.notify(off, count)
  }
  read(at: number, target: Uint8Array, length: number): void {
    if (length > SMALL_COPY) {
      if (SPLIT && length >= SPLIT_MIN && aliased(this.#intoPage.of(target), (this.#page + at) & 4095)) {
        copyPieces(target, 0, this.#bytes, at, length)
      } else bufCopy(this.#u8, target, 0, at, at + length)
      return
    }
    // `at` is a payload start: 8-byte aligned (docs/channel.md §2).
    const t32 = this.#into.of(target)
    let k = 0
    if (t32 !== null && t32.length << 2 >= (length & ~3)) {
      const i32 = this.#i32
      const w = at >> 2
      for (const n = length >> 2; k < n; k++) t32[k] = i32[w + k]
      k <<= 2
    }
    const bytes = this.#bytes
    for (; k < length; k++) target[k] = bytes[at + k]
  }
  write(at: number, source: Uint8Array | string, length: number): void {
    if (typeof source === 'string') {
      this.#u8.write(source, at, length, 'utf8')
      return
    }
    const s32 = length <= SMALL_COPY ? this.#from.of(source) : null
    if (s32 === null || s32.length << 2 < (length & ~3)) {
      if (SPLIT && length >= SPLIT_MIN && aliased((this.#page + at) & 4095, this.#fromPage.of(source))) {
        copyPieces(this.#bytes, at, source, 0, length) // never more than `length` bytes
      } else copyInto(this.#bytes, at, source, length) // never more than `length` bytes
      return
    }
    const i32 = this.#i32
    const w = at >> 2
    let k = 0
    for (const n = length >> 2; k < n; k++) i32[w + k] = s32[k]
    const bytes = this.#bytes
    for (k <<= 2; k < length; k++) bytes[at + k] = source[k]
  }
  view(at: number, length: number): Uint8Array {
    return new Uint8Array(this.#bytes.buffer, at, length)
  }
  readView(at: number, length: number): Uint8Array {
    return new Uint8Array(this.#bytes.buffer, at, length)
  }
  stage(): void {}
  flush(): void {}
}

/** Caged: native atomics on the segment; payloads staged in the local copy (`mem.buffer`). */
export class CagedWords implements Words {
  readonly #mem: SharedMemory
  readonly #u8: Buffer

  constructor(mem: SharedMemory, buffer: ArrayBuffer) {
    this.#mem = mem
    this.#u8 = Buffer.from(buffer)
  }

  load(off: number): number {
    return this.#mem.atomicLoad(off)
  }
  store(off: number, v: number): void {
    this.#mem.atomicStore(off, v | 0)
  }
  loadPlain(off: number): number {
    return this.#mem.atomicLoad(off)
  }
  storePlain(off: number, v: number): void {
    this.#mem.atomicStore(off, v | 0)
  }
  add(off: number, v: number): number {
    return this.#mem.atomicAdd(off, v)
  }
  cas(off: number, expected: number, replacement: number): number {
    return this.#mem.atomicCompareExchange(off, expected, replacement)
  }
  wait(off: number, expected: number, ms: number): void {
    this.#mem.wait(off, expected, ms)
  }
  waitAsync(off: number, expected: number, ms: number): Promise<unknown> {
    return this.#mem.waitAsync(off, expected, ms)
  }
  notify(off: number, count?: number): void {
    this.#mem.notify(off, count)
  }
  read(at: number, target: Uint8Array, length: number): void {
    if (length === 0) return
    this.#mem.copyFrom(at, at, length)
    bufCopy(this.#u8, target, 0, at, at + length)
  }
  write(at: number, source: Uint8Array | string, length: number): void {
    if (typeof source === 'string') this.#u8.write(source, at, length, 'utf8')
    else copyInto(this.#u8, at, source, length)
  }
  view(at: number, length: number): Uint8Array {
    return new Uint8Array(this.#u8.buffer, this.#u8.byteOffset + at, length)
  }
  readView(at: number, length: number): Uint8Array {
    if (length > 0) this.#mem.copyFrom(at, at, length)
    return new Uint8Array(this.#u8.buffer, this.#u8.byteOffset + at, length)
  }
  stage(at: number, length: number): void {
    if (length > 0) this.#mem.copyFrom(at, at, length)
  }
  flush(at: number, length: number): void {
    if (length > 0) this.#mem.copyTo(at, at, length)
  }
}
