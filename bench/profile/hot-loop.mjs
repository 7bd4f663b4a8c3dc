// One hot call in a loop, for profilers (callgrind, perf): warm-up until V8 has optimized the
// loop, then `calls` timed calls. With callgrind, run it twice with different `calls` and divide
// the difference of the totals by the difference of the calls: instructions per call, free of
// the start-up cost and of the machine's load (bench/profile/callgrind.sh does exactly that).
//
//   node bench/profile/hot-loop.mjs OP CALLS [before-dir]
//   OP: plain-prop | empty-method | length | buffer | closed | copyfrom-noop | atomic-load |
//       atomics-load | atomic-add | atomics-add | copyfrom-caged | copyfrom21-caged |
//       atomic-load-caged
//   With before-dir (a checkout of an earlier release build) the class comes from there.
import { createRequire } from 'node:module'
import * as path from 'node:path'
import { ROOT, segmentName } from '../lib.mjs'

const [op, callsArg, beforeDir] = process.argv.slice(2)
const calls = Number(callsArg)
const req = createRequire(path.join(ROOT, 'package.json'))
const { SharedMemory } = beforeDir ? createRequire(path.resolve(beforeDir, 'package.json'))(path.resolve(beforeDir)) : req(ROOT)
const caged = op.endsWith('-caged')
if (caged !== (process.env.NODE_SHARED_MEM_FORCE_COPY === '1')) throw new Error(`${op}: NODE_SHARED_MEM_FORCE_COPY must be ${caged ? '1' : 'unset'}`)

const name = segmentName('prof')
const a = SharedMemory.create(name, 4096)
const b = new SharedMemory(name)
let ms = [a, b]
const U = undefined
class Empty {
  noop(x, y, z) {}
}
const EXPR = {
  'plain-prop': ['m.length ? 1 : 0', () => [{ length: 1 }, { length: 2 }]],
  'empty-method': ['m.noop(o, o, 64) ? 0 : 1', () => [new Empty(), new Empty()]],
  length: ['m.length ? 1 : 0'],
  buffer: ['m.buffer ? 1 : 0'],
  closed: ['m.closed ? 1 : 0'],
  'copyfrom-noop': ['m.copyFrom(o, o, 64) ? 0 : 1'],
  'atomic-load': ['m.atomicLoad(o >> 4)'],
  'atomics-load': ['Atomics.load(m, o >> 6)', () => [new Int32Array(1024), new Int32Array(1024)]],
  'atomic-add': ['m.atomicAdd(o >> 4, 1)'],
  'atomics-add': ['Atomics.add(m, o >> 6, 1)', () => [new Int32Array(1024), new Int32Array(1024)]],
  'copyfrom-caged': ['m.copyFrom(o, o, 64) ? 0 : 1'],
  'atomic-load-caged': ['m.atomicLoad(o >> 4)'],
  'copyfrom21-caged': [
    'm.copyFrom(o, o, 64) ? 0 : 1',
    () => {
      const M = createRequire(path.join(ROOT, '.bench', 'peers', 'node-shared-mem-2.1-caged', 'package.json'))('node-shared-mem')
      const r = [new M.SharedMemory(name, 4096), new M.SharedMemory(name, 4096)]
      if (!r[0].requiresCopy) throw new Error('2.1 caged build is not caged')
      return r
    },
  ],
}
const [expr, make] = EXPR[op] ?? []
if (!expr) throw new Error(`unknown op ${op}`)
if (make) ms = make()
const batch = new Function(
  'ms',
  'u',
  `return function batch(n) { let s = 0; for (let i = 0; i < n; i++) { const m = ms[i & 1]; const o = (i & 15) << 6; s = (s + (${expr})) | 0 } return s }`,
)(ms, U)
let sink = 0
for (let k = 0; k < 200; k++) sink ^= batch(1000) // warm-up: optimized by then
const t0 = process.hrtime.bigint()
sink ^= batch(calls)
const ns = Number(process.hrtime.bigint() - t0) / calls
console.log(`${op}: ${calls} calls, ${ns.toFixed(2)} ns per call (wall clock, includes the loop) (${sink & 1})`)
a.close()
b.close()
SharedMemory.unlink(name)
