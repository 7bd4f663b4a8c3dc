#!/usr/bin/env node
'use strict'
// Hostile-peer fuzzer for the message channel (docs/channel.md §7): while Node, Rust and Python
// peers call every entry point with 200 ms timeouts ("churn"), this process writes random and
// nasty words into the channel's header and records. Properties, per peer and round:
//   - it never crashes and never hangs: it exits by itself (0) within SECONDS + 15 s;
//   - every call returned by its timeout (or, for try* calls, promptly): worst overrun ≤ 1500 ms;
//   - every error is one of the protocol's (layout, timeout, busy, ended), no other exception;
//   - no message longer than capacity − 8 bytes.
// Both modes: zero-copy and caged (NODE_SHARED_MEM_FORCE_COPY=1) for the Node peers.
//   node reliability/channel-hostile.js [--rounds=N] [--seconds=S] [--seed=N] [--rate=W] [--fifo=1]
// --rate: hostile words written per millisecond (default 4; 0.05 leaves the ring usable between
// writes, so the peers also run their claim/recovery paths). --fifo=1: each round pre-creates the
// lock file of one token as a FIFO and writes that token (and its negation) among the nasty values
// (docs/channel.md §6: a lock file that is not a regular file).
// Node peer in this file too: `node reliability/channel-hostile.js --churn NAME SECONDS`.
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { ROOT, uniqueName } = require('./lib')
const { skip } = require('../scripts/skip.cjs')

const argv = process.argv.slice(2)
const opt = (k, d) => Number(argv.find((a) => a.startsWith(`--${k}=`))?.split('=')[1] ?? d)
const OVERRUN_MS = 1500

if (argv[0] === '--churn') churn(argv[1], Number(argv[2]))
else main()

/** The Node peer: every entry point in turn, as the Rust and Python `churn` commands do. */
async function churn(name, seconds) {
  const { Channel } = require(ROOT)
  const ALLOWED = new Set(['ERR_SHM_CHANNEL_LAYOUT', 'ETIMEDOUT', 'ERR_SHM_CHANNEL_BUSY', 'ERR_SHM_CHANNEL_ENDED'])
  const ch = new Channel(name)
  console.log('ready')
  const max = ch.maxMessageLength
  const data = Buffer.alloc(Math.min(40, max), 7)
  const scratch = new Uint8Array(max)
  const batch = [data, data.subarray(0, 3), '', data]
  await new Promise((r) => setTimeout(r, 300)) // the runner starts the garbage now
  const until = Date.now() + seconds * 1000
  const errors = {}
  let calls = 0
  let worst = 0
  let x = 1
  while (Date.now() < until) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    const op = x % 12
    const timed = op === 1 || op === 3 || op === 4 || op === 5 || op === 8 || op === 9 || op === 11
    const t0 = performance.now()
    let m = null
    try {
      if (op === 0) ch.trySend(data)
      else if (op === 1) ch.send(data, { timeout: 200 })
      else if (op === 2) m = ch.tryReceive()
      else if (op === 3) m = ch.receive({ timeout: 200 })
      else if (op === 4) {
        const n = ch.receiveInto(scratch, { timeout: 200 })
        if (n !== null && n > max) m = { byteLength: n }
      } else if (op === 5) await ch.sendAsync(data, { timeout: 200 })
      else if (op === 6) m = await ch.receiveAsync({ timeout: 200 })
      else if (op === 8) ch.sendMany(batch, { timeout: 200 })
      else if (op === 9) {
        ch.drain((v) => {
          if (v.byteLength > max) m = { byteLength: v.byteLength }
          else if (v.byteLength > 0) x ^= v[0] & 0 // reads the view in place (a view past the ring would throw)
        }, { timeout: 200, max: 1 + (x % 64) })
      } else if (op === 11) {
        ch.drainRange((ring, offset, length) => {
          // The message must lie inside the ring it is handed with.
          if (length > max || offset < 0 || offset + length > ring.byteLength) m = { byteLength: max + 1 }
        }, { timeout: 200, max: 1 + (x % 64) })
      } else if (op === 10) {
        const v = ch.tryReceiveView()
        if (v !== null) {
          if (v.byteLength > max) m = { byteLength: v.byteLength }
          ch.release()
        }
      } else {
        const v = ch.tryClaim(16)
        if (v) (x & 1 ? ch.commit() : ch.abort())
      }
    } catch (e) {
      if (!ALLOWED.has(e.code)) {
        console.error(`unexpected error from op ${op}: ${e.code} ${e.stack}`)
        process.exit(3)
      }
      errors[e.code] = (errors[e.code] ?? 0) + 1
    }
    const took = performance.now() - t0 - (timed || op === 6 ? 200 : 0)
    worst = Math.max(worst, took)
    if (m && m.byteLength > max) {
      console.error(`a message of ${m.byteLength} bytes > ${max}`)
      process.exit(3)
    }
    calls++
  }
  ch.close()
  console.log(JSON.stringify({ calls, worstOverMs: Math.round(worst), errors }))
}

/** Deterministic PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function run(cmd, args, env) {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  let ready
  const readyP = new Promise((r) => (ready = r))
  child.stdout.on('data', (d) => {
    stdout += d
    if (stdout.includes('ready')) ready()
  })
  child.stderr.on('data', (d) => (stderr += d))
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })))
  void exit.then(() => ready())
  return { child, exit, ready: readyP }
}

async function main() {
  const { Channel, SharedMemory } = require(ROOT)
  const rounds = opt('rounds', 4)
  const seconds = opt('seconds', 3)
  const seed = opt('seed', (Math.random() * 2 ** 31) | 0)
  const random = rng(seed)
  console.log(`channel hostile-peer fuzzer: ${rounds} rounds × 2 modes × ${seconds} s, seed ${seed} (rerun: --seed=${seed})`)
  const py = spawnSync(process.env.PYTHON ?? 'python3', ['-c', "import ctypes; ctypes.CDLL('libatomic.so.1')"], { stdio: 'ignore' })
  const rustTarget = path.join(ROOT, 'target', 'channel')
  const cargo = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'shm-channel'], { cwd: ROOT, env: { ...process.env, CARGO_TARGET_DIR: rustTarget }, stdio: 'ignore' })
  let failures = 0
  const peers = [['node', process.execPath, (n) => [__filename, '--churn', n, String(seconds)]]]
  if (!py.error && py.status === 0) peers.push(['python', process.env.PYTHON ?? 'python3', (n) => [path.join(ROOT, 'examples', 'channel.py'), 'churn', n, String(seconds)]])
  else if (!skip('the channel fuzzer\'s Python peer', 'python3 with libatomic.so.1')) failures++
  if (!cargo.error && cargo.status === 0) peers.push(['rust', path.join(rustTarget, 'release', 'shm-channel'), (n) => ['churn', n, String(seconds)]])
  else {
    console.log('FAIL the Rust peer: cargo build -p shm-channel failed')
    failures++
  }
  const rate = opt('rate', 4)
  const fifo = opt('fifo', 0) === 1
  const FIFO_TOKEN = 0x5a5a5a5
  const NASTY = [...(fifo ? [FIFO_TOKEN, -FIFO_TOKEN, FIFO_TOKEN, -FIFO_TOKEN] : []), 0, 1, 2, 3, -1, -2, -8, 7, 8, 16, 248, 256, 4088, 4096, 0x7fffffff, -0x80000000, 0xfffffff8 | 0, 0xfffffff1 | 0, 0x40000000]
  for (const [mode, env] of [['zero-copy', {}], ['caged', { NODE_SHARED_MEM_FORCE_COPY: '1' }]]) {
    for (let round = 0; round < rounds; round++) {
      const capacity = random() < 0.5 ? 256 : 4096
      const chMode = random() < 0.5 ? 'many-to-one' : 'one-to-one'
      const name = uniqueName('ch-hostile')
      const ch = Channel.create(name, { capacity, mode: chMode, recoveryMs: 20 })
      const mem = new SharedMemory(name)
      if (fifo) spawnSync('mkfifo', [`/dev/shm/${name}.p${FIFO_TOKEN}`])
      const procs = peers.flatMap(([lang, cmd, args]) => [0, 1].map((k) => ({ lang: `${lang}#${k}`, ...run(cmd, args(name), env) })))
      // Attach checks are tested elsewhere: start the garbage once every peer has attached.
      await Promise.race([Promise.all(procs.map((p) => p.ready)), new Promise((r) => setTimeout(r, 15_000))])
      // The hostile peer: a few words per millisecond, anywhere in the header's protocol words
      // (not the attach fields) and the ring, random or nasty values.
      const words = (1024 + capacity) / 4
      const started = Date.now() + 300
      let writes = 0
      let credit = 0
      const timer = setInterval(() => {
        if (Date.now() - started > seconds * 1000 - 300) return
        credit += rate
        for (; credit >= 1; credit--) {
          // Where: the record at head (state or length) half the time, so that peers read the
          // garbage; else any protocol word of the header or any ring word.
          const r = random()
          const at = ((mem.atomicLoad(256) & (capacity - 1)) >> 2) & ~1
          const w = r < 0.5 ? 256 + at + (random() < 0.5 ? 0 : 1) : r < 0.7 ? 5 + Math.floor(random() * 125) : 256 + Math.floor(random() * (words - 256))
          const v = random() < 0.6 ? NASTY[Math.floor(random() * NASTY.length)] : (random() * 2 ** 32) | 0
          mem.atomicStore(w * 4, v)
          writes++
        }
        // `ended` mostly stays 0, or the producers would only ever see the end.
        if (random() < 0.95) mem.atomicStore(20, 0)
        if (random() < 0.2) {
          mem.atomicAdd(384, 1)
          mem.notify(384)
          mem.atomicAdd(512, 1)
          mem.notify(512)
        }
      }, 1)
      const results = await Promise.all(procs.map(async (p) => {
        const kill = setTimeout(() => p.child.kill('SIGKILL'), (seconds + 15) * 1000)
        const e = await p.exit
        clearTimeout(kill)
        return { lang: p.lang, ...e }
      }))
      clearInterval(timer)
      mem.close()
      ch.close()
      Channel.unlink(name)
      if (fifo) require('node:fs').rmSync(`/dev/shm/${name}.p${FIFO_TOKEN}`, { force: true })
      for (const r of results) {
        let rec = null
        try {
          rec = JSON.parse(r.stdout.trim().split('\n').at(-1))
        } catch {}
        const ok = r.code === 0 && !r.signal && rec && rec.worstOverMs <= OVERRUN_MS
        if (!ok) failures++
        console.log(`${ok ? 'ok  ' : 'FAIL'} [${mode}] round ${round} ${chMode} cap ${capacity} ${r.lang}: ${rec ? `${rec.calls} calls, worst overrun ${rec.worstOverMs} ms, errors ${JSON.stringify(rec.errors)}` : `exit ${r.code ?? r.signal}`}${ok ? '' : `\n     ${r.stderr.trim().split('\n').slice(0, 12).join('\n     ')}`}`)
      }
      console.log(`     (${writes} hostile writes)`)
    }
  }
  console.log(failures ? `FAIL: ${failures} peer runs broke a property (seed ${seed})` : 'channel hostile-peer fuzzer: all properties held')
  process.exitCode = failures ? 1 : 0
}
