// The channel's shared layout, version 2 (docs/channel.md §1–§2): header offsets, record states,
// the record size rule, and the attach checks. Everything a peer reads from the segment is
// validated before use: positions and lengths are unsigned 32-bit values (`>>> 0`), compared
// before any arithmetic that could wrap, so a peer that writes garbage gets
// ERR_SHM_CHANNEL_LAYOUT, never a wrapped size, a huge allocation or an endless loop.

import type { CodedError } from './errors'

/** Header (docs/channel.md §1); byte offsets of 32-bit words. */
export const MAGIC = 0x434d534e
export const VERSION = 2
export const HEADER = 1024
export const O_MAGIC = 0
export const O_VERSION = 4
export const O_CAPACITY = 8
export const O_MODE = 12
export const O_RECOVERY = 16
export const O_ENDED = 20
export const O_TAIL = 128
export const O_LOCK = 132
export const O_LOCK_SLEEPERS = 136
export const O_HEAD = 256
export const O_CONSUMER = 260
export const O_DATA_SEQ = 384
export const O_CONSUMER_SLEEPERS = 388
export const O_SPACE_SEQ = 512
export const O_PRODUCER_SLEEPERS = 516

/** Record states (docs/channel.md §2); a claimed record holds `-token` (negative). */
export const MESSAGE = 1
export const PADDING = 2

export const MIN_CAPACITY = 256
export const MAX_CAPACITY = 2 ** 30
export const DEFAULT_RECOVERY_MS = 1000

/** Bytes a record of `length` payload bytes occupies; `length` must be `<= MAX_CAPACITY`. */
export const recordSize = (length: number): number => (length + 15) & ~7

export function coded<E extends Error>(error: E, code: string, extra?: object): CodedError<E> {
  return Object.assign(error, { code }, extra)
}

export function layoutError(name: string, why: string): CodedError {
  return coded(new Error(`shared memory '${name}' is not a usable channel: ${why} (see docs/channel.md, layout version ${VERSION})`), 'ERR_SHM_CHANNEL_LAYOUT')
}

/** What attaching found in the header. */
export interface Header {
  capacity: number
  oneToOne: boolean
  recoveryMs: number
}

/**
 * The attach checks (docs/channel.md §1) over header words read with `load`, for a segment of
 * `length` bytes: the header, or ERR_SHM_CHANNEL_LAYOUT naming what is wrong. A version-1 segment
 * is refused by its version number (the two versions differ in what the identity words hold).
 */
export function checkHeader(name: string, load: (off: number) => number, length: number): Header {
  const magic = load(O_MAGIC) >>> 0
  if (magic !== MAGIC) throw layoutError(name, `magic is 0x${magic.toString(16)}, expected 0x${MAGIC.toString(16)}`)
  const version = load(O_VERSION) >>> 0
  if (version !== VERSION) {
    const what = version === 1 ? 'a layout version 1 channel (an older peer)' : `layout version ${version}`
    throw layoutError(name, `${what}; this peer speaks version ${VERSION} only`)
  }
  const capacity = load(O_CAPACITY) >>> 0
  if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw layoutError(name, `capacity ${capacity} is not a power of two from ${MIN_CAPACITY} to 2^30`)
  }
  if (length < HEADER + capacity) throw layoutError(name, `the segment has ${length} bytes, the header says ${HEADER + capacity}`)
  const mode = load(O_MODE) >>> 0
  if (mode > 1) throw layoutError(name, `unknown mode ${mode}`)
  const recoveryMs = load(O_RECOVERY)
  if (recoveryMs < 1) throw layoutError(name, `recoveryMs ${recoveryMs} is not >= 1`)
  const used = (load(O_TAIL) - load(O_HEAD)) >>> 0
  if (used > capacity || used % 8 !== 0) throw layoutError(name, `tail - head is ${used}, not a multiple of 8 within the capacity ${capacity}`)
  return { capacity, oneToOne: mode === 1, recoveryMs }
}
