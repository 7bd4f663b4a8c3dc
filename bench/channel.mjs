// `node bench/channel.mjs` (also run by `npm run bench`): the message channel (src/channel.ts)
// between separate processes, against a Unix-domain socket with the same framing (4-byte length
// prefix), worker_threads postMessage, and shared-memory-disruptor, all in this one run.
//
// Rows: 64 B messages/s and 64 KiB throughput for Node → Node, Rust → Node (Python → Node, 64 B,
// informative) and 4 producers → 1; round-trip latency vs the raw wait/notify ping-pong. Each
// channel row's label says what its consumer does: `receiveInto` copies every message out,
// `drain(fn)` hands a view per message, `drainRange(fn)` an offset into one view of the ring (no
// object per message); the in-place rows are the like-for-like comparison with the disruptor,
// whose consumer only counts the elements it gets views of. `sendMany` rows send batches of 64.
// The bare JS ring row (bareRow) is the yardstick of issue 19: the channel's 64 B one-to-one row
// targets ≥ 40% of it.
// Throughput is timed in the consumer, from its first message to its last. This process is the
// consumer (or the ping side); every producer is a child process (a worker for postMessage).
// Targets are printed with ratios and MEET/MISS, never enforced. Every row runs twice: unpinned,
// and pinned (this process on one CPU, every producer/echo process on another, with `taskset`;
// the postMessage rows share one process's mask and run unpinned only). Round trips report the
// mean and p50/p99 of per-message latency. JSON: .bench/channel-results.json (BENCH_CHANNEL_OUT
// overrides). BENCH_CHANNEL_SCALE=0.2 for a quick run; BENCH_CHANNEL_PIN=0 skips the pinned pass;
// BENCH_CHANNEL_ROWS=nn64,uds64 runs only those rows (the keys of `rows` in runPass).
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import { ROOT, require as rootRequire } from './lib.mjs'
import { buildRustPeer, loadDisruptor } from './channel-peers.mjs'

const SELF = fileURLToPath(import.meta.url)
const { Channel, SharedMemory } = rootRequire(ROOT)
const SCALE = Number(process.env.BENCH_CHANNEL_SCALE ?? 1)
const N64 = Math.round(400_000 * SCALE)
const N64K = Math.round(60_000 * SCALE)
const NRT = Math.round(20_000 * SCALE)
/**
 * The clock of a throughput row starts after this fraction of its messages (the same for every
 * row): both processes' JIT tier-up and the ring's first page faults fall before it.
 */
const WARM = 0.1
const warmOf = (total) => Math.max(1, Math.floor(total * WARM))
/** Each row runs this many times; the table shows the median run (BENCH_CHANNEL_REPEAT). */
const REPEAT = Math.max(1, Number(process.env.BENCH_CHANNEL_REPEAT ?? 5))
const KiB64 = 64 * 1024
const log = (s) => process.stderr.write(s + '\n')
const uniq = (tag) => `nsm-bench-ch-${tag}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`
const now = () => performance.now()
/** CPU for child processes in the pinned pass (null: unpinned). */
let PIN_CHILD = null

// ---- child roles --------------------------------------------------------------------------
const role = process.argv[2]
if (role === 'produce') {
  const [name, count, size, how] = [process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6] ?? 'send']
  const ch = new Channel(name)
  const data = Buffer.alloc(size, 0x5a)
  if (how === 'sendMany') {
    // Batches of 64 (the same array each time: nothing allocated per batch).
    const batch = Array.from({ length: 64 }, () => data)
    let i = 0
    for (; i + 64 <= count; i += 64) ch.sendMany(batch)
    for (; i < count; i++) ch.send(data)
  } else for (let i = 0; i < count; i++) ch.send(data)
  ch.close()
  process.exit(0)
} else if (role === 'uds') {
  const [file, count, size] = [process.argv[3], Number(process.argv[4]), Number(process.argv[5])]
  const frame = Buffer.alloc(4 + size, 0x5a)
  frame.writeUInt32LE(size, 0)
  const sock = net.connect(file, async () => {
    for (let i = 0; i < count; i++) {
      if (!sock.write(frame)) await new Promise((r) => sock.once('drain', r))
    }
    sock.end()
  })
} else if (role === 'disruptor') {
  const { Disruptor } = loadDisruptor()
  const [name, count, size, elems] = [process.argv[3], Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6])]
  const d = new Disruptor(name, elems, size, 1, -1, false, true)
  const data = Buffer.alloc(size, 0x5a)
  for (let i = 0; i < count; i++) {
    data.copy(d.produceClaimSync())
    d.produceCommitSync()
  }
  process.exit(0)
} else if (role === 'bare') {
  // The bare ring's producer (see bareRow): records of 8 + size bytes, `tail` (a record count)
  // published per message, `head` read only when the cached one shows the ring full.
  const [name, count, size] = [process.argv[3], Number(process.argv[4]), Number(process.argv[5])]
  const m = new SharedMemory(name)
  const i32 = new Int32Array(m.buffer, 0, m.length >> 2)
  const src = new Int32Array(size >> 2).fill(0x5a5a5a5a)
  const slots = (m.length - 1024) / (8 + size)
  const words = (8 + size) >> 2
  let head = 0
  for (let tail = 0; tail < count; tail++) {
    for (let spins = 0; tail - head >= slots; spins++) {
      head = Atomics.load(i32, 64)
      if ((spins & 0xfffff) === 0xfffff && performance.now() > 60_000) process.exit(3) // the consumer is gone
    }
    const w = 256 + (tail % slots) * words
    i32[w] = size
    for (let k = 0; k < src.length; k++) i32[w + 2 + k] = src[k]
    Atomics.store(i32, 0, tail + 1)
  }
  process.exit(0)
} else if (role === 'echo') {
  const [a, b, count] = [process.argv[3], process.argv[4], Number(process.argv[5])]
  const rx = new Channel(a)
  const tx = new Channel(b)
  const buf = new Uint8Array(64)
  for (let i = 0; i < count; i++) {
    rx.receiveInto(buf)
    tx.send(buf)
  }
  process.exit(0)
} else if (role === 'wn-echo') {
  const [name, count] = [process.argv[3], Number(process.argv[4])]
  const m = new SharedMemory(name)
  for (let i = 0; i < count; i++) {
    while (m.atomicLoad(0) !== 1) m.wait(0, 0)
    m.atomicStore(0, 0)
    m.notify(0, 1)
  }
  process.exit(0)
} else {
  await main()
}

function child(args, env = {}) {
  if (PIN_CHILD != null) args = ['taskset', '-c', String(PIN_CHILD), ...args]
  const c = spawn(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], cwd: ROOT, env: { ...process.env, ...env } })
  const exit = new Promise((resolve) => c.on('exit', (code, signal) => resolve(code === 0 ? null : `exited with ${code ?? signal}`)))
  return { c, exit }
}

/** Receives `total` messages of `size` bytes from the given producers; returns per-second figures. */
async function channelRow(label, { size, total, producers, mode = 'one-to-one', capacity, consume = 'receiveInto' }) {
  const name = uniq('c')
  const ch = Channel.create(name, { capacity, mode })
  try {
    const kids = producers(name).map((args) => child(args))
    const view = new Uint8Array(size)
    const warm = warmOf(total)
    let t0 = 0
    if (consume === 'drainRange') {
      // In place, no object per message: fn checks the length and reads one byte.
      let bad = 0
      let sum = 0
      const fn = (ring, offset, length) => {
        if (length !== size) bad++
        sum += ring[offset]
      }
      const opts = { timeout: 60_000 }
      let got = 0
      while (got < warm) got += ch.drainRange(fn, { timeout: 60_000, max: warm - got })
      t0 = now() // after the warm-up messages
      while (got < total) got += ch.drainRange(fn, opts)
      if (bad !== 0 || got !== total || sum !== total * 0x5a) throw new Error(`drainRange: ${bad} of a wrong length, ${got} of ${total}`)
    } else if (consume === 'drain') {
      // In place: fn checks the length and reads one byte of each view (the disruptor row's
      // consumer reads none), never copies.
      let bad = 0
      let sum = 0
      const fn = (v) => {
        if (v.length !== size) bad++
        sum += v[0]
      }
      const opts = { timeout: 60_000 }
      let got = 0
      while (got < warm) got += ch.drain(fn, { timeout: 60_000, max: warm - got })
      t0 = now() // after the warm-up messages
      while (got < total) got += ch.drain(fn, opts)
      if (bad !== 0 || got !== total || sum !== total * 0x5a) throw new Error(`drain: ${bad} of a wrong length, ${got} of ${total}`)
    } else {
      const opts = { timeout: 60_000 }
      for (let i = 0; i < total; i++) {
        const n = ch.receiveInto(view, opts)
        if (n !== size) throw new Error(`got ${n} bytes`)
        if (i === warm - 1) t0 = now()
      }
    }
    const s = (now() - t0) / 1000
    const errors = (await Promise.all(kids.map((k) => k.exit))).filter(Boolean)
    if (errors.length) throw new Error(errors.join('; '))
    return row(label, size, total - warm, s)
  } catch (e) {
    return { label, error: String(e.message) }
  } finally {
    ch.close()
    Channel.unlink(name)
  }
}

/**
 * The limit a JS ring reaches between two Node processes (issue 19's yardstick): a bare
 * single-producer ring in plain JS over one of our zero-copy mappings — records of 8 + size
 * bytes, `tail` published per message, `head` every 64, both sides spinning, no allocation, no
 * liveness, no end, no wake-ups. The consumer copies each payload out (as receiveInto does).
 */
async function bareRow(label, size, total) {
  const name = uniq('bare')
  const slots = 16384
  const m = SharedMemory.create(name, 1024 + slots * (8 + size))
  try {
    const i32 = new Int32Array(m.buffer, 0, m.length >> 2)
    const kid = child([process.execPath, SELF, 'bare', name, String(total), String(size)])
    const start = now()
    const out = new Int32Array(size >> 2)
    const words = (8 + size) >> 2
    const warm = warmOf(total)
    let tailSeen = 0
    let t0 = 0
    let sum = 0
    for (let head = 0; head < total; head++) {
      for (let spins = 0; head === tailSeen && (tailSeen = Atomics.load(i32, 0)) === head; spins++) {
        if ((spins & 0xfffff) === 0xfffff && now() - start > 60_000) throw new Error('bare ring: no message for 60 s')
      }
      const w = 256 + (head % slots) * words
      if (i32[w] !== size) throw new Error(`bare ring: length ${i32[w]}`)
      for (let k = 0; k < out.length; k++) out[k] = i32[w + 2 + k]
      sum += out[0]
      if ((head & 63) === 63) Atomics.store(i32, 64, head + 1)
      if (head === warm - 1) t0 = now()
    }
    const s = (now() - t0) / 1000
    const err = await kid.exit
    if (err) throw new Error(err)
    if (sum !== total * 0x5a5a5a5a) throw new Error('bare ring: corrupt payload')
    return row(label, size, total - warm, s)
  } catch (e) {
    return { label, error: String(e.message) }
  } finally {
    m.close()
    SharedMemory.unlink(name)
  }
}

function row(label, size, count, seconds) {
  return { label, size, count, seconds, msgs_per_s: count / seconds, gib_per_s: (count * size) / seconds / 2 ** 30 }
}

async function udsRow(label, size, total) {
  const file = path.join(os.tmpdir(), `${uniq('uds')}.sock`)
  const warm = warmOf(total)
  let t0 = 0
  let got = 0
  let kid
  const done = new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      let pending = Buffer.alloc(0)
      sock.on('data', (d) => {
        pending = pending.length ? Buffer.concat([pending, d]) : d
        let off = 0
        while (pending.length - off >= 4) {
          const len = pending.readUInt32LE(off)
          if (pending.length - off < 4 + len) break
          if (++got === warm) t0 = now()
          off += 4 + len
        }
        pending = pending.subarray(off)
      })
      sock.on('end', () => {
        const s = (now() - t0) / 1000
        server.close()
        resolve(got === total ? row(label, size, total - warm, s) : { label, error: `got ${got} of ${total}` })
      })
      sock.on('error', reject)
    })
    server.listen(file, () => (kid = child([process.execPath, SELF, 'uds', file, String(total), String(size)])))
  })
  try {
    return await done
  } catch (e) {
    return { label, error: String(e.message) }
  } finally {
    await kid?.exit
    fs.rmSync(file, { force: true })
  }
}

async function workerRow(label, size, total) {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
     const data = new Uint8Array(workerData.size).fill(0x5a)
     parentPort.once('message', () => { for (let i = 0; i < workerData.total; i++) parentPort.postMessage(data) })`,
    { eval: true, workerData: { size, total } },
  )
  const warm = warmOf(total)
  let got = 0
  let t0 = 0
  const r = await new Promise((resolve) => {
    w.on('message', () => {
      if (++got === warm) t0 = now()
      if (got === total) resolve(row(label, size, total - warm, (now() - t0) / 1000))
    })
    w.on('error', (e) => resolve({ label, error: String(e.message) }))
    w.postMessage('go')
  })
  await w.terminate()
  return r
}

async function disruptorRow(label, Disruptor, size, total, elems) {
  const name = `/${uniq('dis')}`
  try {
    const d = new Disruptor(name, elems, size, 1, 0, true, true)
    const kid = child([process.execPath, SELF, 'disruptor', name, String(total), String(size), String(elems)])
    const warm = warmOf(total)
    let got = 0
    let t0 = 0
    let timed = 0 // messages after the clock started (views come in batches: it starts after the batch that passes `warm`)
    while (got < total) {
      const bufs = d.consumeNewSync()
      for (const b of bufs) {
        got += b.length / size
        if (t0 !== 0) timed += b.length / size
      }
      d.consumeCommit()
      if (t0 === 0 && got >= warm) t0 = now()
    }
    const s = (now() - t0) / 1000
    const err = await kid.exit
    if (err) throw new Error(err)
    return row(label, size, timed, s)
  } catch (e) {
    return { label, error: String(e.message) }
  } finally {
    SharedMemory.unlink(name.slice(1))
  }
}

/**
 * The memcpy yardstick: 64 KiB copies (Buffer#copy, glibc memmove) into the successive 64 KiB
 * slots of a 4 MiB buffer (the 64 KiB rows' ring size), one process. Source and slots sit at
 * the same offset within a page: on some CPUs (AMD Zen with glibc's `rep movsb`) a copy whose
 * destination is 1–63 bytes past the source modulo 4096 runs at a tenth of the speed, and two
 * separately allocated buffers land wherever malloc puts them (measured here: 2.5 vs 35 GiB/s).
 */
function memcpyRow() {
  const slots = 64
  const mem = Buffer.alloc((slots + 1) * KiB64, 1)
  const src = mem.subarray(0, KiB64)
  const dst = Array.from({ length: slots }, (_, k) => mem.subarray((k + 1) * KiB64, (k + 2) * KiB64))
  const n = 40_000
  for (let i = 0; i < 4000; i++) src.copy(dst[i & (slots - 1)])
  const t0 = now()
  for (let i = 0; i < n; i++) src.copy(dst[i & (slots - 1)])
  return row('memcpy 64 KiB into the slots of a 4 MiB buffer (Buffer#copy, one process)', KiB64, n, (now() - t0) / 1000)
}

/** Round trips of a 64-byte message over two one-to-one channels through an echo process. */
async function roundTripRow() {
  const [a, b] = [uniq('rta'), uniq('rtb')]
  const tx = Channel.create(a, { capacity: 4096, mode: 'one-to-one' })
  const rx = Channel.create(b, { capacity: 4096, mode: 'one-to-one' })
  try {
    const kid = child([process.execPath, SELF, 'echo', a, b, String(NRT + 1000)])
    const msg = new Uint8Array(64)
    const back = new Uint8Array(64)
    for (let i = 0; i < 1000; i++) (tx.send(msg), rx.receiveInto(back, { timeout: 60_000 }))
    const lat = new Float64Array(NRT)
    const t0 = now()
    for (let i = 0; i < NRT; i++) {
      const a = now()
      tx.send(msg)
      rx.receiveInto(back, { timeout: 60_000 })
      lat[i] = now() - a
    }
    const us = ((now() - t0) * 1000) / NRT
    const err = await kid.exit
    if (err) throw new Error(err)
    return { label: 'channel round trip, 64 B (Node ⇄ Node, two one-to-one channels)', us_per_round_trip: us, ...percentiles(lat), count: NRT }
  } catch (e) {
    return { label: 'channel round trip', error: String(e.message) }
  } finally {
    for (const [c, n] of [[tx, a], [rx, b]]) (c.close(), Channel.unlink(n))
  }
}

/** The raw cross-process wait/notify ping-pong on one word (the latency floor). */
async function waitNotifyRow() {
  const name = uniq('wn')
  const m = SharedMemory.create(name, 64)
  try {
    const total = NRT + 1000
    const kid = child([process.execPath, SELF, 'wn-echo', name, String(total)])
    let t0 = 0
    const lat = new Float64Array(NRT)
    for (let i = 0; i < total; i++) {
      if (i === 1000) t0 = now()
      const a = now()
      m.atomicStore(0, 1)
      m.notify(0, 1)
      while (m.atomicLoad(0) !== 0) m.wait(0, 1)
      if (i >= 1000) lat[i - 1000] = now() - a
    }
    const us = ((now() - t0) * 1000) / NRT
    const err = await kid.exit
    if (err) throw new Error(err)
    return { label: 'raw wait/notify ping-pong (Node ⇄ Node, one Int32)', us_per_round_trip: us, ...percentiles(lat), count: NRT }
  } catch (e) {
    return { label: 'raw wait/notify ping-pong', error: String(e.message) }
  } finally {
    m.close()
    SharedMemory.unlink(name)
  }
}

/** p50/p99 in µs of per-iteration times given in ms. */
function percentiles(ms) {
  const s = Float64Array.from(ms).sort()
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))] * 1000
  return { p50_us: at(0.5), p99_us: at(0.99) }
}

/** Pins this process to `cpu` (null: every CPU) with taskset; false when taskset is missing. */
function pinSelf(cpu) {
  const all = `0-${os.availableParallelism() - 1}`
  const r = spawnSync('taskset', ['-pc', cpu == null ? all : String(cpu), String(process.pid)], { stdio: 'ignore' })
  return !r.error && r.status === 0
}

async function main() {
  const pinned = process.env.BENCH_CHANNEL_PIN !== '0' && os.availableParallelism() >= 2
  const passes = [await runPass(false)]
  if (pinned) {
    if (pinSelf(0)) {
      PIN_CHILD = 1
      try {
        passes.push(await runPass(true))
      } finally {
        PIN_CHILD = null
        pinSelf(null)
      }
    } else log('bench: taskset missing or refused: pinned pass not run')
  }
  const out = process.env.BENCH_CHANNEL_OUT ?? path.join(ROOT, '.bench', 'channel-results.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ passes }, null, 2) + '\n')
  if (passes.some((ps) => Object.values(ps.rows).some((r) => r.error))) process.exitCode = 1
}

async function runPass(isPinned) {
  const load0 = os.loadavg().map((x) => +x.toFixed(2))
  const disruptor = loadDisruptor(log)
  const rust = buildRustPeer(log)
  const python = spawnSync(process.env.PYTHON ?? 'python3', ['-c', "import ctypes; ctypes.CDLL('libatomic.so.1')"]).status === 0
  const py = process.env.PYTHON ?? 'python3'
  const node = (count, size, how = 'send') => [process.execPath, SELF, 'produce', '%NAME%', String(count), String(size), how]
  const sub = (args, name) => args.map((a) => (a === '%NAME%' ? name : a))
  const MiB = 1 << 20
  const rows = {}
  /** BENCH_CHANNEL_ROWS=nn64,rn64 runs only those rows (keys of `rows`; for profiling). */
  const only = process.env.BENCH_CHANNEL_ROWS?.split(',')
  const want = (key) => !only || only.includes(key)
  const t0 = Date.now()
  log('bench: channel rows ...')
  // Each row REPEAT times; the median run (by rate, or by time per round trip) goes in the
  // table, every run's figure in `runs`.
  const put = async (key, make) => {
    if (!want(key)) return
    const runs = []
    for (let k = 0; k < REPEAT; k++) {
      const r = await make()
      if (r.error) return void (rows[key] = r)
      runs.push(r)
    }
    const by = runs[0].us_per_round_trip !== undefined ? 'us_per_round_trip' : 'msgs_per_s'
    runs.sort((x, y) => x[by] - y[by])
    rows[key] = { ...runs[(runs.length - 1) >> 1], runs: runs.map((r) => +r[by].toPrecision(4)) }
  }
  await put('memcpy', () => memcpyRow())
  await put('nn64', () => channelRow('channel Node → Node, 64 B (one-to-one; send → receiveInto, a copy out)', { size: 64, total: N64, capacity: MiB, producers: (n) => [sub(node(N64, 64), n)] }))
  await put('nn64d', () => channelRow('channel Node → Node, 64 B (one-to-one; send → drain(fn), fn reads the view in place)', { size: 64, total: N64, capacity: MiB, consume: 'drain', producers: (n) => [sub(node(N64, 64), n)] }))
  await put('nn64r', () => channelRow('channel Node → Node, 64 B (one-to-one; send → drainRange(fn), in place, no object per message)', { size: 64, total: N64, capacity: MiB, consume: 'drainRange', producers: (n) => [sub(node(N64, 64), n)] }))
  await put('nn64b', () => channelRow('channel Node → Node, 64 B (one-to-one; sendMany of 64 → drainRange(fn))', { size: 64, total: N64, capacity: MiB, consume: 'drainRange', producers: (n) => [sub(node(N64, 64, 'sendMany'), n)] }))
  await put('nn64m', () => channelRow('channel Node → Node, 64 B (many-to-one mode, 1 producer; send → receiveInto)', { size: 64, total: N64, capacity: MiB, mode: 'many-to-one', producers: (n) => [sub(node(N64, 64), n)] }))
  await put('nn64k', () => channelRow('channel Node → Node, 64 KiB (one-to-one; send → receiveInto, a 64 KiB copy out)', { size: KiB64, total: N64K, capacity: 4 * MiB, producers: (n) => [sub(node(N64K, KiB64), n)] }))
  await put('nn64kd', () => channelRow('channel Node → Node, 64 KiB (one-to-one; send → drain(fn), fn reads 1 byte in place, as the disruptor row)', { size: KiB64, total: N64K, capacity: 4 * MiB, consume: 'drain', producers: (n) => [sub(node(N64K, KiB64), n)] }))
  await put('many64', () => channelRow('channel 4 Node producers → Node, 64 B (many-to-one)', { size: 64, total: 4 * Math.round(N64 / 4), capacity: MiB, mode: 'many-to-one', producers: (n) => [0, 1, 2, 3].map(() => sub(node(Math.round(N64 / 4), 64), n)) }))
  await put('many64b', () => channelRow('channel 4 Node producers → Node, 64 B (many-to-one; sendMany of 64 → drainRange(fn))', { size: 64, total: 4 * Math.round(N64 / 4), capacity: MiB, mode: 'many-to-one', consume: 'drainRange', producers: (n) => [0, 1, 2, 3].map(() => sub(node(Math.round(N64 / 4), 64, 'sendMany'), n)) }))
  await put('many64k', () => channelRow('channel 4 Node producers → Node, 64 KiB (many-to-one)', { size: KiB64, total: 4 * Math.round(N64K / 4), capacity: 4 * MiB, mode: 'many-to-one', producers: (n) => [0, 1, 2, 3].map(() => sub(node(Math.round(N64K / 4), KiB64), n)) }))
  if (rust.bin) {
    await put('rn64', () => channelRow('channel Rust → Node, 64 B (one-to-one; → receiveInto)', { size: 64, total: N64, capacity: MiB, producers: (n) => [[rust.bin, 'flood', n, String(N64), '64']] }))
    await put('rn64k', () => channelRow('channel Rust → Node, 64 KiB (one-to-one; → receiveInto)', { size: KiB64, total: N64K, capacity: 4 * MiB, producers: (n) => [[rust.bin, 'flood', n, String(N64K), String(KiB64)]] }))
  } else rows.rn64 = { label: 'channel Rust → Node', error: rust.error }
  const NPY = Math.round(N64 / 8)
  await put('pn64', async () =>
    python
      ? channelRow('channel Python → Node, 64 B (one-to-one; pure Python + ctypes)', { size: 64, total: NPY, capacity: MiB, producers: (n) => [[py, path.join(ROOT, 'examples', 'channel.py'), 'flood', n, String(NPY), '64']] })
      : { label: 'channel Python → Node', error: 'python3 with libatomic.so.1 missing' },
  )
  await put('bare64', () => bareRow('bare JS ring, 64 B (Node → Node; plain JS on a mapping, no protocol: the yardstick)', 64, N64))
  await put('uds64', () => udsRow('Unix-domain socket, 64 B + 4 B length prefix (Node → Node)', 64, N64))
  await put('uds64k', () => udsRow('Unix-domain socket, 64 KiB + 4 B length prefix (Node → Node)', KiB64, N64K))
  if (!isPinned) {
    await put('worker64', () => workerRow('worker_threads postMessage, 64 B Uint8Array (worker → main)', 64, N64))
    await put('worker64k', () => workerRow('worker_threads postMessage, 64 KiB Uint8Array (worker → main)', KiB64, N64K))
  }
  if (disruptor.Disruptor) {
    await put('dis64', () => disruptorRow(`shared-memory-disruptor@${disruptor.version}, 64 B elements (Node → Node, sync, spinning; consumer counts the views, reads no byte)`, disruptor.Disruptor, 64, N64, 16384))
    await put('dis64k', () => disruptorRow(`shared-memory-disruptor@${disruptor.version}, 64 KiB elements (consumer counts the views, reads no byte)`, disruptor.Disruptor, KiB64, N64K, 64))
  } else rows.dis64 = { label: 'shared-memory-disruptor', error: `FAILED TO BUILD: ${disruptor.error}` }
  await put('rt', () => roundTripRow())
  await put('wn', () => waitNotifyRow())
  const load1 = os.loadavg().map((x) => +x.toFixed(2))

  const ratio = (a, b, key, inverse = false) => (rows[a]?.[key] && rows[b]?.[key] ? (inverse ? rows[b][key] / rows[a][key] : rows[a][key] / rows[b][key]) : null)
  const targets = [
    ['64 B msgs/s: channel Node→Node vs Unix socket', ratio('nn64', 'uds64', 'msgs_per_s'), '>=', 10],
    ['64 B msgs/s: channel Node→Node vs shared-memory-disruptor', ratio('nn64', 'dis64', 'msgs_per_s'), '>=', 2],
    ['64 B msgs/s: one-to-one vs many-to-one with 1 producer (one-to-one fastest)', ratio('nn64', 'nn64m', 'msgs_per_s'), '>=', 1],
    ['64 B msgs/s: channel Node→Node (receiveInto) vs the bare JS ring', ratio('nn64', 'bare64', 'msgs_per_s'), '>=', 0.4],
    ['64 B msgs/s: channel Node→Node, drainRange, vs the bare JS ring', ratio('nn64r', 'bare64', 'msgs_per_s'), '>=', null],
    ['64 B msgs/s: channel Node→Node, drainRange in place, vs Unix socket', ratio('nn64r', 'uds64', 'msgs_per_s'), '>=', 10],
    ['64 B msgs/s: channel Node→Node, drainRange in place, vs disruptor (like for like)', ratio('nn64r', 'dis64', 'msgs_per_s'), '>=', 2],
    ['64 B msgs/s: channel Node→Node, drain(view) in place, vs Unix socket', ratio('nn64d', 'uds64', 'msgs_per_s'), '>=', null],
    ['64 B msgs/s: channel sendMany → drainRange vs Unix socket', ratio('nn64b', 'uds64', 'msgs_per_s'), '>=', null],
    ['64 KiB throughput: channel Node→Node vs shared-memory-disruptor', ratio('nn64k', 'dis64k', 'gib_per_s'), '>=', 1],
    ['64 KiB throughput: channel, drain in place, vs disruptor (like for like)', ratio('nn64kd', 'dis64k', 'gib_per_s'), '>=', 1],
    ['64 B msgs/s: channel Rust→Node vs Unix socket', ratio('rn64', 'uds64', 'msgs_per_s'), '>=', null],
    ['64 B msgs/s: channel 4→1 vs Unix socket', ratio('many64', 'uds64', 'msgs_per_s'), '>=', null],
    ['64 B msgs/s: channel 4→1, sendMany → drainRange, vs Unix socket', ratio('many64b', 'uds64', 'msgs_per_s'), '>=', null],
    ['64 B msgs/s: channel Node→Node vs worker postMessage', ratio('nn64', 'worker64', 'msgs_per_s'), '>=', null],
    ['64 KiB throughput: channel Node→Node vs memcpy bandwidth', ratio('nn64k', 'memcpy', 'gib_per_s'), '>=', 0.5],
    ['64 KiB throughput: channel, drain in place, vs memcpy bandwidth', ratio('nn64kd', 'memcpy', 'gib_per_s'), '>=', 0.5],
    ['64 KiB throughput: channel Rust→Node vs memcpy bandwidth', ratio('rn64k', 'memcpy', 'gib_per_s'), '>=', null],
    ['round trip: channel vs raw wait/notify ping-pong (time)', ratio('rt', 'wn', 'us_per_round_trip'), '<=', null],
  ].map(([what, r, op, target]) => ({ what, ratio: r, op, target, verdict: r == null ? 'NOT RUN' : target == null ? 'info' : (op === '>=' ? r >= target : r <= target) ? 'MEET' : 'MISS' }))

  const lines = []
  const p = (s = '') => lines.push(s)
  p(`channel benchmark — ${os.cpus()[0]?.model} (${os.cpus().length} CPUs), Node ${process.version}, ${new Date().toISOString()}`)
  p(`load average at start ${load0.join(' ')}, at end ${load1.join(' ')}; scale ${SCALE}; wall ${((Date.now() - t0) / 1000).toFixed(0)} s; ${isPinned ? 'PINNED: this process on CPU 0, every other process on CPU 1 (taskset)' : 'unpinned'}`)
  p()
  for (const r of Object.values(rows)) {
    if (r.error) p(`  ${r.label.padEnd(116)} NOT RUN: ${r.error}`)
    else if (r.us_per_round_trip) p(`  ${r.label.padEnd(116)} ${r.us_per_round_trip.toFixed(2).padStart(9)} µs/round trip (p50 ${r.p50_us.toFixed(2)}, p99 ${r.p99_us.toFixed(2)})`)
    else p(`  ${r.label.padEnd(116)} ${(r.msgs_per_s / 1e6).toFixed(3).padStart(9)} M msgs/s ${r.gib_per_s.toFixed(2).padStart(7)} GiB/s`)
  }
  p()
  for (const t of targets) {
    const tgt = t.target == null ? 'no target' : `target ${t.op === '>=' ? '≥' : '≤'} ${t.target}×`
    p(`  ratio ${t.what.padEnd(76)} ${t.ratio == null ? '—'.padStart(8) : (t.ratio.toFixed(2) + '×').padStart(8)}  ${tgt}: ${t.verdict}`)
  }
  console.log(lines.join('\n') + '\n')
  return { pinned: isPinned, load0, load1, scale: SCALE, rows, targets, table: lines }
}
