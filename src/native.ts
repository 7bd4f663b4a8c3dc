// The native binding (crates/shm-napi), loaded through the loader `napi build` generates.
// Internal: the public API is the SharedMemory class.

/* eslint-disable @typescript-eslint/no-require-imports */
import generated = require('../index.js')

/** The hot-path callbacks registered by crates/shm-napi/src/hot.rs (not in the generated types). */
interface Hot {
  copyFrom(handle: object, srcOffset: number, dstOffset: number, length: number): void
  copyTo(handle: object, srcOffset: number, dstOffset: number, length: number): void
  load(handle: object, byteOffset: number): number
  store(handle: object, byteOffset: number, value: number): number
  add(handle: object, byteOffset: number, delta: number): number
  compareExchange(handle: object, byteOffset: number, expected: number, replacement: number): number
  wait(handle: object, byteOffset: number, expected: number, timeout: number, inWorker: boolean): 'ok' | 'not-equal' | 'timed-out'
  waitAsync(handle: object, byteOffset: number, expected: number, timeout: number): Promise<'ok' | 'not-equal' | 'timed-out'>
  notify(handle: object, byteOffset: number, count: number): number
  atomicsView(handle: object): Int32Array | null
  sharedBuffer(handle: object): SharedArrayBuffer | null
  close(handle: object): void
  /** The address of `view`'s first byte modulo 4096 (where it would be, out of bounds); -1 for a non-typed-array or a detached view. */
  pageOffset(view: unknown): number
}

export const native = generated as typeof generated & Hot
