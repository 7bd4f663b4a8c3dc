// Single-process rows (1-4): zero-copy loops, 64 MiB copies, 64-byte call overhead, open+close.
// Usage: node bench/micro.mjs OUT.json zero-copy|caged   (bench/index.mjs runs it twice, pinned
// with taskset; the caged run with NODE_SHARED_MEM_FORCE_COPY=1 in its environment: the addon
// reads that variable once per process). zero-copy: rows 1, 3 (its zero-copy tasks) and 4;
// caged: row 2, row 3's caged tasks and row 4's caged open.
import * as fs from 'node:fs'
import { loadAddon, runGroup, segmentName, MiB } from './lib.mjs'
import { ensurePeers } from './peers.mjs'

const [out, mode] = process.argv.slice(2)
if (mode !== 'zero-copy' && mode !== 'caged') throw new Error('usage: micro.mjs OUT.json zero-copy|caged')
const CAGED = mode === 'caged'
if (CAGED !== (process.env.NODE_SHARED_MEM_FORCE_COPY === '1')) throw new Error(`micro.mjs ${mode}: NODE_SHARED_MEM_FORCE_COPY must be ${CAGED ? '1' : 'unset'}`)
if (typeof gc !== 'function') throw new Error('run with --expose-gc (row 4 releases mappings with a minor GC)')
const { SharedMemory } = loadAddon()
const results = []
const notes = []
const names = []
const log = (s) => process.stderr.write(s + '\n')

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
/** Thrown to end the caged run after its last row (the `finally` still unlinks). */
class Done extends Error {}

try {
  // ---- row 1: zero-copy sequential read + write of a 64 MiB mapping --------------------------
  if (!CAGED) {
    log('bench: row 1 (zero-copy 64 MiB loops)')
    const [, mem] = create('zc64', 64 * MiB)
    if (mem.requiresCopy) throw new Error('row 1 needs zero-copy mode; unset NODE_SHARED_MEM_FORCE_COPY')
    const plain = new ArrayBuffer(64 * MiB)
    // Peer: shm-typed-array in POSIX-name mode, a 64 MiB segment of its own.
    const sta = ensurePeers({ log })['shm-typed-array']
    let staU8 = null
    const staName = `/${segmentName('sta64')}`
    if (sta.module) {
      names.push(staName.slice(1))
      staU8 = sta.module.create(64 * MiB, 'Uint8Array', staName)
    }
    const views = {
      shmU8: new Uint8Array(mem.buffer),
      plainU8: new Uint8Array(plain),
      staU8,
      shmF64: new Float64Array(mem.buffer),
      plainF64: new Float64Array(plain),
    }
    const bytes = 64 * MiB
    const task = (id, label, role, key) => ({ id, row: 'zero-copy', label, role, bytes, fn: freshPass(views[key]) })
    results.push(
      ...(await runGroup([
        task('zc-u8-shm', 'Uint8Array over SharedMemory.buffer (64 MiB, a[i] = a[i] + 1)', 'target', 'shmU8'),
        task('zc-u8-plain', 'Uint8Array over plain ArrayBuffer (same loop)', 'baseline', 'plainU8'),
        ...(staU8 ? [task('zc-u8-sta', `shm-typed-array@${sta.info.version} Uint8Array over its own 64 MiB POSIX segment (same loop)`, 'baseline', 'staU8')] : []),
        task('zc-f64-shm', 'Float64Array over SharedMemory.buffer (64 MiB, a[i] = a[i] + 1)', 'target', 'shmF64'),
        task('zc-f64-plain', 'Float64Array over plain ArrayBuffer (same loop)', 'baseline', 'plainF64'),
      ])),
    )
    sink += views.shmU8[0] + views.plainU8[0]
    if (!staU8) results.push({ id: 'zc-u8-sta', row: 'zero-copy', role: 'baseline', label: 'shm-typed-array', error: sta.info.note })
    else sta.module.detach(staName, true)
    mem.close()
  }

  // ---- row 2: copyFrom / copyTo of 64 MiB in caged (forced-copy) mode ------------------------
  if (CAGED) {
    log('bench: row 2 (caged 64 MiB copies)')
    const [, mem] = create('cp64', 64 * MiB)
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
    // The caged tasks run in the caged process, the others in the zero-copy one: their ratios
    // pair round i of one process with round i of the other (not back to back).
    const [, mem] = create('call', 4096)
    if (mem.requiresCopy !== CAGED) throw new Error('row 3: wrong mode')
    const N = 1000
    const batch = (op) => freshBatch(N, op)
    results.push(
      ...(await runGroup(
        CAGED
          ? [
              { id: 'call-copyfrom-caged', row: 'call-64b', label: 'copyFrom(0, 0, 64), caged instance (fault-guarded 64-byte copy, no syscall) [caged process]', role: 'target', batch: N, fn: batch(() => mem.copyFrom(0, 0, 64)) },
              { id: 'call-copyto-caged', row: 'call-64b', label: 'copyTo(0, 0, 64), caged instance [caged process]', role: 'target', batch: N, fn: batch(() => mem.copyTo(0, 0, 64)) },
            ]
          : [
              { id: 'call-copyfrom-noop', row: 'call-64b', label: 'copyFrom(0, 0, 64), zero-copy instance (same argument checks, no copy)', role: 'baseline', batch: N, fn: batch(() => mem.copyFrom(0, 0, 64)) },
              { id: 'call-closed-getter', row: 'call-64b', label: '`closed` getter (a JS getter since the TypeScript facade)', role: 'baseline', batch: N, fn: batch(() => { sink ^= mem.closed ? 1 : 0 }) },
            ],
      )),
    )
    mem.close()
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
    if (keep.requiresCopy !== CAGED) throw new Error('row 4: wrong mode')
    if (CAGED) {
      // The caged process times only the caged open (its ratio pairs across the processes).
      const t = {
        id: 'open-nsm-caged', row: 'open-close', label: 'new SharedMemory(name) + close(), caged (adds a 4 KiB V8 buffer + copy) [caged process]', role: 'target', batch: N,
        fn: batch(() => new SharedMemory(name).close()), afterEach: release,
      }
      results.push(...(await runGroup([t])))
      keep.close()
      throw new Done()
    }
    const tasks = [
      { id: 'open-nsm', row: 'open-close', label: 'new SharedMemory(name) + close(), zero-copy (shm_open, fstat, mmap, munmap, close)', role: 'target', batch: N, fn: batch(() => new SharedMemory(name).close()) },
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
    // shm-typed-array 0.1.1 (POSIX-name mode) cannot take part: get() of an existing segment
    // maps it again without recording the new mapping when the name is already known, so
    // detach() does not unmap it: 1000 get + detach cycles leave 1000 mappings (checked with
    // /proc/self/maps), and the row's loop ran every mmap of the process into ENOMEM. It is
    // timed in row 1 instead (zero-copy access through its mapping).
    results.push({
      id: 'open-shm-typed-array', row: 'open-close', role: 'baseline', label: `shm-typed-array@${peers['shm-typed-array'].info.version}: get('/name') + detach('/name')`,
      error: peers['shm-typed-array'].module
        ? 'not timed: its detach() after get() of an existing segment leaves the mapping (1000 cycles = 1000 live mappings); a loop of them exhausts the process\'s mappings (ENOMEM)'
        : peers['shm-typed-array'].info.note,
    })
    for (const t of tasks) t.afterEach = release
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
} catch (e) {
  if (!(e instanceof Done)) throw e
} finally {
  for (const n of names) {
    try {
      SharedMemory.unlink(n)
    } catch {}
  }
}

fs.writeFileSync(out, JSON.stringify({ results, notes, sink }, null, 2))
