// Row 6: cross-process ping-pong round trip.
// Usage: node bench/pingpong.mjs OUT.json [one-cpu|unpinned]
//   one-cpu:  bench/index.mjs runs it under `taskset -c N`; the peers inherit it, so every
//             mechanism pays the same hand-off on one CPU (stable on a shared machine).
//   unpinned: each side may get its own CPU (what a quiet multi-core machine gives), plus a
//             spin-then-wait variant that only makes sense there.
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { loadAddon, runGroup, segmentName, ROOT } from './lib.mjs'

const out = process.argv[2]
const config = process.argv[3] ?? 'unpinned'
const sfx = config === 'one-cpu' ? '' : '@unpinned'
const row = config === 'one-cpu' ? 'ping-pong' : 'ping-pong-unpinned'
const { SharedMemory } = loadAddon()
const PEER = path.join(ROOT, 'bench', 'pingpong-peer.mjs')
const children = []

// The C peer (bench/pingpong-futex-peer.c) sleeps in FUTEX_WAIT and never spins. It is built
// once per run with the system C compiler; without one its row reports NOT RUN.
function buildFutexPeer() {
  const src = path.join(ROOT, 'bench', 'pingpong-futex-peer.c')
  const exe = path.join(os.tmpdir(), `nsm-bench-futex-peer-${process.pid}`)
  if (process.platform !== 'linux') return { error: 'the C futex peer is Linux-only' }
  const cc = process.env.CC ?? 'cc'
  const r = spawnSync(cc, ['-O2', '-o', exe, src], { encoding: 'utf8' })
  if (r.error || r.status !== 0) return { error: `${cc} failed or missing: ${(r.error?.message ?? r.stderr ?? '').split('\n')[0]}` }
  return { exe }
}

function startPeer(kind, arg) {
  return new Promise((resolve, reject) => {
    const cmd = kind === 'c-futex' ? [arg.exe, [arg.name]] : [process.execPath, [PEER, kind, arg]]
    const child = spawn(cmd[0], cmd[1], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    let buf = ''
    child.stdout.on('data', (d) => {
      buf += d
      if (buf.includes('ready')) resolve(child)
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (!buf.includes('ready')) reject(new Error(`${kind} peer exited early (${code})`))
    })
  })
}

const results = []
const name = segmentName('pp')
const mem = SharedMemory.create(name, 4096)
const spinName = segmentName('pps')
const spinMem = SharedMemory.create(spinName, 4096)
const cName = segmentName('ppc')
const cMem = SharedMemory.create(cName, 4096)
const futexPeer = buildFutexPeer()
const SPIN = Number(process.env.BENCH_SPIN ?? 20000)
const sockPath = path.join(os.tmpdir(), `nsm-bench-${process.pid}.sock`)
let server, conn, worker
try {
  if (mem.requiresCopy) throw new Error('ping-pong needs zero-copy mode (Atomics over mem.buffer)')
  const i32 = new Int32Array(mem.buffer)
  await startPeer('shm', name)

  // One round trip: store 1 + notify; block until the peer has stored 2.
  const shmRoundTrip = () => {
    Atomics.store(i32, 0, 1)
    mem.notify(0)
    let v = Atomics.load(i32, 0)
    while (v !== 2) {
      mem.wait(0, v)
      v = Atomics.load(i32, 0)
    }
  }
  // The same with waitAsync: the event loop stays free while waiting.
  const shmRoundTripAsync = async () => {
    Atomics.store(i32, 0, 1)
    mem.notify(0)
    let v = Atomics.load(i32, 0)
    while (v !== 2) {
      await mem.waitAsync(0, v)
      v = Atomics.load(i32, 0)
    }
  }

  // Informative: both sides spin on Atomics.load (up to SPIN loads) before blocking in wait.
  const s32 = new Int32Array(spinMem.buffer)
  await startPeer('shm-spin', spinName)
  const shmRoundTripSpin = () => {
    Atomics.store(s32, 0, 1)
    spinMem.notify(0)
    let v = Atomics.load(s32, 0)
    for (let k = 0; k < SPIN && v !== 2; k++) v = Atomics.load(s32, 0)
    while (v !== 2) {
      spinMem.wait(0, v)
      v = Atomics.load(s32, 0)
    }
  }

  // The C peer that sleeps in the kernel: our side is the same as pp-shm-wait.
  const c32 = new Int32Array(cMem.buffer)
  if (futexPeer.exe) await startPeer('c-futex', { exe: futexPeer.exe, name: cName })
  const shmRoundTripC = () => {
    if (futexPeer.error) throw new Error(futexPeer.error)
    Atomics.store(c32, 0, 1)
    cMem.notify(0)
    let v = Atomics.load(c32, 0)
    while (v !== 2) {
      cMem.wait(0, v)
      v = Atomics.load(c32, 0)
    }
  }

  // Unix-domain socket between two Node processes: 1 byte out, wait for the echo.
  let onEcho = null
  server = net.createServer()
  await new Promise((r) => server.listen(sockPath, r))
  const connected = new Promise((r) => server.once('connection', r))
  await startPeer('uds', sockPath)
  conn = await connected
  conn.on('data', () => onEcho && onEcho())
  const one = Buffer.from([1])
  const udsRoundTrip = () =>
    new Promise((resolve) => {
      onEcho = resolve
      conn.write(one)
    })

  // worker_threads postMessage ping-pong.
  worker = new Worker("require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m))", { eval: true })
  let onReply = null
  worker.on('message', () => onReply && onReply())
  await new Promise((r) => {
    onReply = r
    worker.postMessage(0)
  })
  const workerRoundTrip = () =>
    new Promise((resolve) => {
      onReply = resolve
      worker.postMessage(1)
    })

  const tasks = [
    { id: 'pp-shm-wait', label: 'SharedMemory wait/notify on an Int32, two Node processes', role: 'target', fn: shmRoundTrip },
    { id: 'pp-shm-waitasync', label: 'SharedMemory waitAsync/notify (main side async), two Node processes', role: 'target', async: true, fn: shmRoundTripAsync },
    { id: 'pp-shm-cpeer', label: 'wait/notify ↔ a C peer that sleeps in FUTEX_WAIT (never spins)', role: 'target', fn: shmRoundTripC },
    { id: 'pp-uds', label: 'Unix-domain socket, 1 byte each way, two Node processes', role: 'baseline', async: true, fn: udsRoundTrip },
    { id: 'pp-worker', label: 'worker_threads postMessage, main ↔ worker', role: 'baseline', async: true, fn: workerRoundTrip },
  ]
  if (config !== 'one-cpu') {
    tasks.splice(2, 0, { id: 'pp-shm-spin', label: `wait/notify, both sides first spinning up to ${SPIN} Atomics.load`, role: 'target', fn: shmRoundTripSpin })
  }
  for (const t of tasks) {
    t.id += sfx
    t.row = row
  }
  results.push(...(await runGroup(tasks, { iterations: 200 })))
} finally {
  for (const m of [mem, spinMem, cMem]) {
    try {
      new Int32Array(m.buffer)[0] = 3
      m.notify(0)
    } catch {}
  }
  conn?.end()
  server?.close()
  await worker?.terminate()
  mem.close()
  spinMem.close()
  cMem.close()
  SharedMemory.unlink(name)
  SharedMemory.unlink(spinName)
  SharedMemory.unlink(cName)
  if (futexPeer.exe) fs.rmSync(futexPeer.exe, { force: true })
  try {
    fs.unlinkSync(sockPath)
  } catch {}
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)))
}
fs.writeFileSync(out, JSON.stringify({ results }, null, 2))
