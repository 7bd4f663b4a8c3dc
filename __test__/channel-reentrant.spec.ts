// Hostile JavaScript against the one-to-one "writing first" send and the split copy (issue 19;
// found by the break19 review of 58ee652): globals and prototype methods patched after load that
// run user code inside a payload copy, or change how much it copies.
import test from 'ava'
import { Channel } from '../dist'
import { FORCED_COPY, uniqueName } from './helpers/util'
import { splitCopies } from '../dist/channel-words'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('../index.js') as { pageOffset: (v: unknown) => number }
const SPLITS = process.platform === 'linux' && process.arch === 'x64' && !FORCED_COPY

function fresh(t: { teardown: (f: () => void) => void }, tag: string, capacity: number, extra: object = {}): Channel {
  const name = uniqueName(`ch-reenter-${tag}`)
  const ch = Channel.create(name, { capacity, ...extra })
  t.teardown(() => {
    ch.close()
    Channel.unlink(name)
  })
  return ch
}

/** A 2048-byte view (of a larger buffer filled with 0xee) whose page offset is 8 bytes before the ring payload at index 0. */
function aliasedSource(): Uint8Array {
  const ab = new ArrayBuffer(65536)
  const whole = new Uint8Array(ab).fill(0xee)
  const base = binding.pageOffset(whole)
  const off = ((((1024 - base) % 4096) + 4096) % 4096) + 4096
  return whole.subarray(off, off + 2048).fill(0x77)
}

function withMathMin<T>(fake: (real: (...a: number[]) => number, a: number[]) => number, f: () => T): T {
  const real = Math.min
  Math.min = function (...a: number[]) {
    return fake(real, a)
  }
  try {
    return f()
  } finally {
    Math.min = real
  }
}

for (const mode of ['one-to-one', 'many-to-one']) {
  for (const how of ['more', 'less']) {
    test.serial(`${mode}: Math.min patched after load cannot make a split send copy ${how} than the claimed length`, (t) => {
      const ch = fresh(t, 'min', 16384, { mode })
      const msg = (n: number, v: number) => Buffer.alloc(n, v)
      ch.send(msg(2048, 1))
      ch.receive() // head = tail = 2056
      const queued = [msg(4088, 0x11), msg(4088, 0x22), msg(4088, 0x33), msg(2032, 0x44)]
      for (const m of queued) ch.send(m) // up to the ring's end: 2056 bytes free at index 0
      const src = aliasedSource()
      const want = Buffer.from(src)
      const before = splitCopies.count
      withMathMin((real, a) => (a[0] === 2016 ? (how === 'more' ? 2016 : 0) : real(...a)), () => ch.send(src))
      if (SPLITS) t.is(splitCopies.count - before, 1, 'the send took the split path')
      for (const m of queued) t.deepEqual(Buffer.from(ch.receive({ timeout: 2000 })!), m, `queued record of ${m.length} × 0x${m[0].toString(16)} intact`)
      t.deepEqual(Buffer.from(ch.receive({ timeout: 2000 })!), want, 'the message as sent')
    })
  }
}

test.serial('Math.min patched after load cannot make a split receiveInto write past the message into the caller\'s view', (t) => {
  const ch = fresh(t, 'min-rx', 16384, { mode: 'one-to-one' })
  const src = Buffer.alloc(2048, 0x55)
  ch.send(src)
  // target: 8 bytes past the ring payload (page offset 1032) modulo 4096, 4096 bytes long
  const ab = new ArrayBuffer(65536)
  const base = binding.pageOffset(new Uint8Array(ab))
  const off = ((((1040 - base) % 4096) + 4096) % 4096) + 4096
  const target = new Uint8Array(ab, off, 4096).fill(0xcc)
  const before = splitCopies.count
  ch.send(Buffer.alloc(2048, 0x99)) // the ring bytes after the first message's payload
  const n = withMathMin((real, a) => (a[0] === 2016 ? 2016 : real(...a)), () => ch.receiveInto(target))
  if (SPLITS) t.is(splitCopies.count - before, 1, 'the receive took the split path')
  t.is(n, 2048)
  t.deepEqual(Buffer.from(target.subarray(0, 2048)), src)
  t.is(Buffer.from(target.subarray(2048)).filter((x) => x !== 0xcc).length, 0, 'no byte past the message length written')
})

/**
 * Runs `send(outer)` on a one-to-one channel while `arm` makes user code run inside the payload
 * copy; that code sends INNER on the same handle once. Every message received must be one that
 * was sent, the channel must stay usable, and an inner send that returned must be delivered.
 */
function reentrant(t: any, arm: (inner: () => void, ch: Channel) => () => void, outer: () => Uint8Array | string, prime?: (ch: Channel) => void) {
  const ch = fresh(t, 'reenter', 16384, { mode: 'one-to-one' })
  const INNER = 'INNER-MESSAGE'
  for (let k = 0; k < 1024; k++) {
    ch.send(`OLD-MSG-${String(k).padStart(5, '0')}`) // a lap: stale records lie beyond tail
    ch.receive()
  }
  prime?.(ch)
  let innerSent = false
  let armed = true
  const inner = () => {
    if (!armed) return
    armed = false
    try {
      ch.send(INNER)
      innerSent = true
    } catch (e) {
      t.log(`inner send threw ${(e as NodeJS.ErrnoException).code}`)
    }
  }
  const data = outer()
  const want = Buffer.from(typeof data === 'string' ? Buffer.from(data) : data)
  const disarm = arm(inner, ch)
  try {
    ch.send(data)
  } finally {
    disarm()
  }
  const got: Buffer[] = []
  for (let m; (m = ch.tryReceive()) !== null; ) got.push(Buffer.from(m))
  const expected = innerSent ? [Buffer.from(INNER), want] : [want]
  t.deepEqual(got.map((b) => (b.length > 32 ? `${b.length} bytes ${b.subarray(0, 4).toString('hex')}` : b.toString())), expected.map((b) => (b.length > 32 ? `${b.length} bytes ${b.subarray(0, 4).toString('hex')}` : b.toString())))
  ch.send('after')
  t.is(Buffer.from(ch.receive({ timeout: 1000 })!).toString(), 'after', 'the channel is still usable')
}

test.serial('one-to-one: a send() re-entered from a patched Buffer.prototype.write (string copy) does not take the same room', (t) => {
  reentrant(
    t,
    (inner) => {
      const real = Buffer.prototype.write
      Buffer.prototype.write = function (this: Buffer, ...a: unknown[]) {
        inner()
        return (real as any).apply(this, a)
      } as any
      return () => {
        Buffer.prototype.write = real
      }
    },
    () => 'OUTER-MESSAGE',
  )
})

test.serial('one-to-one: a send() re-entered from a patched global Int32Array (reused small view) does not take the same room', (t) => {
  const view = new Uint8Array(64).fill(0x5a)
  reentrant(
    t,
    (inner) => {
      const Real = Int32Array
      ;(globalThis as any).Int32Array = function (...a: unknown[]) {
        inner()
        return new (Real as any)(...a)
      }
      return () => {
        ;(globalThis as any).Int32Array = Real
      }
    },
    () => view,
    (ch) => {
      ch.send(view) // the second send of the same array makes its Int32Array view
      ch.receive()
    },
  )
})

test.serial('one-to-one: a send() re-entered from a patched Math.min (split copy) does not take the same room', (t) => {
  reentrant(
    t,
    (inner) => {
      const real = Math.min
      Math.min = function (...a: number[]) {
        if (a[0] === 2016) inner()
        return real(...a)
      }
      return () => {
        Math.min = real
      }
    },
    () => aliasedSource(),
  )
})
