// One channel message per iteration in one process (a producer handle and a consumer handle on
// the same channel), for callgrind: instructions per message of the hot paths, independent of
// the machine's load. bench/profile/channel-callgrind.sh runs it twice with different counts and
// divides the difference (start-up and warm-up cancel out).
//
//   node bench/profile/channel-loop.mjs OP MESSAGES [SIZE] [before-dir]
//   OP: send-receiveInto | send-receiveInto-timeout (both calls with { timeout }) |
//       send-receiveInto-m2o | send-receive | claim-commit | send-view | sendString-receiveInto |
//       sendMany-drain | sendMany-drainRange (per batch of 16) (-m2o: a many-to-one channel)
//   With before-dir (a checkout of an earlier release build) the class comes from there.
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { ROOT, segmentName } from '../lib.mjs'

const [op, callsArg, sizeArg, beforeDir] = process.argv.slice(2)
const calls = Number(callsArg)
const size = Number(sizeArg ?? 64)
const req = createRequire(path.join(ROOT, 'package.json'))
const { Channel } = beforeDir ? createRequire(path.resolve(beforeDir, 'package.json'))(path.resolve(beforeDir)) : req(ROOT)
const name = segmentName('chprof')
const m2o = op.endsWith('-m2o')
const base = op.replace(/-m2o$/, '')
const tx = Channel.create(name, { capacity: 1 << 16, mode: m2o ? 'many-to-one' : 'one-to-one' })
const rx = new Channel(name)
const data = new Uint8Array(size).fill(0x5a)
const text = 'x'.repeat(size)
const into = new Uint8Array(size)
const BATCH = 16
const batchData = Array.from({ length: BATCH }, () => data)
let sink = 0
const opts = { timeout: 60_000 }
let sum = 0
const onView = (v) => (sum += v[0])
const onRange = (ring, offset) => (sum += ring[offset])
const STEP = {
  'send-receiveInto': () => (tx.send(data), rx.receiveInto(into)),
  'send-receiveInto-timeout': () => (tx.send(data, opts), rx.receiveInto(into, opts)),
  'send-receive': () => (tx.send(data), rx.receive().length),
  'claim-commit': () => (tx.claim(size).fill(1, 0, 1), tx.commit(), rx.receiveInto(into)),
  'sendString-receiveInto': () => (tx.send(text), rx.receiveInto(into)),
  'send-view': () => {
    tx.send(data)
    const v = rx.receiveView()
    const r = v[0]
    rx.release()
    return r
  },
  // BATCH messages per call: per-message cost = Ir / (calls * BATCH) — the script divides.
  'sendMany-drain': () => {
    tx.sendMany(batchData)
    sum = 0
    rx.drain(onView)
    return sum
  },
  'sendMany-drainRange': () => {
    tx.sendMany(batchData)
    sum = 0
    rx.drainRange(onRange)
    return sum
  },
}
const step = STEP[base]
if (!step) throw new Error(`unknown op ${op}`)
const loop = (n) => {
  for (let i = 0; i < n; i++) sink = (sink + step()) | 0
}
loop(20000) // warm-up: optimized by then
const t0 = process.hrtime.bigint()
loop(calls)
const ns = Number(process.hrtime.bigint() - t0) / calls
console.log(`${op}: ${calls} iterations, ${ns.toFixed(1)} ns each (wall clock) (${sink & 1})`)
tx.close()
rx.close()
Channel.unlink(name)
