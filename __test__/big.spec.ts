// Segments of 2 GiB and more (issue 17): offsets and typed-array lengths past 2^31 and 2^32.
// The segments are sparse (ftruncate on tmpfs allocates no page that is never touched), so a
// zero-copy run touches a few pages. A caged run copies the whole segment into V8 memory (that
// is what caged mode is), so it runs one size, and only where the memory is there.
import test from 'ava'
import { freemem } from 'node:os'
import { SharedMemory } from '../dist'
import { FORCED_COPY, foreignCreate, foreignRead, foreignUnlink } from './helpers/util'

const SIZES = FORCED_COPY ? [2 ** 32 + 16] : [2 ** 31, 2 ** 32, 2 ** 32 + 16]
/** What a runtime may answer instead of mapping it all (README, Limits): coded, never a crash. */
const REFUSALS = ['ERR_BUFFER_TOO_LARGE', 'ERR_MEMORY_ALLOCATION_FAILED']
const enough = !FORCED_COPY || freemem() > 3 * 2 ** 32

/** Opens `name` whole, or — where this runtime refuses that with a coded error — its first 2^32 bytes. */
function openBig(t: any, name: string): SharedMemory {
  try {
    return new SharedMemory(name)
  } catch (e: any) {
    t.true(REFUSALS.includes(e?.code), `refused with ${e?.code}: ${e?.message}`)
    t.log(`whole segment refused (${e.code}); mapping 2^32 bytes`)
    return new SharedMemory(name, 2 ** 32)
  }
}

for (const size of SIZES) {
  const run = enough ? test.serial : test.serial.skip
  run(`atomics, copies, wait and notify reach the right bytes of a ${size}-byte segment`, async (t) => {
    const name = foreignCreate('big', size)
    const m = openBig(t, name)
    try {
      const len = m.length as number
      t.true(len === size || len === 2 ** 32)
      const end = len - 4
      t.is(m.atomicStore(0, 1), 1)
      t.is(m.atomicStore(12, 3), 3)
      t.is(m.atomicStore(end, 7), 7)
      if (len > 2 ** 32) t.is(m.atomicStore(2 ** 32, 9), 9)
      t.is(m.atomicLoad(0), 1, 'byte 0 kept its value (no wrap at 2^32)')
      t.is(m.atomicLoad(12), 3, 'byte 12 kept its value (no wrap at 2^32)')
      t.is(m.atomicLoad(end), 7)
      t.is(m.atomicAdd(end, 1), 7)
      t.is(m.atomicCompareExchange(end, 8, 10), 8)
      t.deepEqual([...foreignRead(name, end, 4)], [10, 0, 0, 0], 'a foreign process sees it at the end')
      t.deepEqual([...foreignRead(name, 0, 16)], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0])
      if (len > 2 ** 32) t.deepEqual([...foreignRead(name, 2 ** 32, 4)], [9, 0, 0, 0])
      t.is(m.wait(end, 0, 0), 'not-equal')
      t.is(m.wait(end, 10, 1), 'timed-out')
      t.is(await m.waitAsync(end, 10, 1), 'timed-out')
      t.is(m.notify(end), 0)
      t.throws(() => m.atomicLoad(len), { code: 'ERR_OUT_OF_RANGE' })
      t.throws(() => m.atomicStore(end + 4, 1), { code: 'ERR_OUT_OF_RANGE' })
      // Copies past 2^32 (no-ops zero-copy; exact ranges caged).
      const u8 = new Uint8Array(m.buffer as ArrayBuffer, len - 8, 8)
      m.copyFrom(len - 8, len - 8, 8)
      t.deepEqual([...u8], [0, 0, 0, 0, 10, 0, 0, 0])
      u8[0] = 0x55
      m.copyTo(len - 8, len - 8, 1)
      t.deepEqual([...foreignRead(name, len - 8, 1)], [0x55])
      t.throws(() => m.copyFrom(len - 8, len - 8, 9), { code: 'ERR_OUT_OF_RANGE' })
      t.throws(() => m.copyTo(0, len, 1), { code: 'ERR_OUT_OF_RANGE' })
      if (m.requiresCopy && len > 2 ** 32) {
        // From past 2^32 in the segment to the start of the copy and back: exactly 4 bytes.
        m.copyFrom(2 ** 32, 0, 4)
        t.deepEqual([...new Uint8Array(m.buffer as ArrayBuffer, 0, 8)], [9, 0, 0, 0, 0, 0, 0, 0])
        m.copyTo(0, 2 ** 32 + 8, 4)
        t.is(m.atomicLoad(2 ** 32 + 8), 9)
        t.is(m.atomicLoad(8), 0)
      }
    } finally {
      m.close()
      foreignUnlink(name)
    }
  })
}
