// The message channel (src/channel.ts, docs/channel.md) across processes and languages. Runs in
// both ava runs: zero-copy, and caged with NODE_SHARED_MEM_FORCE_COPY=1 (the child processes
// inherit the mode). Foreign peers: examples/channel.py (Python) and crates/shm-channel (Rust).
import test from 'ava'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import * as path from 'node:path'
import fc from 'fast-check'
import { Channel, SharedMemory } from '../dist'
import { FORCED_COPY, PYTHON, ROOT, uniqueName } from './helpers/util'
import { splitCopies } from '../dist/channel-words'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { skip } = require('../scripts/skip.cjs') as { skip: (what: string, tool: string, see?: string) => boolean }

const PY_PEER = path.join(ROOT, 'examples', 'channel.py')
const RUST_TARGET = path.join(ROOT, 'target', 'channel')
const RUST_PEER = path.join(RUST_TARGET, 'release', 'shm-channel')

/** Whether the foreign peers can run here (decided once, in `before`). */
const peers = { python: false, rust: false }

test.before(() => {
  const py = spawnSync(PYTHON, ['-c', "import ctypes; ctypes.CDLL('libatomic.so.1')"], { stdio: 'ignore' })
  peers.python = !py.error && py.status === 0
  if (!peers.python && !skip('channel tests with the Python peer', `${PYTHON} with libatomic.so.1`, 'examples/channel.py')) {
    throw new Error('Python peer unavailable and CI=true')
  }
  const cargo = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'shm-channel'], {
    cwd: ROOT,
    env: { ...process.env, CARGO_TARGET_DIR: RUST_TARGET },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  })
  peers.rust = !cargo.error && cargo.status === 0
  if (!peers.rust) {
    if (cargo.error) {
      if (!skip('channel tests with the Rust peer', 'cargo', 'README "On a fresh machine"')) throw new Error('cargo missing and CI=true')
    } else {
      throw new Error(`cargo build -p shm-channel failed:\n${cargo.stderr}`)
    }
  }
})

/** A channel with a unique name, unlinked after the test. */
function fresh(t: { teardown: (f: () => void) => void }, tag: string, capacity: number, extra: object = {}): [Channel, string] {
  const name = uniqueName(`ch-${tag}`)
  const ch = Channel.create(name, { capacity, ...extra })
  t.teardown(() => {
    ch.close()
    Channel.unlink(name)
  })
  return [ch, name]
}

/** The test message every peer produces: id, seq, filler (id*7 + seq*13 + k) & 0xff. */
function testMessage(id: number, seq: number, len: number): Buffer {
  const b = Buffer.alloc(len)
  b.writeUInt32LE(id, 0)
  b.writeUInt32LE(seq, 4)
  for (let k = 8; k < len; k++) b[k] = (id * 7 + seq * 13 + k) & 255
  return b
}

/** Checks messages: exact content, and per producer the sequence 0, 1, 2 … (no loss, no duplicate, in order). */
class Checker {
  next = new Map<number, number>()
  /** Per producer: when (Date.now()) its latest message arrived. */
  at = new Map<number, number>()
  errors: string[] = []
  add(m: Uint8Array): void {
    const b = Buffer.from(m.buffer, m.byteOffset, m.byteLength)
    if (b.length < 8) {
      this.errors.push(`short message of ${b.length} bytes`)
      return
    }
    const id = b.readUInt32LE(0)
    const seq = b.readUInt32LE(4)
    const want = this.next.get(id) ?? 0
    if (seq !== want) this.errors.push(`producer ${id}: got seq ${seq}, expected ${want}`)
    if (!b.equals(testMessage(id, seq, b.length))) this.errors.push(`producer ${id} seq ${seq}: corrupt payload`)
    this.next.set(id, seq + 1)
    this.at.set(id, Date.now())
  }
}

type Exit = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function run(cmd: string, args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): { child: ChildProcess; exit: Promise<Exit>; line: (s: string) => Promise<void> } {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: [stdin, 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const waiters: [string, () => void][] = []
  child.stdout!.on('data', (d) => {
    stdout += d
    for (const w of waiters.splice(0)) if (stdout.includes(w[0])) w[1]()
    else waiters.push(w)
  })
  child.stderr!.on('data', (d) => (stderr += d))
  // 'close', not 'exit': 'exit' can fire before the child's last stdout bytes were read.
  const exit = new Promise<Exit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  const line = (s: string) =>
    new Promise<void>((resolve, reject) => {
      if (stdout.includes(s)) return resolve()
      waiters.push([s, resolve])
      void exit.then((e) => reject(new Error(`child exited (${e.code ?? e.signal}) before printing ${s}: ${e.stderr}`)))
    })
  return { child, exit, line }
}

/** Producer timeouts in the multi-process tests: a lost wake-up or a stuck claim fails in seconds. */
const PRODUCER_TIMEOUT = 5000

/**
 * A Node producer process: ops are [kind, length]; 'abort' claims and aborts (sends nothing).
 * Prints the count of messages sent and the time (Date.now()) its last message was committed.
 */
const NODE_PRODUCER = `
const { Channel } = require('.')
const [name, id, ops] = [process.argv[1], Number(process.argv[2]), JSON.parse(process.argv[3])]
const timeout = ${PRODUCER_TIMEOUT}
function msg(seq, len) { const b = Buffer.alloc(len); b.writeUInt32LE(id, 0); b.writeUInt32LE(seq, 4); for (let k = 8; k < len; k++) b[k] = (id * 7 + seq * 13 + k) & 255; return b }
;(async () => {
  const ch = new Channel(name)
  let seq = 0
  let last = 0
  for (const [kind, len] of ops) {
    if (kind === 'abort') { ch.claim(len, { timeout }); ch.abort(); continue }
    const m = msg(seq++, len)
    if (kind === 'send') ch.send(m, { timeout })
    else if (kind === 'try') { const until = Date.now() + timeout; while (!ch.trySend(m)) { if (Date.now() > until) throw new Error('trySend: no room within ' + timeout + ' ms'); await new Promise((r) => setImmediate(r)) } }
    else if (kind === 'async') await ch.sendAsync(m, { timeout })
    else if (kind === 'claim') { ch.claim(len, { timeout }).set(m); ch.commit() }
    else if (kind === 'view') ch.send(new DataView(m.buffer, m.byteOffset, m.byteLength), { timeout })
    last = Date.now()
  }
  ch.close()
  process.stdout.write(seq + ' ' + last)
})().catch((e) => { console.error(e); process.exit(1) })
`

function nodeProducer(name: string, id: number, ops: [string, number][]) {
  return run(process.execPath, ['-e', NODE_PRODUCER, '--', name, String(id), JSON.stringify(ops)])
}

/** Receives `count` messages with the sync API (bounded waits), feeding `checker`. */
function consume(ch: Channel, count: number, checker: Checker, how: (i: number) => number = () => 0): void {
  const scratch = new Uint8Array(ch.maxMessageLength)
  for (let i = 0; i < count; i++) {
    const kind = how(i)
    if (kind === 1) {
      const n = ch.receiveInto(scratch, { timeout: 20_000 })
      if (n === null) throw new Error('ended early')
      checker.add(scratch.subarray(0, n))
    } else if (kind === 2) {
      let m = ch.tryReceive()
      for (const until = Date.now() + 20_000; m === null && Date.now() < until; ) m = ch.tryReceive()
      if (m === null) throw new Error('tryReceive: nothing within 20 s')
      checker.add(m)
    } else {
      const m = ch.receive({ timeout: 20_000 })
      if (m === null) throw new Error('ended early')
      checker.add(m)
    }
  }
}

// ---- one process ------------------------------------------------------------------------------

test.serial('sends strings and every kind of bytes, whole and in order, up to capacity − 8 bytes', (t) => {
  const [ch] = fresh(t, 'kinds', 1024)
  t.is(ch.requiresCopy, FORCED_COPY)
  t.is(ch.maxMessageLength, 1016)
  const u16 = new Uint16Array([1, 2, 0xffff, 4]).subarray(1, 3)
  ch.send('héllo ✓')
  ch.send(Buffer.from([1, 2, 3]))
  ch.send(u16)
  ch.send(new DataView(new Uint8Array([9, 8, 7]).buffer, 1, 2))
  ch.send(new Uint8Array([5, 6]).buffer)
  ch.send('')
  t.is(Buffer.from(ch.receive()!).toString(), 'héllo ✓')
  t.deepEqual([...ch.receive()!], [1, 2, 3])
  t.deepEqual([...ch.receive()!], [2, 0, 0xff, 0xff])
  t.deepEqual([...ch.receive()!], [8, 7])
  t.deepEqual([...ch.receive()!], [5, 6])
  t.deepEqual([...ch.receive()!], [])
  t.is(ch.tryReceive(), null)
  const max = Buffer.alloc(1016, 0xab)
  // The ring is empty but its tail is at byte 96: the padding to the end is published, and the
  // consumer must pass it before a message of the whole ring fits at byte 0.
  t.false(ch.trySend(max))
  t.is(ch.tryReceive(), null, 'padding only')
  t.true(ch.trySend(max))
  t.deepEqual(Buffer.from(ch.receive()!), max)
  const e = t.throws(() => ch.send(Buffer.alloc(1017)), { instanceOf: RangeError })
  t.is((e as NodeJS.ErrnoException).code, 'ERR_OUT_OF_RANGE')
  t.is(ch.tryReceive(), null, 'nothing was sent')
})

test.serial('trySend returns false exactly when the ring is full, and padding at the wrap is skipped', (t) => {
  const [ch] = fresh(t, 'full', 256)
  // 48-byte messages take 56-byte records: 4 fit (224 bytes); the 5th needs padding (32 bytes to
  // the end), which is published, and then does not fit.
  const msgs = [0, 1, 2, 3, 4, 5].map((i) => Buffer.alloc(48, i))
  t.true(ch.trySend(msgs[0]))
  t.true(ch.trySend(msgs[1]))
  t.true(ch.trySend(msgs[2]))
  t.true(ch.trySend(msgs[3]))
  t.false(ch.trySend(msgs[4]))
  t.false(ch.trySend(msgs[4]), 'still full')
  const e = t.throws(() => ch.send(msgs[4], { timeout: 30 }))
  t.is((e as NodeJS.ErrnoException).code, 'ETIMEDOUT')
  t.deepEqual(Buffer.from(ch.receive()!), msgs[0])
  t.true(ch.trySend(msgs[4]), 'one record freed at the start of the ring: it fits there')
  t.false(ch.trySend(msgs[5]))
  for (const i of [1, 2, 3, 4]) t.deepEqual(Buffer.from(ch.receive()!), msgs[i])
  t.is(ch.tryReceive(), null)
})

test.serial('receiveInto: the length, no copy beyond it; a too-small view leaves the message queued', (t) => {
  const [ch] = fresh(t, 'into', 1024)
  ch.send(Buffer.from('abcdef'))
  const small = new Uint8Array(5).fill(0xee)
  const e = t.throws(() => ch.receiveInto(small), { instanceOf: RangeError }) as NodeJS.ErrnoException & { messageLength: number }
  t.is(e.code, 'ERR_OUT_OF_RANGE')
  t.is(e.messageLength, 6)
  t.deepEqual([...small], [0xee, 0xee, 0xee, 0xee, 0xee], 'nothing written into the small view')
  const view = new Uint8Array(8).fill(0xee)
  t.is(ch.receiveInto(view), 6)
  t.is(Buffer.from(view).toString('latin1'), 'abcdef\xee\xee')
  const words = new Uint32Array(2)
  ch.send(Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]))
  t.is(ch.receiveInto(words), 8)
  t.deepEqual([...words], [1, 2])
  // The same send and receive arrays reused (the word-copy path), aligned and not, odd lengths.
  const backing = new Uint8Array(300)
  for (const [off, len] of [[0, 13], [0, 7], [0, 256], [1, 13], [1, 7], [3, 200], [0, 0], [4, 3]]) {
    const src = new Uint8Array(backing.buffer, off, len)
    const dst = new Uint8Array(new ArrayBuffer(300), off, 280)
    for (let r = 0; r < 3; r++) {
      for (let k = 0; k < len; k++) src[k] = (k * 7 + r + off) & 255
      ch.send(src)
      dst.fill(0xee)
      t.is(ch.receiveInto(dst), len)
      if (!src.every((b, k) => dst[k] === b) || dst[len] !== 0xee) t.fail(`offset ${off}, length ${len}, round ${r}: ${[...dst.subarray(0, len + 1)]}`)
    }
  }
})

test.serial('receiveView: the message in place, its room held until release(), then given back', (t) => {
  const [ch, name] = fresh(t, 'view', 256)
  const tx = new Channel(name)
  const mem = new SharedMemory(name)
  t.teardown(() => (tx.close(), mem.close()))
  const pending = (f: () => unknown) => t.is((t.throws(f) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_VIEW_PENDING')
  t.is(ch.tryReceiveView(), null, 'nothing yet')
  tx.send('first') // a 16-byte record at ring index 0
  const v = ch.receiveView()!
  t.is(Buffer.from(v).toString(), 'first')
  t.is(v.byteLength, 5)
  t.is(v.byteOffset, 1024 + 8, 'the payload of the record at index 0')
  // In place (zero-copy): a byte written through another mapping shows in the view; caged: the
  // view is the local copy of exactly this message's bytes, taken once.
  mem.atomicStore(1024 + 8, 0x41414141)
  t.is(Buffer.from(v).toString(), FORCED_COPY ? 'first' : 'AAAAt')
  mem.atomicStore(1024 + 8, Buffer.from('firs').readInt32LE(0))
  // Its room is not given back: 240 bytes hold 15 more 16-byte records, not 16.
  let sent = 0
  while (tx.trySend(Buffer.alloc(8, sent))) sent++
  t.is(sent, 15, 'the held record is not reused while its view is held')
  t.is(Buffer.from(v).toString(), 'first', 'the view is intact with the ring full around it')
  pending(() => ch.receive())
  pending(() => ch.receiveInto(new Uint8Array(64)))
  pending(() => ch.tryReceive())
  pending(() => ch.receiveView())
  pending(() => ch.tryReceiveView())
  pending(() => ch.drain(() => {}))
  ch.release()
  t.is((t.throws(() => ch.release()) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_NO_VIEW')
  t.true(tx.trySend(Buffer.alloc(8, 15)), 'release() gave the room back')
  for (let k = 0; k < 16; k++) {
    const m = ch.receiveView({ timeout: 1000 })!
    t.deepEqual([...m], Array(8).fill(k), `message ${k} after the wrap`)
    ch.release()
  }
  t.is(ch.tryReceiveView(), null)
  ch.end()
  t.is(ch.receiveView(), null, 'ended and drained')
})

test.serial('receiveView of 64 KiB messages from another process: whole, in order, each read in place', async (t) => {
  const [ch, name] = fresh(t, 'view-big', 1 << 18, { mode: 'one-to-one' })
  const n = 40
  const p = run(process.execPath, ['-e', `
    const { Channel } = require('.')
    const ch = new Channel(process.argv[1])
    for (let i = 0; i < ${n}; i++) { const v = ch.claim(65536); v.fill(i); v[0] = 0xa5; v[65535] = i ^ 0xff; ch.commit() }
    ch.close()
  `, '--', name])
  for (let i = 0; i < n; i++) {
    const v = ch.receiveView({ timeout: 10_000 })!
    t.is(v.byteLength, 65536)
    if (v[0] !== 0xa5 || v[1] !== i || v[32768] !== i || v[65535] !== (i ^ 0xff)) t.fail(`message ${i}: ${v[0]} ${v[1]} ${v[32768]} ${v[65535]}`)
    ch.release()
  }
  t.is((await p.exit).code, 0)
})

test.serial('drain(fn): every ready message in order, one head store per batch, max, a throwing fn, end', (t) => {
  const [ch, name] = fresh(t, 'drain', 1024)
  const tx = new Channel(name)
  const mem = new SharedMemory(name)
  t.teardown(() => (tx.close(), mem.close()))
  for (let k = 0; k < 10; k++) tx.send(`m${k}`)
  const got: string[] = []
  const heads: number[] = []
  t.is(
    ch.drain((v) => {
      got.push(Buffer.from(v).toString())
      heads.push(mem.atomicLoad(256))
    }),
    10,
  )
  t.deepEqual(got, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9'])
  t.deepEqual(heads, Array(10).fill(0), 'head is not stored while the batch runs (its views stay valid)')
  t.is(mem.atomicLoad(256), 160, 'one store at the end: ten 16-byte records released')
  for (let k = 0; k < 5; k++) tx.send(`n${k}`)
  got.length = 0
  t.is(ch.drain((v) => got.push(Buffer.from(v).toString()), { max: 2 }), 2)
  t.is(mem.atomicLoad(256), 192)
  t.is(ch.drain((v) => got.push(Buffer.from(v).toString())), 3)
  t.deepEqual(got, ['n0', 'n1', 'n2', 'n3', 'n4'])
  for (let k = 0; k < 3; k++) tx.send(`x${k}`)
  const boom = new Error('boom')
  t.is(t.throws(() => ch.drain((v) => { if (Buffer.from(v).toString() === 'x1') throw boom })), boom)
  t.is(mem.atomicLoad(256), 272, 'x0 and x1 (whose fn threw) are released, x2 is not')
  got.length = 0
  t.is(ch.drain((v) => got.push(Buffer.from(v).toString())), 1)
  t.deepEqual(got, ['x2'])
  t.is((t.throws(() => ch.drain(() => {}, { timeout: 30 })) as NodeJS.ErrnoException).code, 'ETIMEDOUT')
  t.is((t.throws(() => ch.drain(() => {}, { max: 0 }), { instanceOf: RangeError }) as NodeJS.ErrnoException).code, 'ERR_OUT_OF_RANGE')
  t.is((t.throws(() => ch.drain('f' as never), { instanceOf: TypeError }) as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG_TYPE')
  tx.send('last')
  ch.end()
  t.is(ch.drain(() => {}), 1)
  t.is(ch.drain(() => {}), null, 'ended and drained')
})

test.serial('sendMany: every message whole and in order, across the wrap, in both modes; a bad element sends nothing', (t) => {
  for (const mode of ['one-to-one', 'many-to-one'] as const) {
    const [ch, name] = fresh(t, `many-${mode}`, 1024, { mode })
    const tx = new Channel(name)
    t.teardown(() => tx.close())
    // Move head and tail to 24 bytes before the ring's end: 'a' (16 bytes) fits there, 'bb'
    // does not, so the batch publishes padding over the last 8 bytes and goes on at index 0.
    tx.send(Buffer.alloc(992))
    t.is(ch.receive()!.length, 992)
    const batch = ['a', Buffer.from('bb'), new Uint16Array([0x6363]), 'dddd', new Uint8Array(0), 'é'.repeat(100)]
    tx.sendMany(batch)
    const got: string[] = []
    t.is(ch.drain((v) => got.push(Buffer.from(v).toString())), batch.length)
    t.deepEqual(got, ['a', 'bb', 'cc', 'dddd', '', 'é'.repeat(100)], mode)
    tx.sendMany([])
    t.is(ch.tryReceive(), null)
    const bad = t.throws(() => tx.sendMany(['x', 42 as never]), { instanceOf: TypeError }) as NodeJS.ErrnoException
    t.is(bad.code, 'ERR_INVALID_ARG_TYPE')
    const long = t.throws(() => tx.sendMany(['x', Buffer.alloc(1017)], { timeout: 1000 }), { instanceOf: RangeError }) as NodeJS.ErrnoException
    t.is(long.code, 'ERR_OUT_OF_RANGE')
    t.is((t.throws(() => tx.sendMany('xy' as never), { instanceOf: TypeError }) as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG_TYPE')
    t.is(ch.tryReceive(), null, 'a bad element: nothing of the batch was sent')
  }
})

test.serial('sendMany: a full ring times out with err.sent = the messages sent; after end() nothing is sent', (t) => {
  const [ch, name] = fresh(t, 'many-full', 256, { mode: 'one-to-one' })
  const tx = new Channel(name)
  t.teardown(() => tx.close())
  // Records of 64 bytes: four fit in 256.
  const msgs = Array.from({ length: 6 }, (_, k) => Buffer.alloc(56, k))
  const e = t.throws(() => tx.sendMany(msgs, { timeout: 50 })) as NodeJS.ErrnoException & { sent?: number }
  t.is(e.code, 'ETIMEDOUT')
  t.is(e.sent, 4)
  const got: number[] = []
  t.is(ch.drain((v) => got.push(v[0]!)), 4)
  t.deepEqual(got, [0, 1, 2, 3])
  ch.end()
  t.is((t.throws(() => tx.sendMany(msgs.slice(0, 2))) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_ENDED')
  t.is(ch.receive(), null, 'nothing of the refused batch was delivered')
})

test.serial('sendMany: an array proxy whose trap sends another batch meanwhile: both batches whole, the inner one first', (t) => {
  const [ch, name] = fresh(t, 'many-proxy', 4096, { mode: 'one-to-one' })
  const tx = new Channel(name)
  t.teardown(() => tx.close())
  let nested = false
  const outer = new Proxy(['o0', 'o1', 'o2'], {
    get(target, key, receiver) {
      if (key === '1' && !nested) {
        nested = true
        tx.sendMany(['i0', 'i1', 'i2', 'i3'])
      }
      return Reflect.get(target, key, receiver)
    },
  })
  tx.sendMany(outer)
  const got: string[] = []
  ch.drain((v) => got.push(Buffer.from(v).toString()))
  t.deepEqual(got, ['i0', 'i1', 'i2', 'i3', 'o0', 'o1', 'o2'])
})

test.serial('sendMany of a batch 20 times the ring from another process: every message intact and in order', async (t) => {
  for (const mode of ['one-to-one', 'many-to-one'] as const) {
    const [ch, name] = fresh(t, `many-big-${mode}`, 4096, { mode })
    const per = 400
    const p = run(process.execPath, ['-e', `
      const { Channel } = require('.')
      function msg(seq, len) { const b = Buffer.alloc(len); b.writeUInt32LE(1, 0); b.writeUInt32LE(seq, 4); for (let k = 8; k < len; k++) b[k] = (7 + seq * 13 + k) & 255; return b }
      const ch = new Channel(process.argv[1])
      const all = Array.from({ length: ${per} }, (_, i) => msg(i, 8 + ((i * 37) % 300)))
      ch.sendMany(all.slice(0, 250), { timeout: 20000 })
      ch.sendMany(all.slice(250), { timeout: 20000 })
      ch.close()
    `, '--', name])
    const checker = new Checker()
    consume(ch, per, checker, (i) => i % 2)
    t.deepEqual(checker.errors, [], mode)
    t.is(checker.next.get(1), per)
    const exit = await p.exit
    t.is(exit.code, 0, exit.stderr)
    t.is(ch.tryReceive(), null)
  }
})

test.serial('send of the same Uint8Array again sends its current bytes; once its buffer is detached, ERR_INVALID_STATE', (t) => {
  const [ch, name] = fresh(t, 'same-u8', 1024, { mode: 'one-to-one' })
  const tx = new Channel(name)
  t.teardown(() => tx.close())
  const data = new Uint8Array(8).fill(1)
  tx.send(data)
  data.fill(2)
  tx.send(data)
  t.deepEqual([...ch.receive()!], Array(8).fill(1))
  t.deepEqual([...ch.receive()!], Array(8).fill(2))
  structuredClone(data.buffer, { transfer: [data.buffer] })
  t.is((t.throws(() => tx.send(data), { instanceOf: TypeError }) as NodeJS.ErrnoException).code, 'ERR_INVALID_STATE')
  t.is(ch.tryReceive(), null, 'a detached array sends no (empty) message')
})

test.serial('drainRange(fn): each message as (ring, offset, length) of one Uint8Array, in order, read in place', (t) => {
  const [ch, name] = fresh(t, 'drain-range', 1024)
  const tx = new Channel(name)
  const mem = new SharedMemory(name)
  t.teardown(() => (tx.close(), mem.close()))
  // A wrap on the way: 7 × 136-byte records, then padding, then more.
  for (let round = 0; round < 3; round++) {
    const sent = Array.from({ length: 5 }, (_, k) => Buffer.alloc(120 + k, 0x41 + round * 5 + k))
    tx.sendMany(sent)
    const rings: Uint8Array[] = []
    const got: Buffer[] = []
    t.is(
      ch.drainRange((ring, offset, length) => {
        rings.push(ring)
        got.push(Buffer.from(ring.subarray(offset, offset + length)))
      }),
      5,
    )
    t.deepEqual(got, sent, `round ${round}`)
    t.true(rings.every((r) => r === rings[0]), 'the same ring object for every message')
    t.is(rings[0]!.byteLength, 1024)
  }
  t.is(mem.atomicLoad(256), mem.atomicLoad(128), 'every record released')
  tx.send('abc')
  t.is(ch.drainRange((ring, offset, length) => t.is(Buffer.from(ring.subarray(offset, offset + length)).toString(), 'abc'), { max: 1 }), 1)
  t.is((t.throws(() => ch.drainRange(() => {}, { timeout: 20 })) as NodeJS.ErrnoException).code, 'ETIMEDOUT')
  ch.end()
  t.is(ch.drainRange(() => {}), null)
})

test.serial('bad input is a coded error, never a crash or a silent drop', (t) => {
  const [ch, name] = fresh(t, 'bad', 256)
  const code = (f: () => unknown, c: string, k: ErrorConstructor = Error) => t.is((t.throws(f, { instanceOf: k }) as NodeJS.ErrnoException).code, c)
  code(() => ch.send(123 as never), 'ERR_INVALID_ARG_TYPE', TypeError)
  code(() => ch.send(null as never), 'ERR_INVALID_ARG_TYPE', TypeError)
  code(() => ch.trySend({} as never), 'ERR_INVALID_ARG_TYPE', TypeError)
  code(() => ch.send('x', { timeout: -1 }), 'ERR_OUT_OF_RANGE', RangeError)
  code(() => ch.send('x', 5 as never), 'ERR_INVALID_ARG_TYPE', TypeError)
  code(() => ch.receive({ timeout: 'soon' as never }), 'ERR_INVALID_ARG_TYPE', TypeError)
  code(() => ch.receiveInto('nope' as never), 'ERR_INVALID_ARG_TYPE', TypeError)
  code(() => ch.claim(249), 'ERR_OUT_OF_RANGE', RangeError)
  code(() => ch.claim(-1), 'ERR_OUT_OF_RANGE', RangeError)
  code(() => ch.claim(1.5), 'ERR_OUT_OF_RANGE', RangeError)
  code(() => ch.commit(), 'ERR_SHM_CHANNEL_NO_CLAIM')
  code(() => ch.abort(), 'ERR_SHM_CHANNEL_NO_CLAIM')
  t.is(ch.tryReceive(), null, 'nothing half-sent')
  code(() => ch.receive({ timeout: 0 }), 'ETIMEDOUT')
  for (const capacity of [0, 255, 257, 1000, 2 ** 31, 1.5, NaN]) code(() => Channel.create(`${name}-x`, { capacity }), 'ERR_OUT_OF_RANGE', RangeError)
  code(() => Channel.create(`${name}-x`, { capacity: '1024' as never }), 'ERR_INVALID_ARG_TYPE', TypeError)
  code(() => Channel.create(`${name}-x`, { capacity: 1024, mode: 'many' as never }), 'ERR_INVALID_ARG_VALUE', TypeError)
  code(() => Channel.create(`${name}-x`, { capacity: 1024, recoveryMs: 0 }), 'ERR_OUT_OF_RANGE', RangeError)
  code(() => Channel.create(`${name}-x`, undefined as never), 'ERR_INVALID_ARG_TYPE', TypeError)
  t.false(SharedMemory.unlink(`${name}-x`), 'no segment was made by a refused create')
  code(() => Channel.create(name, { capacity: 256 }), 'EEXIST')
  code(() => new Channel(`${name}-missing`), 'ENOENT')
  const other = new Channel(name)
  other.close()
  other.close()
  code(() => other.send('x'), 'ERR_SHM_CLOSED')
  code(() => other.receive(), 'ERR_SHM_CLOSED')
  t.true(other.closed)
})

test.serial('attaching to a torn or foreign layout throws ERR_SHM_CHANNEL_LAYOUT', (t) => {
  const cases: [string, (m: SharedMemory) => void, number?][] = [
    ['zero magic (never initialised)', () => {}],
    ['foreign magic', (m) => m.atomicStore(0, 0x12345678)],
    ['unknown version', (m) => (m.atomicStore(0, 0x434d534e), m.atomicStore(4, 3), m.atomicStore(8, 256), m.atomicStore(16, 1000))],
    ['capacity not a power of two', (m) => (m.atomicStore(0, 0x434d534e), m.atomicStore(4, 2), m.atomicStore(8, 384), m.atomicStore(16, 1000))],
    ['segment smaller than the header says', (m) => (m.atomicStore(0, 0x434d534e), m.atomicStore(4, 2), m.atomicStore(8, 512), m.atomicStore(16, 1000))],
    ['unknown mode', (m) => (m.atomicStore(0, 0x434d534e), m.atomicStore(4, 2), m.atomicStore(8, 256), m.atomicStore(12, 2), m.atomicStore(16, 1000))],
    ['torn indices (tail − head > capacity)', (m) => (m.atomicStore(0, 0x434d534e), m.atomicStore(4, 2), m.atomicStore(8, 256), m.atomicStore(16, 1000), m.atomicStore(128, 264))],
    ['indices not a multiple of 8', (m) => (m.atomicStore(0, 0x434d534e), m.atomicStore(4, 2), m.atomicStore(8, 256), m.atomicStore(16, 1000), m.atomicStore(128, 4))],
    ['a layout version 1 channel', (m) => (m.atomicStore(0, 0x434d534e), m.atomicStore(4, 1), m.atomicStore(8, 256), m.atomicStore(16, 1000))],
  ]
  const messages: string[] = []
  for (const [what, set] of cases) {
    const name = uniqueName('ch-layout')
    const mem = SharedMemory.create(name, 1024 + 256)
    try {
      set(mem)
      const e = t.throws(() => new Channel(name), undefined, what) as NodeJS.ErrnoException
      t.is(e?.code, 'ERR_SHM_CHANNEL_LAYOUT', what)
      messages.push(e?.message)
    } finally {
      mem.close()
      SharedMemory.unlink(name)
    }
  }
  t.regex(messages.at(-1)!, /layout version 1 channel.*version 2 only/, 'a v1 segment is refused naming its version')
  // The boundary: the same header with valid values attaches.
  const name = uniqueName('ch-layout-ok')
  const mem = SharedMemory.create(name, 1024 + 256)
  for (const [o, v] of [[4, 2], [8, 256], [16, 1000], [128, 256], [0, 0x434d534e]]) mem.atomicStore(o, v)
  const ch = new Channel(name)
  t.is(ch.capacity, 256)
  t.false(ch.trySend('x'), 'tail − head = capacity: full')
  ch.close()
  mem.close()
  SharedMemory.unlink(name)
})

test.serial('a corrupt record state found while receiving is ERR_SHM_CHANNEL_LAYOUT, not garbage', (t) => {
  const [ch, name] = fresh(t, 'corrupt', 256)
  ch.send('ok')
  const mem = new SharedMemory(name)
  mem.atomicStore(1024, 7)
  t.is((t.throws(() => ch.receive()) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_LAYOUT')
  mem.close()
})

test.serial('in-place claim → commit, and abort publishes padding the consumer skips', (t) => {
  const [ch] = fresh(t, 'claim', 1024)
  const v = ch.claim(5)
  t.is(v.byteLength, 5)
  t.is((t.throws(() => ch.claim(3)) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_CLAIM_PENDING')
  t.is((t.throws(() => ch.send('x')) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_CLAIM_PENDING')
  v.set(Buffer.from('hello'))
  t.is(ch.tryReceive(), null, 'not visible before commit')
  ch.commit()
  ch.claim(100).fill(1)
  ch.abort()
  ch.tryClaim(3)!.set([7, 8, 9])
  ch.commit()
  t.is(Buffer.from(ch.receive()!).toString(), 'hello')
  t.deepEqual([...ch.receive()!], [7, 8, 9])
  t.is(ch.tryReceive(), null)
})

test.serial('end(): the consumer gets every committed message, then null; senders get ERR_SHM_CHANNEL_ENDED', async (t) => {
  const [ch, name] = fresh(t, 'end', 1024)
  const producer = new Channel(name)
  producer.send('a')
  await producer.sendAsync('b')
  producer.end()
  t.true(ch.ended)
  t.is((t.throws(() => producer.send('c')) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_ENDED')
  await t.throwsAsync(producer.sendAsync('c'), { code: 'ERR_SHM_CHANNEL_ENDED' })
  const got: string[] = []
  for await (const m of ch) got.push(Buffer.from(m).toString())
  t.deepEqual(got, ['a', 'b'])
  t.is(ch.receive(), null)
  t.is(await ch.receiveAsync(), null)
  producer.close()
})

test.serial('for await ends when the handle is closed while it waits; receiveAsync rejects ERR_SHM_CLOSED', async (t) => {
  const name = uniqueName('ch-close')
  const ch = Channel.create(name, { capacity: 1024 })
  t.teardown(() => Channel.unlink(name))
  const got: string[] = []
  setTimeout(() => ch.send('one'), 20)
  for await (const m of ch) {
    got.push(Buffer.from(m).toString())
    setTimeout(() => ch.close(), 30) // while the next iteration waits
  }
  t.deepEqual(got, ['one'])
  t.true(ch.closed)
  const ch2 = new Channel(name)
  const p = ch2.receiveAsync()
  setTimeout(() => ch2.close(), 30)
  await t.throwsAsync(p, { code: 'ERR_SHM_CLOSED' })
})

test.serial('sendAsync waits for room without blocking the event loop; receiveAsync for data', async (t) => {
  const [ch, name] = fresh(t, 'async', 256)
  const producer = new Channel(name)
  t.teardown(() => producer.close())
  for (let i = 0; i < 4; i++) producer.send(Buffer.alloc(48, i))
  let settled = false
  const sent = producer.sendAsync(Buffer.alloc(48, 9), { timeout: 5000 })
  sent.then(() => (settled = true), () => (settled = true))
  // Three timers fire while sendAsync waits (a blocking wait would only return after its
  // 5 s timeout, settled): no tick count, which would depend on the machine's load.
  for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 5))
  t.false(settled, 'the event loop ran timers while sendAsync was still waiting for room')
  t.deepEqual([...ch.receive()!.subarray(0, 1)], [0])
  await sent
  for (const i of [1, 2, 3, 9]) t.is((await ch.receiveAsync({ timeout: 5000 }))![0], i)
  await t.throwsAsync(ch.receiveAsync({ timeout: 20 }), { code: 'ETIMEDOUT' })
})

test.serial('one-to-one: a message of exactly maxMessageLength fits an empty ring, also after the wrap', (t) => {
  const [ch] = fresh(t, 'o2o-max', 256, { mode: 'one-to-one' })
  const max = Buffer.alloc(ch.maxMessageLength, 0x5a)
  t.true(ch.trySend(max), 'index 0, empty ring: the record takes the whole ring')
  t.deepEqual(Buffer.from(ch.receive()!), max)
  ch.send('x') // tail at 16
  t.deepEqual(Buffer.from(ch.receive()!), Buffer.from('x'))
  t.false(ch.trySend(max), 'padding to the end is published first; the consumer has not passed it')
  t.is(ch.tryReceive(), null, 'padding only')
  t.true(ch.trySend(max))
  t.deepEqual(Buffer.from(ch.receive()!), max)
})

test.serial('end() races: a claim made before the end is delivered, a send after it is refused, on both modes', async (t) => {
  for (const mode of ['one-to-one', 'many-to-one'] as const) {
    const [ch, name] = fresh(t, `end-race-${mode}`, 1024, { mode })
    const producer = new Channel(name)
    t.teardown(() => producer.close())
    producer.claim(5).set(Buffer.from('first'))
    ch.end() // the consumer ends the channel while the claim is pending …
    const got = ch.receiveAsync({ timeout: 5000 }) // … and drains: it must wait for the claim
    await new Promise((r) => setTimeout(r, 20))
    producer.commit()
    t.is(Buffer.from((await got)!).toString(), 'first', `${mode}: a claim published before the end is delivered`)
    t.is(ch.receive({ timeout: 1000 }), null)
    t.is((t.throws(() => producer.send('late')) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_ENDED')
    t.is(ch.tryReceive(), null)
  }
})

test.serial('two receiveAsync pending on one handle each get a different message', async (t) => {
  const [ch, name] = fresh(t, 'two-async', 1024)
  const producer = new Channel(name)
  t.teardown(() => producer.close())
  for (let round = 0; round < 20; round++) {
    const a = ch.receiveAsync({ timeout: 5000 })
    const b = ch.receiveAsync({ timeout: 5000 })
    await new Promise((r) => setTimeout(r, 5))
    producer.send(`m${round}a`)
    producer.send(`m${round}b`)
    const got = (await Promise.all([a, b])).map((m) => Buffer.from(m!).toString())
    t.deepEqual(got.sort(), [`m${round}a`, `m${round}b`], `round ${round}`)
    t.is(ch.tryReceive(), null)
  }
  // Messages already queued when both calls start in the same tick.
  producer.send('q1')
  producer.send('q2')
  const both = await Promise.all([ch.receiveAsync({ timeout: 5000 }), ch.receiveAsync({ timeout: 5000 })])
  t.deepEqual(both.map((m) => Buffer.from(m!).toString()), ['q1', 'q2'])
  t.is(ch.tryReceive(), null)
})

test.serial('a second consumer handle in the same process is refused, and closing it leaves the first one registered', (t) => {
  const [ch, name] = fresh(t, 'two-consumers', 1024)
  ch.send('m1')
  ch.send('m2')
  t.is(Buffer.from(ch.receive()!).toString(), 'm1') // ch is the consumer
  const second = new Channel(name)
  const e = t.throws(() => second.tryReceive()) as NodeJS.ErrnoException
  t.is(e.code, 'ERR_SHM_CHANNEL_BUSY')
  t.regex(e.message, /already has a live consumer/)
  second.close()
  t.is(Buffer.from(ch.receive({ timeout: 1000 })!).toString(), 'm2', 'the first consumer keeps its registration and its head')
  ch.send('m3')
  const third = new Channel(name)
  t.is((t.throws(() => third.receive({ timeout: 0 })) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_BUSY')
  ch.close()
  t.is(Buffer.from(third.receive({ timeout: 1000 })!).toString(), 'm3', 'once the first closes, another handle takes over')
  third.close()
})

test.serial('a consumer in a worker thread: the main thread is refused while it lives, and takes over once it is terminated', async (t) => {
  const [ch, name] = fresh(t, 'worker-consumer', 1024)
  const { Worker } = await import('node:worker_threads')
  const w = new Worker(
    `const { Channel } = require(${JSON.stringify(ROOT)}); const { parentPort, workerData } = require('node:worker_threads')
     const ch = new Channel(workerData); ch.tryReceive(); parentPort.postMessage('consumer'); setInterval(() => {}, 1000)`,
    { eval: true, workerData: name },
  )
  await new Promise((r) => w.once('message', r))
  t.is((t.throws(() => ch.tryReceive()) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_BUSY')
  await w.terminate() // without close(): the worker's lock file goes with its environment
  ch.send('mine now')
  t.is(Buffer.from(ch.receive({ timeout: 2000 })!).toString(), 'mine now')
})

test.serial('sendAsync takes the length once there is room: a resizable source that grew, a detached one', async (t) => {
  const [ch, name] = fresh(t, 'async-source', 256)
  const producer = new Channel(name)
  t.teardown(() => producer.close())
  const fill = () => {
    while (producer.trySend(Buffer.alloc(48, 1)));
  }
  fill()
  const rab = new (ArrayBuffer as unknown as new (n: number, o: object) => ArrayBuffer & { resize(n: number): void })(8, { maxByteLength: 64 })
  const tracking = new Uint8Array(rab) // length-tracking
  const sent = producer.sendAsync(tracking, { timeout: 5000 })
  rab.resize(40)
  tracking.fill(7)
  while (ch.tryReceive() !== null);
  await sent
  producer.send('next')
  const m = ch.receive({ timeout: 1000 })!
  t.deepEqual(Buffer.from(m), Buffer.alloc(40, 7), 'the bytes and length as they were when there was room')
  t.is(Buffer.from(ch.receive({ timeout: 1000 })!).toString(), 'next', 'the next record is intact')

  fill()
  const ab = new ArrayBuffer(16)
  const detachedSend = producer.sendAsync(new Uint8Array(ab), { timeout: 5000 })
  structuredClone(ab, { transfer: [ab] })
  while (ch.tryReceive() !== null);
  const e = await t.throwsAsync(detachedSend)
  t.is((e as NodeJS.ErrnoException).code, 'ERR_INVALID_STATE')
  producer.send('after', { timeout: 1000 })
  t.is(Buffer.from(ch.receive({ timeout: 1000 })!).toString(), 'after', 'no claim left pending: the channel goes on')
})

test.serial('garbage from a peer: bounded work, no allocation beyond capacity, ERR_SHM_CHANNEL_LAYOUT', (t) => {
  const layout = (f: () => unknown, what: string) => {
    const t0 = performance.now()
    const e = t.throws(f, undefined, what) as NodeJS.ErrnoException
    t.is(e?.code, 'ERR_SHM_CHANNEL_LAYOUT', `${what}: ${e?.message}`)
    t.true(performance.now() - t0 < 1000, `${what}: returned after bounded work`)
  }
  const cases: [string, (m: SharedMemory) => void][] = [
    ['padding of length 0xFFFFFFF8 (wraps an int32 size)', (m) => (m.atomicStore(1024 + 4, 0xfffffff8 | 0), m.atomicStore(1024, 2), m.atomicStore(128, 16))],
    ['padding of length 0xFFFFFFF1', (m) => (m.atomicStore(1024 + 4, 0xfffffff1 | 0), m.atomicStore(1024, 2), m.atomicStore(128, 16))],
    ['a message of length 2^31', (m) => (m.atomicStore(1024 + 4, 0x80000000 | 0), m.atomicStore(1024, 1), m.atomicStore(128, 16))],
    ['a message longer than the span to tail', (m) => (m.atomicStore(1024 + 4, 100), m.atomicStore(1024, 1), m.atomicStore(128, 16))],
    ['tail − head = 2^32 − 8', (m) => m.atomicStore(128, -8)],
    ['tail − head not a multiple of 8', (m) => m.atomicStore(128, 12)],
  ]
  for (const [what, set] of cases) {
    for (const call of ['tryReceive', 'receive', 'receiveInto'] as const) {
      const name = uniqueName('ch-garbage')
      const ch = Channel.create(name, { capacity: 256 })
      const mem = new SharedMemory(name)
      try {
        set(mem)
        if (call === 'tryReceive') layout(() => ch.tryReceive(), `${what} (${call})`)
        else if (call === 'receive') layout(() => ch.receive({ timeout: 200 }), `${what} (${call})`)
        else layout(() => ch.receiveInto(new Uint8Array(8), { timeout: 200 }), `${what} (${call})`)
      } finally {
        mem.close()
        ch.close()
        Channel.unlink(name)
      }
    }
  }
  // Producers read head: garbage there is a layout error too, not a wrapped free space.
  {
    const [ch, name] = fresh(t, 'garbage-head', 256)
    const mem = new SharedMemory(name)
    mem.atomicStore(256, 0x40000000)
    layout(() => ch.trySend('x'), 'head far from tail (trySend)')
    layout(() => ch.send('x', { timeout: 200 }), 'head far from tail (send)')
    mem.close()
  }
  // 8-byte padding records filling a big ring: each try* call passes a bounded number of them.
  {
    const [ch, name] = fresh(t, 'garbage-pads', 1 << 20)
    const mem = new SharedMemory(name)
    for (let i = 0; i < 1 << 20; i += 8) (mem.atomicStore(1024 + i + 4, 0), mem.atomicStore(1024 + i, 2))
    mem.atomicStore(128, 1 << 20)
    let calls = 0
    while (mem.atomicLoad(256) !== 1 << 20 && calls < 1000) {
      t.is(ch.tryReceive(), null)
      calls++
    }
    t.is(calls, (1 << 20) / 8 / 4096, 'exactly 4096 padding records per call')
    ch.send('through')
    t.is(Buffer.from(ch.receive({ timeout: 1000 })!).toString(), 'through')
    mem.close()
  }
})

test.serial('garbage in producerLock: a dead or invalid holder is taken over, a live one bounds trySend and send({ timeout })', (t) => {
  const [ch, name] = fresh(t, 'garbage-lock', 1024)
  const mem = new SharedMemory(name)
  for (const junk of [-1, 0x7fffffff, 1, -0x80000000]) {
    mem.atomicStore(132, junk)
    t.true(ch.trySend(`after ${junk}`), `producerLock = ${junk} (no live participant): taken over`)
    t.is(Buffer.from(ch.receive()!).toString(), `after ${junk}`)
  }
  // A live participant's token in the lock (as if it stopped inside the claim step).
  const holder = new Channel(name)
  holder.send('h') // holder now has a token; its lock file is locked
  t.is(Buffer.from(ch.receive()!).toString(), 'h')
  const token = (() => {
    // The token is visible in the record state of a pending claim.
    holder.claim(1)
    const at = (mem.atomicLoad(128) - 16) & 1023
    const s = mem.atomicLoad(1024 + at)
    holder.abort()
    return -s
  })()
  t.true(token > 0)
  mem.atomicStore(132, token)
  let t0 = performance.now()
  t.false(ch.trySend('x'), 'trySend gives up on a lock held by a live participant')
  t.true(performance.now() - t0 < 1000, 'after bounded time')
  t0 = performance.now()
  t.is((t.throws(() => ch.send('x', { timeout: 150 })) as NodeJS.ErrnoException).code, 'ETIMEDOUT')
  t.true(performance.now() - t0 < 1500, 'send returns by its timeout')
  holder.close()
  t.true(ch.trySend('y'), 'its holder closed (lock file gone): taken over')
  mem.close()
})

test.serial('state −2^31 at head (a claim by no possible participant) is recovered, not a crash', (t) => {
  const [ch, name] = fresh(t, 'garbage-state', 1024, { recoveryMs: 20 })
  const mem = new SharedMemory(name)
  mem.atomicStore(1024 + 4, 8)
  mem.atomicStore(1024, -0x80000000)
  mem.atomicStore(128, 16)
  mem.close()
  ch.send('next')
  t.is(Buffer.from(ch.receive({ timeout: 2000 })!).toString(), 'next')
})

// ---- several processes ------------------------------------------------------------------------

test.serial('a second live consumer, or a second one-to-one producer, is refused with ERR_SHM_CHANNEL_BUSY; a dead one is taken over', async (t) => {
  const [ch, name] = fresh(t, 'busy', 1024, { mode: 'one-to-one' })
  t.is(ch.mode, 'one-to-one')
  ch.send('mine') // this process is now the one producer
  t.is(ch.tryReceive()!.length, 4) // and the consumer
  const other = await run(process.execPath, ['-e', `
    const { Channel } = require('.')
    const ch = new Channel(process.argv[1])
    for (const f of [() => ch.send('x'), () => ch.receive({ timeout: 0 })]) { try { f(); console.log('ok') } catch (e) { console.log(e.code) } }
  `, '--', name]).exit
  t.is(other.stdout.trim(), 'ERR_SHM_CHANNEL_BUSY\nERR_SHM_CHANNEL_BUSY', other.stderr)
  // Roles held by a process that has died are taken over (docs/channel.md §6).
  const mem = new SharedMemory(name)
  const dead = (await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).exit).stdout
  mem.atomicStore(132, Number(dead)) // producerLock
  mem.atomicStore(260, Number(dead)) // consumerPid
  mem.close()
  const taker = await run(process.execPath, ['-e', `
    const { Channel } = require('.')
    const ch = new Channel(process.argv[1])
    ch.send('x'); console.log(Buffer.from(ch.receive({ timeout: 1000 })).toString())
  `, '--', name]).exit
  t.is(taker.stdout.trim(), 'x', taker.stderr)
})

test.serial('many-to-one: a dead holder of the claim lock is taken over', async (t) => {
  const [ch, name] = fresh(t, 'deadlock', 1024)
  const dead = Number((await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).exit).stdout)
  const mem = new SharedMemory(name)
  mem.atomicStore(132, dead)
  mem.close()
  ch.send('through', { timeout: 5000 })
  t.is(Buffer.from(ch.receive()!).toString(), 'through')
})

const CLAIMER = `
const { Channel } = require('.')
const ch = new Channel(process.argv[1])
ch.send('before')
ch.claim(100).fill(1)
console.log('claimed')
process.stdin.on('data', () => { ch.commit(); console.log('committed'); process.exit(0) })
`

test.serial('kill -9 between claim and commit: after recoveryMs the consumer skips the dead record and goes on', async (t) => {
  const [ch, name] = fresh(t, 'kill9', 1024, { recoveryMs: 100 })
  const claimer = run(process.execPath, ['-e', CLAIMER, '--', name], 'pipe')
  await claimer.line('claimed')
  claimer.child.kill('SIGKILL')
  t.is((await claimer.exit).signal, 'SIGKILL')
  ch.send('after')
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'before')
  const t0 = Date.now()
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'after', 'the 100 bytes of the dead claim are never delivered')
  t.true(Date.now() - t0 >= 95, 'not skipped before recoveryMs')
  t.is(ch.tryReceive(), null)
  // And the ring keeps working across the wrap.
  for (let i = 0; i < 100; i++) {
    ch.send(Buffer.alloc(40, i), { timeout: 1000 })
    t.is(ch.receive({ timeout: 1000 })![0], i)
  }
})

test.serial('a live producer\'s uncommitted record is never skipped, however old', async (t) => {
  const [ch, name] = fresh(t, 'slow', 1024, { recoveryMs: 50 })
  const claimer = run(process.execPath, ['-e', CLAIMER, '--', name], 'pipe')
  await claimer.line('claimed')
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'before')
  ch.send('after')
  t.is((t.throws(() => ch.receive({ timeout: 300 })) as NodeJS.ErrnoException).code, 'ETIMEDOUT')
  claimer.child.stdin!.write('go\n')
  await claimer.line('committed')
  const m = ch.receive({ timeout: 5000 })!
  t.deepEqual(Buffer.from(m), Buffer.alloc(100, 1))
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'after')
  t.is((await claimer.exit).code, 0)
})

/** A Node process that opens the channel, waits `delay` ms, runs `action` (JS with `ch`), prints 'done', then lingers `linger` ms. */
function later(name: string, delay: number, action: string, linger = 0) {
  return run(process.execPath, ['-e', `
    const { Channel } = require('.')
    const ch = new Channel(process.argv[1])
    console.log('open')
    setTimeout(() => { ${action}; console.log('done'); setTimeout(() => ch.close(), ${linger}) }, ${delay})
  `, '--', name])
}

test.serial('a consumer asleep in receive() is woken by the padding a producer publishes at the wrap', async (t) => {
  const [ch, name] = fresh(t, 'wrap-wake', 256)
  ch.send(Buffer.alloc(192)) // 200-byte record: tail at 200
  t.is(ch.receive()!.length, 192) // head at 200
  // 200 bytes need a 208-byte record: after the 56 bytes of padding at 200…256 only 200 are
  // free, so the producer waits until the consumer has passed the padding.
  const p = later(name, 200, `ch.send(Buffer.alloc(200, 9), { timeout: 5000 })`)
  await p.line('open')
  const t0 = Date.now()
  const m = ch.receive({ timeout: 3000 })
  t.is(m?.length, 200)
  t.true(Date.now() - t0 < 2000, `arrived ${Date.now() - t0} ms after the consumer went to sleep (a lost wake-up waits for the timeout)`)
  t.is((await p.exit).code, 0)
})

test.serial('end() from another process wakes a consumer asleep in receive(): null at once', async (t) => {
  const [ch, name] = fresh(t, 'end-wake', 1024)
  ch.tryReceive() // register as the consumer
  const p = later(name, 200, 'ch.end()', 2500)
  await p.line('open')
  const t0 = Date.now()
  t.is(ch.receive({ timeout: 3000 }), null)
  t.true(Date.now() - t0 < 1500, `null ${Date.now() - t0} ms after sleeping (the ending peer stays open 2.5 s more)`)
  await p.exit
})

test.serial('a negative consumerSleepers written by a peer costs latency, never a hang', async (t) => {
  const [ch, name] = fresh(t, 'neg-sleepers', 1024)
  ch.tryReceive()
  const mem = new SharedMemory(name)
  mem.atomicStore(388, -5) // producers now see no sleeper and never wake the consumer
  const p = later(name, 200, `ch.send('woke')`)
  await p.line('open')
  const t0 = Date.now()
  t.is(Buffer.from(ch.receive({ timeout: 3000 })!).toString(), 'woke')
  t.true(Date.now() - t0 < 2000, `received after ${Date.now() - t0} ms`)
  mem.close()
  await p.exit
})

test.serial('Python and Rust peers: garbage lengths and indices are a layout error, not a hang', async (t) => {
  for (const [lang, ok, cmd, args] of [
    ['python', peers.python, PYTHON, [PY_PEER, 'consume']],
    ['rust', peers.rust, RUST_PEER, ['consume']],
  ] as const) {
    if (!ok) continue
    for (const [what, set] of [
      ['padding of length −8', (m: SharedMemory) => (m.atomicStore(1024 + 4, -8), m.atomicStore(1024, 2), m.atomicStore(128, 16))],
      ['a message of length 2^31', (m: SharedMemory) => (m.atomicStore(1024 + 4, -0x80000000), m.atomicStore(1024, 1), m.atomicStore(128, 16))],
      ['tail − head = 2^32 − 8', (m: SharedMemory) => (m.atomicStore(1024, 1), m.atomicStore(128, -8))],
    ] as const) {
      const name = uniqueName(`ch-garbage-${lang}`)
      const ch = Channel.create(name, { capacity: 256 })
      const mem = new SharedMemory(name)
      try {
        ch.send(testMessage(1, 0, 16)) // received first: the peer is asleep when the garbage comes
        const c = run(cmd, [...args, name, '2'])
        await new Promise((r) => setTimeout(r, 300))
        set(mem)
        mem.atomicAdd(384, 1) // and wake it, as a commit would
        mem.notify(384)
        const timer = setTimeout(() => c.child.kill('SIGKILL'), 10_000)
        const e = await c.exit
        clearTimeout(timer)
        t.is(e.signal, null, `${lang}, ${what}: exited by itself`)
        t.not(e.code, 0, `${lang}, ${what}`)
        t.regex(e.stderr, /LAYOUT|not a usable/, `${lang}, ${what}: ${e.stderr.slice(-300)}`)
      } finally {
        mem.close()
        ch.close()
        Channel.unlink(name)
      }
    }
  }
  t.pass()
})

test.serial('end() while a producer process sends flat out: every send that returned is received, none after null', async (t) => {
  let hits = 0
  for (let round = 0; round < 24; round++) {
    const mode = round % 2 ? 'one-to-one' : 'many-to-one'
    const name = uniqueName('ch-end-flat')
    const ch = Channel.create(name, { capacity: 4096, mode })
    try {
      const p = run(process.execPath, ['-e', `
        const { Channel } = require('.')
        const ch = new Channel(process.argv[1])
        const m = Buffer.alloc(8)
        let sent = 0
        console.log('go')
        try { for (;;) if (ch.trySend(m)) sent++ } catch (e) { if (e.code !== 'ERR_SHM_CHANNEL_ENDED') throw e }
        process.stdout.write('sent ' + sent)
      `, '--', name])
      let received = 0
      await p.line('go')
      const until = performance.now() + 5 + (round % 6) * 3
      while (performance.now() < until) if (ch.tryReceive() !== null) received++
      ch.end()
      while (ch.receive({ timeout: 5000 }) !== null) received++
      const e = await p.exit
      t.is(e.code, 0, e.stderr)
      const sent = Number(/sent (\d+)/.exec(e.stdout)?.[1])
      if (sent !== received) hits++
      t.is(received, sent, `round ${round} (${mode})`)
      t.is(ch.receive({ timeout: 0 }), null)
    } finally {
      ch.close()
      Channel.unlink(name)
    }
  }
  t.is(hits, 0)
})

/** Whether producers can run in their own PID namespace here (root, util-linux unshare). */
function canUnshare(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' })
  return !r.error && r.status === 0
}

/** The host PID of the one child of `pid` (the process `unshare --fork` started). */
async function childOf(pid: number): Promise<number> {
  for (let k = 0; k < 100; k++) {
    const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
    const found = Number(r.stdout.trim().split('\n')[0])
    if (found > 0) return found
    await new Promise((res) => setTimeout(res, 20))
  }
  throw new Error(`no child of ${pid}`)
}

test.serial('producers in other PID namespaces (containers sharing /dev/shm): a live or stopped one is waited for, a killed one is recovered', async (t) => {
  if (!canUnshare()) {
    if (!skip('channel container test', 'root and unshare --pid', 'docs/channel.md §6')) t.fail('CI=true: the container test must run')
    else t.pass()
    return
  }
  const [ch, name] = fresh(t, 'pidns', 1024, { recoveryMs: 50 })
  const inNamespace = (script: string) => run('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, '-e', script, '--', name], 'pipe')
  // Every producer below is PID 1 in its own namespace: PIDs would say nothing here.
  const a = inNamespace(CLAIMER + `;console.log('pid ' + process.pid)`)
  await a.line('claimed')
  await a.line('pid 1')
  const aHost = await childOf(a.child.pid!)
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'before')
  ch.send('after')
  t.is((t.throws(() => ch.receive({ timeout: 300 })) as NodeJS.ErrnoException).code, 'ETIMEDOUT', 'a live claim is never skipped')
  process.kill(aHost, 'SIGSTOP')
  t.is((t.throws(() => ch.receive({ timeout: 300 })) as NodeJS.ErrnoException).code, 'ETIMEDOUT', 'a stopped producer blocks, never corrupts')
  // A second producer in another namespace, also PID 1, takes the claim lock meanwhile.
  const b = inNamespace(`const { Channel } = require('.'); const ch = new Channel(process.argv[1]); ch.send('from b', { timeout: 5000 }); console.log('sent ' + process.pid)`)
  t.is((await b.exit).code, 0)
  process.kill(aHost, 'SIGCONT')
  a.child.stdin!.write('go\n')
  await a.line('committed')
  t.deepEqual(Buffer.from(ch.receive({ timeout: 5000 })!), Buffer.alloc(100, 1))
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'after')
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'from b')
  // Killed mid-claim: its lock file is unlocked, so the consumer skips it after recoveryMs.
  const c = inNamespace(CLAIMER)
  await c.line('claimed')
  process.kill(await childOf(c.child.pid!), 'SIGKILL')
  await c.exit
  ch.send('after kill')
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'before')
  t.is(Buffer.from(ch.receive({ timeout: 5000 })!).toString(), 'after kill', 'the dead claim is skipped')
  t.is(ch.tryReceive(), null)
})

test.serial('8 producer processes (Node, Python, Rust) into one consumer: nothing lost, duplicated or reordered', async (t) => {
  const [ch, name] = fresh(t, 'stress', 4096)
  const per = 3000
  const procs = [1, 2, 3, 4, 5, 6].map((id) => nodeProducer(name, id, Array.from({ length: per }, (_, i) => [['send', 'claim', 'try', 'view'][i % 4], 8 + ((i * 37) % 200)] as [string, number])))
  const foreign = [
    peers.python ? run(PYTHON, [PY_PEER, 'produce', name, '7', String(per), '8', '200']) : nodeProducer(name, 7, Array.from({ length: per }, (_, i) => ['send', 8 + (i % 50)] as [string, number])),
    peers.rust ? run(RUST_PEER, ['produce', name, '8', String(per), '8', '200']) : nodeProducer(name, 8, Array.from({ length: per }, (_, i) => ['send', 8 + (i % 50)] as [string, number])),
  ]
  const checker = new Checker()
  // The last messages with a blocking receive: a lost wake-up then shows as latency.
  consume(ch, 8 * per, checker, (i) => (i >= 8 * per - 16 ? 0 : i % 3))
  const exits = await Promise.all([...procs, ...foreign].map((p) => p.exit))
  for (const e of exits) t.is(e.code, 0, e.stderr)
  exits.forEach((e, k) => {
    const sentAt = lastCommit(e.stdout)
    const got = checker.at.get(k + 1)
    t.true(sentAt !== undefined && got !== undefined && got - sentAt <= LAST_MESSAGE_MS, `producer ${k + 1}: last message ${got! - sentAt!} ms after its commit`)
  })
  t.deepEqual(checker.errors, [])
  t.deepEqual([...checker.next.entries()].sort((a, b) => a[0] - b[0]), [1, 2, 3, 4, 5, 6, 7, 8].map((id) => [id, per]))
  t.is(ch.tryReceive(), null, 'nothing extra')
})

/** A model run that has not finished by then fails, with its seed (never an ava timeout). */
const MODEL_RUN_MS = 30_000
/**
 * Upper bound from a producer's last commit to the consumer's receipt of that message. Nominally
 * microseconds; the consumer's blocking receives time out only after 5 s, so a lost wake-up
 * (the consumer asleep while the last message waits) exceeds it instead of merely slowing down.
 */
const LAST_MESSAGE_MS = 2_000
/** The time (Date.now()) of a producer's last commit, from its output ("N T" or JSON with "last"). */
function lastCommit(stdout: string): number | undefined {
  const m = /^\d+ (\d+)$/.exec(stdout.trim()) ?? /"last_ms": (\d+)/.exec(stdout)
  return m ? Number(m[1]) : undefined
}

test.serial('model: random operation sequences from several producer processes and one consumer', async (t) => {
  const kinds = ['send', 'try', 'async', 'claim', 'view', 'abort'] as const
  const producer = fc.record({
    lang: fc.constantFrom('node', 'node', 'python', 'rust'),
    ops: fc.array(fc.tuple(fc.constantFrom(...kinds), fc.integer({ min: 8, max: 240 })), { minLength: 1, maxLength: 150 }),
  })
  // A failure reports at once (no shrinking: each step would re-run processes), with the seed.
  const seed = process.env.CHANNEL_MODEL_SEED ? Number(process.env.CHANNEL_MODEL_SEED) : (Math.random() * 2 ** 31) | 0
  t.log(`fast-check seed ${seed} (reproduce with CHANNEL_MODEL_SEED=${seed})`)
  let runs = 0
  const property = fc.asyncProperty(
    fc.constantFrom(256, 512, 4096),
    fc.constantFrom('many-to-one', 'one-to-one'),
    fc.array(producer, { minLength: 1, maxLength: 3 }),
    fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 20 }),
    async (capacity, mode, producers, consumerOps) => {
      runs++
      if (mode === 'one-to-one') producers = producers.slice(0, 1)
      const name = uniqueName('ch-model')
      const ch = Channel.create(name, { capacity, mode: mode as 'many-to-one' })
      let procs: ReturnType<typeof run>[] = []
      try {
        let expected = 0
        procs = producers.map(({ lang, ops }, i) => {
          const id = i + 1
          const sent = ops.filter(([k]) => k !== 'abort')
          if (lang === 'python' && peers.python) {
            expected += ops.length
            return run(PYTHON, [PY_PEER, 'produce', name, String(id), String(ops.length), '8', '240'])
          }
          if (lang === 'rust' && peers.rust) {
            expected += ops.length
            return run(RUST_PEER, ['produce', name, String(id), String(ops.length), '8', '240'])
          }
          expected += sent.length
          return nodeProducer(name, id, ops)
        })
        const checker = new Checker()
        const receivedAt = new Map<number, number>()
        let received = 0
        let exited = 0
        for (const p of procs) void p.exit.then(() => exited++)
        const take = (m: Uint8Array) => {
          checker.add(m)
          if (m.byteLength >= 4) receivedAt.set(Buffer.from(m.buffer, m.byteOffset, 4).readUInt32LE(0), Date.now())
          received++
        }
        const scratch = new Uint8Array(capacity)
        const started = Date.now()
        // Drain until every producer has exited, not just until the last message: a producer
        // whose last operations are aborts may need room that only a pass over its padding frees.
        for (let k = 0; ; k++) {
          if (Date.now() - started > MODEL_RUN_MS) {
            throw new Error(`not done after ${MODEL_RUN_MS} ms: ${received} of ${expected} messages received, ${procs.length - exited} of ${procs.length} producers running`)
          }
          if (received >= expected) {
            const m = ch.tryReceive() // passes padding; anything more is a message too many
            if (m !== null) take(m)
            else if (exited === procs.length) break
            else await new Promise((r) => setTimeout(r, 1))
            continue
          }
          const op = consumerOps[k % consumerOps.length]
          try {
            if (op === 3) {
              const m = await ch.receiveAsync({ timeout: 5000 })
              if (m === null) throw new Error('ended')
              take(m)
            } else if (op === 1) {
              const n = ch.receiveInto(scratch, { timeout: 5000 })
              if (n === null) throw new Error('ended')
              take(scratch.subarray(0, n))
            } else if (op === 0) {
              const m = ch.receive({ timeout: 5000 })
              if (m === null) throw new Error('ended')
              take(m)
            } else {
              const m = ch.tryReceive()
              if (m === null) await new Promise((r) => setImmediate(r))
              else take(m)
            }
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw e
            const done = exited === procs.length
            await new Promise((r) => setTimeout(r, 1))
            if (done) throw new Error(`every producer has exited; ${expected - received} of ${expected} messages missing`)
          }
        }
        const exits = await Promise.all(procs.map((p) => p.exit))
        const failed = exits.filter((e) => e.code !== 0)
        if (failed.length) throw new Error(`a producer failed: ${failed.map((e) => e.stderr).join('\n')}`)
        if (checker.errors.length) throw new Error(checker.errors.slice(0, 5).join('\n'))
        if (received !== expected) throw new Error(`${received} messages received, ${expected} sent`)
        exits.forEach((e, i) => {
          const sentAt = lastCommit(e.stdout)
          const got = receivedAt.get(i + 1)
          if (sentAt !== undefined && got !== undefined && got - sentAt > LAST_MESSAGE_MS) {
            throw new Error(`producer ${i + 1}'s last message arrived ${got - sentAt} ms after its commit (a lost wake-up?)`)
          }
        })
      } finally {
        for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
        ch.close()
        Channel.unlink(name)
      }
    },
  )
  try {
    await fc.assert(property, { numRuns: 8, seed, endOnFailure: true })
  } catch (e) {
    ;(e as Error).message = `CHANNEL_MODEL_SEED=${seed}: ${(e as Error).message}`
    throw e
  }
  t.is(runs, 8)
})

test.serial('Node → Python and Node → Rust consumers: every message arrives intact and in order', async (t) => {
  for (const [lang, ok, cmd, args] of [
    ['python', peers.python, PYTHON, [PY_PEER, 'consume']],
    ['rust', peers.rust, RUST_PEER, ['consume']],
  ] as const) {
    if (!ok) continue
    for (const mode of ['many-to-one', 'one-to-one'] as const) {
      const name = uniqueName(`ch-to-${lang}`)
      const ch = Channel.create(name, { capacity: 1024, mode })
      try {
        const count = 2000
        const consumer = run(cmd, [...args, name, String(count)])
        for (let i = 0; i < count; i++) {
          const m = testMessage(9, i, 8 + ((i * 53) % 300))
          if (i % 2) ch.send(m, { timeout: 20_000 })
          else {
            ch.claim(m.length, { timeout: 20_000 }).set(m)
            ch.commit()
          }
        }
        const e = await consumer.exit
        t.is(e.code, 0, e.stderr)
        t.deepEqual(JSON.parse(e.stdout), { received: count, bad: 0, last: { 9: count - 1 } }, `${lang}, ${mode}`)
      } finally {
        ch.close()
        Channel.unlink(name)
      }
    }
  }
  t.pass()
})

// ---- issue 18: hostile lock files, patched getters, out-of-bounds views ------------------------

const FIFO_PROBE = `
const { Channel, SharedMemory } = require('.')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const name = process.argv[1], T = 0x5a5a5a5, fifo = '/dev/shm/' + name + '.p' + T
const ch = Channel.create(name, { capacity: 1024, recoveryMs: 20 })
const mem = new SharedMemory(name)
execFileSync('mkfifo', [fifo])
mem.atomicStore(132, T) // producerLock: the token whose "lock file" is a FIFO
const sent = ch.trySend('a')
ch.receive()
mem.atomicStore(1024 + 4 + 16, 8) // a record at head claimed by that token
mem.atomicStore(1024 + 16, -T)
mem.atomicStore(128, 32)
ch.send('b')
let got = null
for (const until = Date.now() + 3000; got === null && Date.now() < until; ) got = ch.tryReceive()
mem.close(); ch.close()
const unlinked = Channel.unlink(name)
const fifoLeft = fs.existsSync(fifo)
fs.rmSync(fifo, { force: true })
console.log(JSON.stringify({ sent, got: got && Buffer.from(got).toString(), unlinked, fifoLeft }))
`

test.serial('a FIFO planted as a token\'s lock file is a dead participant: trySend, tryReceive and Channel.unlink return', (t) => {
  const name = uniqueName('ch-fifo')
  const r = spawnSync(process.execPath, ['-e', FIFO_PROBE, '--', name], { cwd: ROOT, encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL' })
  spawnSync('rm', ['-f', `/dev/shm/${name}`, `/dev/shm/${name}.p${0x5a5a5a5}`])
  t.is(r.signal, null, `the probe hung (killed after 15 s): ${r.stderr}`)
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { sent: true, got: 'b', unlinked: true, fifoLeft: true })
})

test.serial('Channel.unlink leaves a segment named <name>.p1 (not a lock file) alone', (t) => {
  const name = uniqueName('ch-collateral')
  Channel.create(name, { capacity: 256 }).close()
  const other = SharedMemory.create(`${name}.p1`, 64)
  other.atomicStore(0, 42)
  other.close()
  t.true(Channel.unlink(name))
  const again = new SharedMemory(`${name}.p1`)
  t.is(again.atomicLoad(0), 42)
  again.close()
  SharedMemory.unlink(`${name}.p1`)
})

test.serial('lock files are mode 0644 whatever the umask (a peer of another uid must open them)', (t) => {
  const name = uniqueName('ch-umask')
  const script = `
    process.umask(0o077)
    const { Channel } = require('.')
    const fs = require('node:fs')
    const name = process.argv[1]
    const ch = Channel.create(name, { capacity: 256, permissions: 0o644 })
    ch.send('x')
    const modes = fs.readdirSync('/dev/shm').filter((f) => /^[0-9]+$/.test(f.slice(name.length + 2)) && f.startsWith(name + '.p'))
      .map((f) => (fs.statSync('/dev/shm/' + f).mode & 0o777).toString(8))
    ch.close(); Channel.unlink(name)
    console.log(JSON.stringify(modes))`
  const r = spawnSync(process.execPath, ['-e', script, '--', name], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), ['644'])
})

test.serial('a byteLength getter patched after load cannot make send() copy more than it claimed', (t) => {
  const [ch] = fresh(t, 'patched-len', 1024)
  const TA = Object.getPrototypeOf(Uint8Array.prototype) as object
  const desc = Object.getOwnPropertyDescriptor(TA, 'byteLength')!
  const big = Buffer.alloc(100, 0xee)
  const patched = <T>(f: () => T): T => {
    Object.defineProperty(TA, 'byteLength', { ...desc, get(this: Uint8Array) { return this === big ? 4 : desc.get!.call(this) } })
    try {
      return f()
    } finally {
      Object.defineProperty(TA, 'byteLength', desc)
    }
  }
  const eight = (i: number) => Buffer.alloc(8, i)
  for (let i = 0; i < 32; i++) {
    ch.send(eight(i))
    ch.receive()
  }
  // head at 512; 63 records of 16 bytes wrap round to 496: 16 bytes free, then the record at head.
  for (let i = 0; i < 63; i++) ch.send(eight(i))
  t.false(patched(() => ch.trySend(big)), '100 bytes do not fit in 16')
  for (let i = 0; i < 63; i++) t.deepEqual(Buffer.from(ch.receive()!), eight(i), `record ${i} intact`)
  patched(() => ch.send(big))
  t.deepEqual(Buffer.from(ch.receive()!), big, 'sent whole, at its real length')
})

test.serial('a view over a shrunk resizable ArrayBuffer (out of bounds) is ERR_INVALID_STATE in send, trySend and sendAsync', async (t) => {
  const [ch] = fresh(t, 'oob-view', 1024)
  const ab = new (ArrayBuffer as unknown as new (n: number, o: object) => ArrayBuffer & { resize(n: number): void })(32, { maxByteLength: 64 })
  const views = [new Uint8Array(ab, 8, 16), new Uint32Array(ab, 16, 2), new DataView(ab, 8, 16)]
  ab.resize(4)
  for (const v of views) {
    const what = v.constructor.name
    t.is((t.throws(() => ch.send(v)) as NodeJS.ErrnoException).code, 'ERR_INVALID_STATE', `send ${what}`)
    t.is((t.throws(() => ch.trySend(v)) as NodeJS.ErrnoException).code, 'ERR_INVALID_STATE', `trySend ${what}`)
    t.is((await t.throwsAsync(ch.sendAsync(v)) as NodeJS.ErrnoException).code, 'ERR_INVALID_STATE', `sendAsync ${what}`)
  }
  t.is(ch.tryReceive(), null, 'nothing was sent')
})

test.serial('a segment shorter than the header, or a name too long for its lock files, is refused with a code', (t) => {
  const fs = require('node:fs') as typeof import('node:fs')
  for (const size of [0, 4, 8, 12, 100, 1023]) {
    // A foreign segment, or one mid-create before ftruncate; from 8 bytes on, the magic and version.
    const name = uniqueName(`ch-short-${size}`)
    const fd = fs.openSync(`/dev/shm/${name}`, 'wx', 0o600)
    fs.ftruncateSync(fd, size)
    if (size >= 8) fs.writeSync(fd, Buffer.from([0x4e, 0x53, 0x4d, 0x43, 2, 0, 0, 0]), 0, 8, 0)
    fs.closeSync(fd)
    t.teardown(() => fs.rmSync(`/dev/shm/${name}`, { force: true }))
    t.is((t.throws(() => new Channel(name)) as NodeJS.ErrnoException).code, 'ERR_SHM_CHANNEL_LAYOUT', `${size} bytes`)
    if (peers.python) {
      const py = spawnSync(PYTHON, ['-c', `import sys; sys.path.insert(0, 'examples')\nfrom channel import Channel\ntry:\n  Channel(sys.argv[1])\nexcept Exception as e: print(getattr(e, 'code', type(e).__name__))`, name], { cwd: ROOT, encoding: 'utf8' })
      t.is(py.stdout.trim(), 'ERR_SHM_CHANNEL_LAYOUT', `Python, ${size} bytes: ${py.stderr}`)
    }
  }
  const long = `${uniqueName('ch-long')}-`.padEnd(250, 'x')
  t.is((t.throws(() => Channel.create(long, { capacity: 256 })) as NodeJS.ErrnoException).code, 'ENAMETOOLONG')
  t.is((t.throws(() => new Channel(long)) as NodeJS.ErrnoException).code, 'ENAMETOOLONG')
})

test.serial('Python: children forked from a producer each take their own token; every message arrives intact', (t) => {
  if (!peers.python) return t.pass()
  const script = `
import os, sys, struct
sys.path.insert(0, 'examples')
from channel import Channel, test_message
name = sys.argv[1]
ch = Channel.create(name, 1 << 16)
ch.send(test_message(0, 0, 16))
N, K = 4, 1500
kids = []
for k in range(1, N + 1):
    pid = os.fork()
    if pid == 0:
        for seq in range(K):
            ch.send(test_message(k, seq, 8 + (seq * 37 + k) % 200), timeout=10)
        ch.close()
        os._exit(0)
    kids.append(pid)
rx = Channel(name)
seqs, bad, got, err = {0: -1}, 0, 0, None
try:
    for _ in range(N * K + 1):
        m = rx.receive(timeout=5)
        got += 1
        pid_id, seq = struct.unpack_from('<II', m)
        if m != test_message(pid_id, seq, len(m)) or seqs.get(pid_id, -1) + 1 != seq:
            bad += 1
        seqs[pid_id] = seq
except Exception as e:
    err = f'{type(e).__name__}: {e}'
for p in kids:
    if err:
        os.kill(p, 9)
    os.waitpid(p, 0)
ch.send(b'parent still a producer')
m = rx.receive(timeout=5)
print(f'{got} {bad} {err} {m == b"parent still a producer"}')
ch.close()
rx.close()  # each close removes its own lock file
os.unlink(f'/dev/shm/{name}')
left = [f for f in os.listdir('/dev/shm') if f.startswith(name)]
assert not left, f'left in /dev/shm: {left}'`
  const r = spawnSync(PYTHON, ['-c', script, uniqueName('ch-pyfork')], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' })
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), `${4 * 1500 + 1} 0 None True`)
})

/** CPU time (ms) a process has used so far: utime + stime of /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const f = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ') as string[]
  return (Number(f[11]) + Number(f[12])) * 10
}

test.serial('Python and Rust consumers: receive() on an ended channel with a claim pending sleeps, it does not spin', async (t) => {
  for (const [kind, ok, cmd, pre] of [
    ['python', peers.python, PYTHON, [PY_PEER]],
    ['rust', peers.rust, RUST_PEER, []],
  ] as const) {
    if (!ok) continue
    const [ch, name] = fresh(t, `ended-spin-${kind}`, 4096)
    ch.claim(4) // a live producer's claim, not committed while the consumer waits
    ch.end()
    const c = run(cmd, [...pre, 'consume', name, '1'])
    await new Promise((r) => setTimeout(r, 500)) // past the start-up
    const before = cpuMs(c.child.pid!)
    await new Promise((r) => setTimeout(r, 1500))
    const used = cpuMs(c.child.pid!) - before
    ch.commit()
    const e = await c.exit
    t.is(e.code, 0, `${kind}: ${e.stderr}`)
    t.true(used < 300, `${kind} consumer used ${used} ms of CPU in 1500 ms blocked on a claim (spinning)`)
  }
})

// ---- issue 19: large copies whose destination is 1–63 bytes past the source modulo 4096 -------

test('large messages at every page distance between the caller\'s buffer and the ring arrive intact (the split copy path)', (t) => {
  // Records of 4096 and 65536 bytes keep every payload at ring offset 1032 (mod 4096); sources and
  // targets are views of a page-aligned mapping, so each distance is chosen exactly: 0, 1…63 and
  // -8 (the split path for 1…63 on x86-64 Linux; memmove otherwise).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding = require('../index.js') as { pageOffset: (v: unknown) => number }
  const real = binding.pageOffset
  let asked = 0
  binding.pageOffset = (v: unknown) => (asked++, real(v))
  t.teardown(() => {
    binding.pageOffset = real
  })
  const [ch] = fresh(t, 'alias', 1 << 20, { mode: 'one-to-one' })
  const bufName = uniqueName('alias-buf')
  const buf = SharedMemory.create(bufName, 1 << 20)
  t.teardown(() => {
    buf.close()
    SharedMemory.unlink(bufName)
  })
  const bytes = new Uint8Array(buf.buffer as ArrayBuffer)
  // The caged mode copies through the segment's local copy (not split: native copyFrom/copyTo).
  const SPLITS = process.platform === 'linux' && process.arch === 'x64' && !FORCED_COPY
  const ringPayload = 1024 + 8 // HEADER + the record's 8-byte head, mod 4096 for these lengths
  let seed = 1
  for (const length of [4096 - 8, 65536 - 8, 2048, 2048 + 4096 * 3 - 8]) {
    for (const d of [0, 1, 7, 8, 31, 32, 33, 63, 64, -8]) {
      // send: the ring's payload is d bytes past the source.
      const srcOff = 8192 + ((((ringPayload - d) % 4096) + 4096) % 4096)
      const src = bytes.subarray(srcOff, srcOff + length)
      for (let k = 0; k < length; k++) src[k] = (seed * 31 + k * 7) & 255
      if (buf.requiresCopy) buf.copyTo()
      const want = Buffer.from(src)
      // receiveInto: the target is d bytes past the ring's payload.
      const dstOff = 262144 + ((ringPayload + d) % 4096 + 4096) % 4096
      const target = bytes.subarray(dstOff, dstOff + length)
      let splits = 0
      for (let r = 0; r < 3; r++) {
        const before = splitCopies.count
        ch.send(src)
        target.fill(0)
        t.is(ch.receiveInto(target), length)
        splits += splitCopies.count - before
        t.true(Buffer.from(target).equals(want), `length ${length}, distance ${d}, round ${r}: receiveInto`)
        ch.send(src) // received into a new array, wherever it lies
        t.true(Buffer.from(ch.receive()!).equals(want), `length ${length}, distance ${d}, round ${r}: receive`)
      }
      if (SPLITS && length % 4096 === 4088) {
        // 3 sends and 3 receiveInto's at distance d: split exactly when 1 <= d <= 63.
        t.is(splits, d >= 1 && d <= 63 ? 6 : 0, `length ${length}, distance ${d}: split copies`)
      }
      seed++
    }
  }
  if (SPLITS) t.true(asked > 0, 'the page offsets were asked for')
})
