// Per-call costs (issue 10): property reads, no-op and 64-byte copies, atomics, against plain JS,
// node-shared-mem 2.1 (built from its source, bench/peers.mjs) and, if BENCH_BEFORE names a
// checkout with its own release build, the previous binding, in the same process.
//
// Usage: node bench/hot.mjs OUT.json zero-copy|many|caged
//   zero-copy: rows 7, 8, 10, 12 with two instances (this process must not have
//              NODE_SHARED_MEM_FORCE_COPY set);
//   many:      rows 7, 8, 10 with 8 instances, each from `new SharedMemory(name)`, in a process of
//              their own: the class's methods and getters are shared by every task of a process,
//              so their type feedback (and V8's inlined code) would carry the 8-instance case into
//              the two-instance tasks;
//   caged:     rows 9 and 11 (bench/index.mjs starts it with NODE_SHARED_MEM_FORCE_COPY=1).
//
// Every timed function is compiled from its own source (a unique trailing comment, see
// bench/micro.mjs: V8 caches `new Function` by source and would share type feedback between
// tasks). Each loop body reads its receiver from a two-element array (`ms[i & 1]`, two instances
// of the same class) so that V8 cannot treat the receiver as a constant and fold the field
// loads away, and sums every result into a local that is written out once per batch (no dead
// code). The baselines use the same loop shape, the same consuming expression, and receivers from
// the same kind of two-element array, so the loop's own cost is in both sides of every ratio.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createRequire } from 'node:module'
import { loadAddon, runGroup, segmentName } from './lib.mjs'
import { ensurePeers } from './peers.mjs'

const [out, mode] = process.argv.slice(2)
if (!['zero-copy', 'many', 'caged'].includes(mode)) throw new Error('usage: hot.mjs OUT.json zero-copy|many|caged')
const caged = mode === 'caged'
if (caged !== (process.env.NODE_SHARED_MEM_FORCE_COPY === '1')) throw new Error(`hot.mjs ${mode}: NODE_SHARED_MEM_FORCE_COPY must be ${caged ? '1' : 'unset'}`)

const TIME = Number(process.env.BENCH_HOT_TIME_MS ?? 100)
const N = 10000 // operations per sample
const log = (s) => process.stderr.write(s + '\n')
const { SharedMemory } = loadAddon()
const peers = ensurePeers({ log })
const results = []
const names = []

// The previous binding (napi-rs class, git 423a184): a checkout with its release build.
let Before = null
if (process.env.BENCH_BEFORE) {
  const dir = path.resolve(process.env.BENCH_BEFORE)
  Before = createRequire(path.join(dir, 'package.json'))(dir).SharedMemory
}
const beforeRev = process.env.BENCH_BEFORE_REV ?? 'previous binding'

const box = { v: 0 }
/** Thrown to end the 8-instance run after its rows (the `finally` still closes and unlinks). */
class Done extends Error {}
let unique = 0
/**
 * A batch of N operations: `expr` is evaluated once per iteration with `m` = `ms[i & 1]` (or
 * `ms[i & 7]` over 8 receivers) and
 * `o` = (i & 15) << 6 (0, 64, …, 960: a 64-byte-aligned offset that changes every iteration);
 * its value is summed into `s`. `env` supplies the free names of `expr`.
 */
function batch(expr, env, n = N) {
  const keys = Object.keys(env)
  const mask = env.ms.length - 1 // 2 receivers, or 8 for the many-instances task
  if ((mask & (mask + 1)) !== 0) throw new Error('batch: ms.length must be a power of two')
  const src =
    `return function batch() { let s = 0; for (let i = 0; i < ${n}; i++) { const m = ms[i & ${mask}]; const o = (i & 15) << 6; ` +
    `s = (s + (${expr})) | 0 } box.v = (box.v + s) | 0 } // ${unique++}`
  return new Function(...keys, 'box', src)(...keys.map((k) => env[k]), box)
}
const U = undefined
/** Operations per sample for calls that take 100 ns or more (more samples per round). */
const N_SLOW = 1000
/** Instances to close at the end. */
const closeAtEnd = []
const extra = closeAtEnd

/** A task of this run: row, id, label, role, the loop expression and its environment. */
const T = (row, id, label, role, expr, env, n = N) => ({ id, row, label, role, batch: n, fn: batch(expr, env, n) })
/** A plain object with the instance's property values (same types), as 2.x's own properties. */
const plainLike = (m) => ({
  name: m.name,
  length: m.length,
  access: m.access,
  buffer: new ArrayBuffer(8),
  requiresCopy: m.requiresCopy,
  closed: m.closed,
  sharedBuffer: m.sharedBuffer,
})
/** A task that could not run (a peer that failed to build): shown as NOT RUN with the reason. */
const missing = (row, id, label, role, why) => ({ id, row, label, role, error: why })

function open(tag, size = 4096) {
  const name = segmentName(tag)
  names.push(name)
  const a = SharedMemory.create(name, size)
  return [name, a, new SharedMemory(name)]
}

async function group(tasks) {
  const runnable = tasks.filter((t) => !t.error)
  const res = await runGroup(runnable, { time: TIME })
  return tasks.map((t) => (t.error ? { id: t.id, row: t.row, label: t.label, role: t.role, error: t.error } : res.find((r) => r.id === t.id)))
}

const p21 = peers[caged ? 'node-shared-mem-2.1-caged' : 'node-shared-mem-2.1']
if (mode === 'many') p21.module = null // not used there
const M21 = p21.module
const why21 = p21.info.note

try {
  const [name, a, b] = open(mode)
  const ms = [a, b]
  closeAtEnd.push(a, b)
  if (ms.some((m) => m.requiresCopy !== caged)) throw new Error(`hot.mjs ${mode}: requiresCopy is ${a.requiresCopy}`)
  new Uint8Array(a.buffer).fill(1)
  a.copyTo()
  const ms21 = M21 ? [new M21.SharedMemory(name, 4096), new M21.SharedMemory(name, 4096)] : null
  closeAtEnd.push(...(ms21 ?? []))
  if (ms21 && ms21.some((m) => m.requiresCopy !== caged)) throw new Error(`hot.mjs ${mode}: 2.1's requiresCopy is ${ms21[0].requiresCopy}`)
  const msB = Before && mode !== 'many' ? [new Before(name), new Before(name)] : null

  if (mode === 'many') {
    // 8 instances opened the way programs open them, `new SharedMemory(name)`, against 8 plain
    // objects of one shape (as 8 instances of one JS class would be), an empty method on 8
    // instances of one class, and Atomics.add on 8 Int32Arrays.
    log('bench: rows 7, 8, 10 with 8 instances')
    const many = Array.from({ length: 8 }, () => new SharedMemory(name))
    extra.push(...many)
    class Empty {
      noop(x, y, z) {}
    }
    const plain8 = Array.from({ length: 8 }, () => plainLike(a))
    const i32x8 = Array.from({ length: 8 }, () => new Int32Array(new ArrayBuffer(4096)))
    results.push(
      ...(await group([
        T('props', 'prop8-plain-length', '8 plain objects of one shape, obj.length (receiver rotates over the 8) [8-instance process]', 'baseline', 'm.length ? 1 : 0', { ms: plain8 }),
        T('props', 'prop8-length', '8 instances, each from new SharedMemory(name): mem.length [8-instance process]', 'target', 'm.length ? 1 : 0', { ms: many }),
        T('props', 'prop8-plain-buffer', '8 plain objects of one shape, obj.buffer [8-instance process]', 'baseline', 'm.buffer ? 1 : 0', { ms: plain8 }),
        T('props', 'prop8-buffer', '8 instances: mem.buffer [8-instance process]', 'target', 'm.buffer ? 1 : 0', { ms: many }),
      ])),
      ...(await group([
        T('noop-copy', 'noop8-empty', 'empty JS method call on 8 instances of one class [8-instance process]', 'baseline', 'm.noop(o, o, 64) ? 0 : 1', { ms: Array.from({ length: 8 }, () => new Empty()) }),
        T('noop-copy', 'noop8-copyfrom', '8 instances: mem.copyFrom(o, o, 64), zero-copy [8-instance process]', 'target', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms: many }),
      ])),
      ...(await group([
        T('atomics', 'js8-atomics-add', 'Atomics.add on 8 plain Int32Arrays [8-instance process]', 'baseline', 'Atomics.add(m, o >> 6, 1)', { ms: i32x8 }),
        T('atomics', 'zc8-atomic-add', '8 instances: mem.atomicAdd(off, 1), zero-copy [8-instance process]', 'target', 'm.atomicAdd(o >> 4, 1)', { ms: many }),
      ])),
    )
    throw new Done()
  }
  closeAtEnd.push(...(msB ?? []))
  if (msB && msB.some((m) => m.requiresCopy !== caged)) throw new Error(`hot.mjs ${mode}: the previous binding's requiresCopy is ${msB[0].requiresCopy}`)

  if (!caged) {
    // ---- row 7: property reads ------------------------------------------------------------
    log('bench: row 7 (property reads)')
    const PROPS = ['name', 'length', 'access', 'buffer', 'requiresCopy', 'closed', 'sharedBuffer']
    const OLD = ['name', 'length', 'access', 'buffer', 'requiresCopy'] // 2.1 has no closed/sharedBuffer
    // The baseline of each property: the same read of an own data property holding a value of
    // the same type (ToBoolean of a string, a number, an object, a boolean, null differ).
    const plain = [plainLike(a), plainLike(a)]
    const tasks = []
    for (const p of PROPS) {
      tasks.push(
        T('props', `prop-plain-${p}`, `plain JS object, own data property obj.${p} (same value type)`, 'baseline', `m.${p} ? 1 : 0`, { ms: plain }),
        T('props', `prop-${p}`, `mem.${p}`, 'target', `m.${p} ? 1 : 0`, { ms, u: U }),
      )
    }
    for (const p of OLD) {
      tasks.push(
        ms21
          ? T('props', `prop21-${p}`, `node-shared-mem@2.1 mem.${p} (own data property)`, 'baseline', `m.${p} ? 1 : 0`, { ms: ms21, u: U })
          : missing('props', `prop21-${p}`, `node-shared-mem@2.1 mem.${p}`, 'baseline', why21),
      )
    }
    if (msB) for (const p of ['length', 'buffer', 'closed']) tasks.push(T('props', `propB-${p}`, `${beforeRev}: mem.${p} (napi-rs class getter)`, 'before', `m.${p} ? 1 : 0`, { ms: msB, u: U }, N_SLOW))
    results.push(...(await group(tasks)))
  }

  if (!caged) {
    // ---- row 8: zero-copy copyFrom / copyTo (no-ops that check their arguments) -----------
    log('bench: row 8 (zero-copy no-op copies)')
    class Empty {
      noop(x, y, z) {}
    }
    const tasks = [
      T('noop-copy', 'noop-empty', 'empty JS method call, obj.noop(o, o, 64)', 'baseline', 'm.noop(o, o, 64) ? 0 : 1', { ms: [new Empty(), new Empty()], u: U }),
      T('noop-copy', 'noop-copyfrom', 'mem.copyFrom(o, o, 64), zero-copy (argument checks only)', 'target', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms, u: U }),
      T('noop-copy', 'noop-copyto', 'mem.copyTo(o, o, 64), zero-copy (argument checks only)', 'target', 'm.copyTo(o, o, 64) ? 0 : 1', { ms, u: U }),
      ms21
        ? T('noop-copy', 'noop21-copyfrom', 'node-shared-mem@2.1 copyFrom(o, o, 64), zero-copy (native call, returns at IsExternal)', 'baseline', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms: ms21, u: U }, N_SLOW)
        : missing('noop-copy', 'noop21-copyfrom', 'node-shared-mem@2.1 copyFrom(o, o, 64)', 'baseline', why21),
    ]
    if (msB) tasks.push(T('noop-copy', 'noopB-copyfrom', `${beforeRev}: copyFrom(o, o, 64), zero-copy`, 'before', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms: msB, u: U }, N_SLOW))
    results.push(...(await group(tasks)))
  }

  if (caged) {
    // ---- row 9: caged copies of 64 bytes --------------------------------------------------
    log('bench: row 9 (caged 64-byte copies)')
    const bufs = [Buffer.alloc(4096, 1), Buffer.alloc(4096, 2)]
    const tasks = [
      T('caged-copy', 'cg-copyfrom', 'mem.copyFrom(o, o, 64), caged (fault-guarded 64-byte copy, no syscall)', 'target', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms, u: U }, N_SLOW),
      T('caged-copy', 'cg-copyto', 'mem.copyTo(o, o, 64), caged', 'target', 'm.copyTo(o, o, 64) ? 0 : 1', { ms, u: U }, N_SLOW),
      ...(ms21
        ? [
            T('caged-copy', 'cg21-copyfrom', 'node-shared-mem@2.1 copyFrom(o, o, 64), caged (ObjectWrap call + memcpy, no size check)', 'baseline', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms: ms21, u: U }, N_SLOW),
            T('caged-copy', 'cg21-copyto', 'node-shared-mem@2.1 copyTo(o, o, 64), caged', 'baseline', 'm.copyTo(o, o, 64) ? 0 : 1', { ms: ms21, u: U }, N_SLOW),
          ]
        : [missing('caged-copy', 'cg21-copyfrom', 'node-shared-mem@2.1 copyFrom(o, o, 64), caged', 'baseline', p21.info.note), missing('caged-copy', 'cg21-copyto', 'node-shared-mem@2.1 copyTo(o, o, 64), caged', 'baseline', why21)]),
      T('caged-copy', 'cg-buffer-copy', 'Buffer#copy of 64 bytes, buf.copy(other, o, o, o + 64)', 'baseline', 'm.copy(d, o, o, o + 64)', { ms: bufs, d: Buffer.alloc(4096) }),
    ]
    if (msB) tasks.push(T('caged-copy', 'cgB-copyfrom', `${beforeRev}: copyFrom(o, o, 64), caged`, 'before', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms: msB, u: U }, N_SLOW))
    results.push(...(await group(tasks)))
  }

  {
    // ---- rows 10 / 11: atomics ------------------------------------------------------------
    log(`bench: row ${caged ? 11 : 10} (${mode} atomics)`)
    const row = caged ? 'caged-atomics' : 'atomics'
    const k = caged ? 'cg-' : 'zc-'
    const i32 = [new Int32Array(new ArrayBuffer(4096)), new Int32Array(new ArrayBuffer(4096))]
    // `o >> 4` = (i & 15) << 2: 16 different 4-aligned byte offsets; `o >> 6` the Int32 index.
    const tasks = [
      T(row, `${k}atomic-load`, `mem.atomicLoad(off), ${mode}`, 'target', 'm.atomicLoad(o >> 4)', { ms }),
      T(row, `${k}atomic-store`, `mem.atomicStore(off, i), ${mode}`, 'target', 'm.atomicStore(o >> 4, i)', { ms }),
      T(row, `${k}atomic-add`, `mem.atomicAdd(off, 1), ${mode}`, 'target', 'm.atomicAdd(o >> 4, 1)', { ms }),
      T(row, `${k}atomic-cas`, `mem.atomicCompareExchange(off, i, i + 1), ${mode}`, 'target', 'm.atomicCompareExchange(o >> 4, i, i + 1)', { ms }),
    ]
    if (!caged) {
      tasks.push(
        T(row, 'js-atomics-load', 'Atomics.load(int32, idx) on a plain Int32Array', 'baseline', 'Atomics.load(m, o >> 6)', { ms: i32 }),
        T(row, 'js-atomics-store', 'Atomics.store(int32, idx, i)', 'baseline', 'Atomics.store(m, o >> 6, i)', { ms: i32 }),
        T(row, 'js-atomics-add', 'Atomics.add(int32, idx, 1)', 'baseline', 'Atomics.add(m, o >> 6, 1)', { ms: i32 }),
        T(row, 'js-atomics-cas', 'Atomics.compareExchange(int32, idx, i, i + 1)', 'baseline', 'Atomics.compareExchange(m, o >> 6, i, i + 1)', { ms: i32 }),
      )
    } else {
      tasks.push(T(row, 'cg-atomics-copyfrom', 'mem.copyFrom(o, o, 64), caged (the same as row 9, paired here)', 'baseline', 'm.copyFrom(o, o, 64) ? 0 : 1', { ms, u: U }, N_SLOW))
    }
    if (msB) {
      tasks.push(
        T(row, `${k}atomicB-load`, `${beforeRev}: atomicLoad(off), ${mode}`, 'before', 'm.atomicLoad(o >> 4)', { ms: msB }, N_SLOW),
        T(row, `${k}atomicB-add`, `${beforeRev}: atomicAdd(off, 1), ${mode}`, 'before', 'm.atomicAdd(o >> 4, 1)', { ms: msB }, N_SLOW),
      )
    }
    results.push(...(await group(tasks)))
  }

  if (!caged) {
    // ---- row 12: a 64-byte message through a ring, producer and consumer in one process ----
    log('bench: row 12 (ring hand-off, shared-memory-disruptor)')
    const R = 'ring'
    const N_RING = 1000
    const tasks = []
    // This package: a single-producer/single-consumer ring of 16 slots of 64 bytes after an
    // 8-byte header (head, tail), published with atomicStore and observed with atomicLoad.
    const [, ring] = open('ring', 8 + 16 * 64)
    const bytes = new Uint8Array(ring.buffer)
    const msg = new Uint8Array(64).fill(9)
    const state = { head: 0 }
    const oneMessage = () => {
      const h = state.head
      bytes.set(msg, 8 + (h & 15) * 64) // producer: write the slot, then publish head
      ring.atomicStore(0, (h + 1) | 0)
      const seen = ring.atomicLoad(0) // consumer: observe head, read the slot, release it
      const v = bytes[8 + (h & 15) * 64]
      ring.atomicStore(4, (h + 1) | 0)
      state.head = (h + 1) | 0
      return v + seen
    }
    tasks.push(T(R, 'ring-nsm', 'this package: slot write + atomicStore(head); atomicLoad(head) + slot read + atomicStore(tail)', 'target', 'm()', { ms: [oneMessage, oneMessage] }, N_RING))
    const pd = peers['shared-memory-disruptor']
    if (pd.module) {
      const dname = `/${segmentName('disruptor')}`
      names.push(dname.slice(1))
      const d = new pd.module.Disruptor(dname, 16, 64, 1, 0, true, false)
      const src = Buffer.alloc(64, 9)
      const viaDisruptor = () => {
        const slot = d.produceClaimSync()
        src.copy(slot)
        d.produceCommitSync()
        const got = d.consumeNewSync()
        const v = got[0][0] + got.length
        d.consumeCommit()
        return v
      }
      if (viaDisruptor() !== 10) throw new Error('row 12: shared-memory-disruptor did not hand the message over')
      tasks.push(T(R, 'ring-disruptor', `shared-memory-disruptor@${pd.info.version}: produceClaimSync + copy 64 B + produceCommitSync; consumeNewSync + read + consumeCommit`, 'baseline', 'm()', { ms: [viaDisruptor, viaDisruptor] }, N_RING))
    } else {
      tasks.push(missing(R, 'ring-disruptor', 'shared-memory-disruptor', 'baseline', pd.info.note))
    }
    results.push(...(await group(tasks)))
    ring.close()
  }

} catch (e) {
  if (!(e instanceof Done)) throw e
} finally {
  for (const m of closeAtEnd) m.close()
  for (const n of names) {
    try {
      SharedMemory.unlink(n)
    } catch {}
  }
}

fs.writeFileSync(out, JSON.stringify({ mode, results, sink: box.v }, null, 2))
