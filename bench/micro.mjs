// Single-process rows (1-4): zero-copy loops, 64 MiB copies, 64-byte call overhead, open+close.
// Usage: node bench/micro.mjs OUT.json   (bench/index.mjs runs it, pinned with taskset)
import * as fs from 'node:fs'
import { loadAddon, runGroup, segmentName, MiB } from './lib.mjs'
import { ensurePeers } from './peers.mjs'

const out = process.argv[2]
if (typeof gc !== 'function') throw new Error('run with --expose-gc (row 4 releases mappings with a minor GC)')
const { SharedMemory } = loadAddon()
const results = []
const notes = []
const names = []
const log = (s) => process.stderr.write(s + '\n')

function withForcedCopy(f) {
  const prev = process.env.NODE_SHARED_MEM_FORCE_COPY
  process.env.NODE_SHARED_MEM_FORCE_COPY = '1'
  try {
    return f()
  } finally {
    if (prev === undefined) delete process.env.NODE_SHARED_MEM_FORCE_COPY
    else process.env.NODE_SHARED_MEM_FORCE_COPY = prev
  }
}

function create(tag, size) {
  const name = segmentName(tag)
  names.push(name)
  return [name, SharedMemory.create(name, size)]
}

// Every timed function is compiled from its own source text per task (`new Function` with a
// unique trailing comment): its own SharedFunctionInfo, so its own type feedback and optimized
// code. V8 caches `new Function` by source, so identical sources would share feedback across
// tasks; that once made the plain-ArrayBuffer Uint8Array loop 1.7-3.8x slower than the very
// same loop over the mapping, and the Float64Array loops 2x slower than they are.
let unique = 0
const freshPass = (view) =>
  new Function('a', `return function pass() { for (let i = 0; i < a.length; i++) a[i] = a[i] + 1 } // ${unique++}`)(view)
/** `n` calls of `op` per invocation, in a loop compiled for this task alone. */
const freshBatch = (n, op) =>
  new Function('op', 'n', `return function batch() { for (let i = 0; i < n; i++) op() } // ${unique++}`)(op, n)

let sink = 0

try {
  // ---- row 1: zero-copy sequential read + write of a 64 MiB mapping --------------------------
  {
    log('bench: row 1 (zero-copy 64 MiB loops)')
    const [, mem] = create('zc64', 64 * MiB)
    if (mem.requiresCopy) throw new Error('row 1 needs zero-copy mode; unset NODE_SHARED_MEM_FORCE_COPY')
    const plain = new ArrayBuffer(64 * MiB)
    const views = {
      shmU8: new Uint8Array(mem.buffer),
      plainU8: new Uint8Array(plain),
      shmF64: new Float64Array(mem.buffer),
      plainF64: new Float64Array(plain),
    }
    const bytes = 64 * MiB
    const task = (id, label, role, key) => ({ id, row: 'zero-copy', label, role, bytes, fn: freshPass(views[key]) })
    results.push(
      ...(await runGroup([
        task('zc-u8-shm', 'Uint8Array over SharedMemory.buffer (64 MiB, a[i] = a[i] + 1)', 'target', 'shmU8'),
        task('zc-u8-plain', 'Uint8Array over plain ArrayBuffer (same loop)', 'baseline', 'plainU8'),
        task('zc-f64-shm', 'Float64Array over SharedMemory.buffer (64 MiB, a[i] = a[i] + 1)', 'target', 'shmF64'),
        task('zc-f64-plain', 'Float64Array over plain ArrayBuffer (same loop)', 'baseline', 'plainF64'),
      ])),
    )
    sink += views.shmU8[0] + views.plainU8[0]
    mem.close()
  }

  // ---- row 2: copyFrom / copyTo of 64 MiB in caged (forced-copy) mode ------------------------
  {
    log('bench: row 2 (caged 64 MiB copies)')
    const [, mem] = withForcedCopy(() => create('cp64', 64 * MiB))
    if (!mem.requiresCopy) throw new Error('row 2: NODE_SHARED_MEM_FORCE_COPY=1 did not give a caged instance')
    new Uint8Array(mem.buffer).fill(7)
    mem.copyTo() // every page of the segment exists before timing
    mem.copyFrom()
    const a = Buffer.alloc(64 * MiB, 1)
    const b = Buffer.alloc(64 * MiB, 2)
    const bytes = 64 * MiB
    results.push(
      ...(await runGroup([
        { id: 'cp-from-64m', row: 'copy-64m', label: 'copyFrom() 64 MiB segment → caged buffer', role: 'target', bytes, fn: () => mem.copyFrom() },
        { id: 'cp-to-64m', row: 'copy-64m', label: 'copyTo() 64 MiB caged buffer → segment', role: 'target', bytes, fn: () => mem.copyTo() },
        { id: 'cp-buffer-64m', row: 'copy-64m', label: 'Buffer#copy between two 64 MiB Buffers (memcpy)', role: 'baseline', bytes, fn: () => a.copy(b) },
      ])),
    )
    mem.close()
  }

  // ---- row 3: copyFrom of 64 bytes: call overhead ---------------------------------------------
  {
    log('bench: row 3 (64-byte call overhead)')
    const [name, caged] = withForcedCopy(() => create('call', 4096))
    const zc = new SharedMemory(name)
    if (!caged.requiresCopy || zc.requiresCopy) throw new Error('row 3: wrong modes')
    const N = 1000
    const batch = (op) => freshBatch(N, op)
    results.push(
      ...(await runGroup([
        { id: 'call-copyfrom-caged', row: 'call-64b', label: 'copyFrom(0, 0, 64), caged instance (size re-check + 64-byte memcpy)', role: 'target', batch: N, fn: batch(() => caged.copyFrom(0, 0, 64)) },
        { id: 'call-copyto-caged', row: 'call-64b', label: 'copyTo(0, 0, 64), caged instance', role: 'target', batch: N, fn: batch(() => caged.copyTo(0, 0, 64)) },
        { id: 'call-copyfrom-noop', row: 'call-64b', label: 'copyFrom(0, 0, 64), zero-copy instance (same argument checks, no copy)', role: 'baseline', batch: N, fn: batch(() => zc.copyFrom(0, 0, 64)) },
        { id: 'call-closed-getter', row: 'call-64b', label: '`closed` getter (cheapest native call on the class)', role: 'baseline', batch: N, fn: batch(() => { sink ^= zc.closed ? 1 : 0 }) },
      ])),
    )
    zc.close()
    caged.close()
  }

  // ---- row 4: open + close of a 4 KiB segment -----------------------------------------------
  {
    log('bench: row 4 (open + close 4 KiB)')
    const peers = ensurePeers({ log })
    const [name, keep] = create('open', 4096)
    const file = `/dev/shm/${name}`
    if (!fs.existsSync(file)) throw new Error(`row 4: ${file} missing (segments are not under /dev/shm?)`)
    const N = 100
    const batch = (op) => freshBatch(N, op)
    // Every task gets the same untimed `afterEach`: a minor GC plus one event-loop turn, so
    // that what the GC and Node's deferred finalizers release between samples does not pile
    // up (mmap-io unmaps only there: without it, live mappings pass vm.max_map_count and
    // every mmap fails with ENOMEM).
    const turn = () => new Promise((r) => setImmediate(r))
    const release = async () => {
      gc({ type: 'minor' })
      await turn()
    }
    const tasks = [
      { id: 'open-nsm', row: 'open-close', label: 'new SharedMemory(name) + close(), zero-copy (shm_open, fstat, mmap, munmap, close)', role: 'target', batch: N, fn: batch(() => new SharedMemory(name).close()) },
      {
        id: 'open-nsm-caged', row: 'open-close', label: 'new SharedMemory(name) + close(), caged (adds a 4 KiB V8 buffer + copy)', role: 'target', batch: N,
        fn: batch(() => new SharedMemory(name).close()),
        caged: true, // runs with NODE_SHARED_MEM_FORCE_COPY=1
      },
      { id: 'open-fs', row: 'open-close', label: 'fs.openSync + fs.closeSync of the same /dev/shm file (no mapping)', role: 'baseline', batch: N, fn: batch(() => fs.closeSync(fs.openSync(file, 'r+'))) },
    ]
    const mm = peers['mmap-io']
    if (mm.module) {
      const m = mm.module
      const mapOne = () => {
        const fd = fs.openSync(file, 'r+')
        const buf = m.map(4096, m.PROT_READ | m.PROT_WRITE, m.MAP_SHARED, fd, 0)
        fs.closeSync(fd)
        sink ^= buf.length
      }
      tasks.push(
        {
          id: 'open-mmap-io', row: 'open-close', role: 'baseline', batch: N, async: true,
          label: `mmap-io@${mm.info.version}: openSync + map(4096, RW, SHARED) + closeSync; unmap = minor GC + loop turn, timed`,
          fn: new Function('mapOne', 'n', 'release', `return async function cycle() { for (let i = 0; i < n; i++) mapOne(); await release() } // ${unique++}`)(mapOne, N, release),
        },
        {
          id: 'open-mmap-io-call', row: 'open-close', role: 'baseline', batch: N,
          label: `mmap-io@${mm.info.version}: the same, unmap (GC) left out of the timed window`,
          fn: batch(mapOne),
        },
      )
    }
    notes.push({ peer: 'mmap-io', ...mm.info })
    // shm-typed-array (POSIX-name mode) keeps its own 8-byte size header at the start of a
    // segment, so it opens only segments it created: it gets one of its own. get() = shm_open,
    // fstat, mmap, close(fd); detach() = munmap.
    const sta = peers['shm-typed-array']
    if (sta.module) {
      const s = sta.module
      const staName = `/${segmentName('sta')}`
      names.push(staName.slice(1))
      if (!s.create(4096, 'Buffer', staName)) throw new Error(`row 4: shm-typed-array could not create ${staName}`)
      const openOne = () => {
        const buf = s.get(staName, 'Buffer')
        sink ^= buf.length
        s.detach(staName)
      }
      tasks.push({
        id: 'open-shm-typed-array', row: 'open-close', role: 'baseline', batch: N,
        label: `shm-typed-array@${sta.info.version}: get('/name', 'Buffer') + detach('/name') (POSIX mode; its own segment)`,
        fn: batch(openOne),
      })
    } else {
      results.push({ id: 'open-shm-typed-array', row: 'open-close', role: 'baseline', label: `shm-typed-array@${sta.info.version}`, error: sta.info.note })
    }
    for (const t of tasks) {
      t.afterEach = release
      // The caged task needs the env var while it runs; wrap its function.
      if (t.caged) {
        const inner = t.fn
        t.fn = () => withForcedCopy(inner)
      }
    }
    const check = withForcedCopy(() => new SharedMemory(name))
    if (!check.requiresCopy) throw new Error('row 4: caged open did not give a caged instance')
    check.close()
    results.push(...(await runGroup(tasks)))
    // Informative: leave the instance to the GC, as mmap-io leaves its mapping.
    results.push(
      ...(await runGroup(
        [
          {
            id: 'open-nsm-gc', row: 'open-close', role: 'target', batch: N, async: true,
            label: 'new SharedMemory(name), no close(): released by GC (minor GC + loop turn, timed)',
            fn: new Function('SharedMemory', 'name', 'n', 'release', `return async function cycle() { for (let i = 0; i < n; i++) new SharedMemory(name); await release() } // ${unique++}`)(SharedMemory, name, N, release),
          },
        ],
        { rounds: 2 },
      )),
    )
    for (let i = 0; i < 5; i++) await turn()
    if (!mm.module) results.push({ id: 'open-mmap-io', row: 'open-close', role: 'baseline', label: `mmap-io@${mm.info.version}`, error: mm.info.note })
    keep.close()
  }
} finally {
  for (const n of names) {
    try {
      SharedMemory.unlink(n)
    } catch {}
  }
}

fs.writeFileSync(out, JSON.stringify({ results, notes, sink }, null, 2))
