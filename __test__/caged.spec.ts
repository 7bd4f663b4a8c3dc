// Caged mode end to end, in both runs of the suite: this file forces the copy path for every
// instance it opens (ava runs each file in its own process), as Electron's V8 cage would.
process.env.NODE_SHARED_MEM_FORCE_COPY = '1'

import test from 'ava'
import { SharedMemory, MemoryAccess } from '../dist'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { foreignCreate, foreignRead, peer, ROOT, uniqueName } from './helpers/util'
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { skip, runs } = require('../scripts/skip.cjs') as { skip: (what: string, tool: string) => boolean; runs: (cmd: string, args?: string[]) => boolean }

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

test('caged: buffer starts as a copy of the segment and requiresCopy is true', (t) => {
  const data = pattern(4096, 1)
  const name = foreignCreate('cg-init', 4096, 0, data)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  t.true(mem.requiresCopy)
  t.true(Buffer.from(mem.buffer!).equals(data), 'filled from the segment at open')
  t.is(mem.sharedBuffer, null, 'no SharedArrayBuffer over external memory in caged mode')
  mem.close()
})

test('caged: copyFrom pulls whole and sub-ranges, leaving the rest of buffer as it was', (t) => {
  const name = foreignCreate('cg-from', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  const view = new Uint8Array(mem.buffer!)
  view.fill(0xee)
  peer('write', name, 100, pattern(50, 7).toString('hex'))
  // Segment bytes 110..130 → buffer 2000..2020.
  mem.copyFrom(110, 2000, 20)
  t.true(Buffer.from(view.subarray(2000, 2020)).equals(pattern(50, 7).subarray(10, 30)))
  t.is(view[1999], 0xee)
  t.is(view[2020], 0xee)
  t.is(view[100], 0xee, 'nothing else was pulled')
  // Default length is "the rest" that fits both ranges.
  mem.copyFrom(4000)
  t.is(view[95], 0, 'segment 4000..4096 went to buffer 0..96')
  t.is(view[96], 0xee, 'and not one byte more')
  mem.copyFrom()
  t.true(Buffer.from(view.subarray(100, 150)).equals(pattern(50, 7)))
  t.is(view[0], 0)
  mem.close()
})

test('caged: copyTo pushes exactly the sub-range; neighbouring segment bytes stay untouched', (t) => {
  const before = pattern(4096, 3)
  const name = foreignCreate('cg-to', 4096, 0, before)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  const view = new Uint8Array(mem.buffer!)
  view.fill(0x11)
  // Buffer bytes 10..14 → segment 1000..1004.
  mem.copyTo(10, 1000, 4)
  const after = foreignRead(name, 0, 4096)
  const expected = Buffer.from(before)
  expected.fill(0x11, 1000, 1004)
  t.true(after.equals(expected), 'only segment bytes 1000..1004 changed')
  mem.copyTo(0, 4095)
  t.is(foreignRead(name, 4095, 1)[0], 0x11, 'default length: the single byte that fits')
  t.is(foreignRead(name, 4094, 1)[0], before[4094])
  mem.copyTo()
  t.true(foreignRead(name, 0, 4096).equals(Buffer.alloc(4096, 0x11)))
  mem.close()
})

test('caged: a zero-length copy is allowed and copies nothing', (t) => {
  const name = foreignCreate('cg-zero', 4096, 0, Buffer.from([1]))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  new Uint8Array(mem.buffer!)[0] = 9
  mem.copyTo(0, 0, 0)
  t.is(foreignRead(name, 0, 1)[0], 1)
  mem.close()
})

test('caged READ: copyFrom works, copyTo throws EACCES, local writes stay local', (t) => {
  const name = foreignCreate('cg-ro', 4096, 0, Buffer.from('ro'))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name, undefined, MemoryAccess.READ)
  t.true(mem.requiresCopy)
  const view = new Uint8Array(mem.buffer!)
  view[0] = 0
  t.throws(() => mem.copyTo(0, 0, 1), { code: 'EACCES' })
  t.is(foreignRead(name, 0, 2).toString(), 'ro')
  mem.copyFrom(0, 0, 1)
  t.is(view[0], 0x72)
  mem.close()
})

test('caged: a buffer transferred away cannot be copied into (ERR_SHM_DETACHED), and close still works', (t) => {
  const name = foreignCreate('cg-xfer', 4096, 0, Buffer.from([4]))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  const moved = structuredClone(mem.buffer!, { transfer: [mem.buffer!] })
  t.is(new Uint8Array(moved)[0], 4)
  t.throws(() => mem.copyFrom(), { code: 'ERR_SHM_DETACHED' })
  t.throws(() => mem.copyTo(), { code: 'ERR_SHM_DETACHED' })
  mem.close()
  t.is(new Uint8Array(moved)[0], 4, 'the transferred copy is V8-owned and unaffected')
})

test('caged: after a peer ftruncates the segment smaller, atomics, wait, waitAsync and notify past the new end throw ERR_SHM_SHRUNK (no SIGBUS)', async (t) => {
  const PAGE = 4096
  const name = foreignCreate('cg-shrink-atom', 3 * PAGE, 0, pattern(3 * PAGE, 9))
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  t.true(mem.requiresCopy)
  peer('truncate', name, PAGE)
  const shrunk = { instanceOf: Error, code: 'ERR_SHM_SHRUNK' }
  // The first lost word, one in the last lost page, and the last word of the mapping.
  for (const off of [PAGE, 2 * PAGE + 8, 3 * PAGE - 4]) {
    t.throws(() => mem.atomicLoad(off), shrunk, `atomicLoad(${off})`)
    t.throws(() => mem.atomicStore(off, 1), shrunk, `atomicStore(${off})`)
    t.throws(() => mem.atomicAdd(off, 1), shrunk, `atomicAdd(${off})`)
    t.throws(() => mem.atomicCompareExchange(off, 0, 1), shrunk, `atomicCompareExchange(${off})`)
    t.throws(() => mem.wait(off, 0, 10), shrunk, `wait(${off})`)
    t.throws(() => mem.notify(off), shrunk, `notify(${off})`)
    await t.throwsAsync(mem.waitAsync(off, 0, 10), shrunk, `waitAsync(${off})`)
  }
  const e = t.throws(() => mem.atomicLoad(PAGE))
  t.regex(e!.message, /shrank to 4096 bytes/)
  // The last word that is left still works, to its last byte.
  const last = PAGE - 4
  const before = mem.atomicLoad(last)
  t.is(mem.atomicAdd(last, 1), before)
  t.is(mem.atomicCompareExchange(last, before + 1, 7), before + 1)
  t.is(mem.wait(last, 7, 1), 'timed-out')
  t.is(mem.notify(last), 0)
  t.deepEqual([...foreignRead(name, last, 4)], [7, 0, 0, 0])
  mem.close()
})

test('caged: native atomics act on the segment itself', (t) => {
  const name = foreignCreate('cg-atom', 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  t.is(mem.atomicStore(8, 0x01020304), 0x01020304)
  t.is(mem.atomicAdd(8, 1), 0x01020304)
  t.deepEqual([...foreignRead(name, 8, 4)], [5, 3, 2, 1])
  t.is(new Int32Array(mem.buffer!)[2], 0, 'the copy does not change until copyFrom')
  mem.copyFrom(8, 8, 4)
  t.is(new Int32Array(mem.buffer!)[2], 0x01020305)
  mem.close()
})

test('caged: after a peer ftruncates the segment smaller, a copy over the lost bytes throws ERR_SHM_SHRUNK and copies nothing', (t) => {
  const PAGE = 4096
  const data = pattern(3 * PAGE, 5)
  const name = foreignCreate('cg-shrink', 3 * PAGE, 0, data)
  t.teardown(() => SharedMemory.unlink(name))
  const mem = new SharedMemory(name)
  t.true(mem.requiresCopy)
  const view = new Uint8Array(mem.buffer!)
  t.true(Buffer.from(view).equals(data))
  peer('truncate', name, PAGE) // a misbehaving peer: pages 2 and 3 are gone
  view.fill(0xee)
  // Ranges that end past the new end, including ones that start inside it: nothing copied.
  for (const [s, d, n] of [[0, 0, 3 * PAGE], [PAGE - 8, 0, 16], [2 * PAGE, 2 * PAGE, 1], [0, 0, PAGE + 1]]) {
    t.throws(() => mem.copyFrom(s, d, n), { instanceOf: Error, code: 'ERR_SHM_SHRUNK' }, `copyFrom(${s}, ${d}, ${n})`)
    t.true(view.every((b) => b === 0xee), `copyFrom(${s}, ${d}, ${n}) copied nothing into buffer`)
  }
  t.throws(() => mem.copyFrom(), { code: 'ERR_SHM_SHRUNK' }, 'copyFrom() of everything')
  t.true(view.every((b) => b === 0xee), 'copyFrom() copied nothing')
  for (const [s, d, n] of [[0, PAGE - 8, 16], [0, 0, PAGE + 1], [0, 2 * PAGE, 4]]) {
    t.throws(() => mem.copyTo(s, d, n), { instanceOf: Error, code: 'ERR_SHM_SHRUNK' }, `copyTo(${s}, ${d}, ${n})`)
  }
  t.throws(() => mem.copyTo(), { code: 'ERR_SHM_SHRUNK' }, 'copyTo() of everything')
  t.true(foreignRead(name, 0, PAGE).equals(data.subarray(0, PAGE)), 'no copyTo wrote a byte of what is left')
  // Ranges inside what is left still work, to the last byte.
  mem.copyFrom(PAGE - 4, 100, 4)
  t.true(Buffer.from(view.subarray(100, 104)).equals(data.subarray(PAGE - 4, PAGE)))
  t.is(view[99], 0xee)
  t.is(view[104], 0xee)
  t.is(mem.atomicLoad(PAGE - 4), data.readInt32LE(PAGE - 4), 'atomics inside what is left work')
  mem.copyTo(0, PAGE - 1, 1)
  t.is(foreignRead(name, PAGE - 1, 1)[0], 0xee)
  mem.close()
})

// A caged instance's copy is filled at create/open through the segment's descriptor, not the
// mapping: the pages of a sparse segment that nobody wrote stay unallocated in /dev/shm (reading
// them through the mapping would commit all 64 MiB).
test('caged: create and open of a sparse 64 MiB segment leave its unwritten pages unallocated', (t) => {
  if (process.platform !== 'linux') {
    t.pass('tmpfs allocation is Linux-specific')
    return
  }
  const SIZE = 64 << 20
  const name = uniqueName('cg-sparse')
  t.teardown(() => SharedMemory.unlink(name))
  const allocated = () => fs.statSync(`/dev/shm/${name}`).blocks * 512
  const mem = SharedMemory.create(name, SIZE)
  t.true(mem.requiresCopy)
  t.true(allocated() <= 1 << 20, `after a caged create: ${allocated()} bytes allocated`)
  peer('write', name, 40 << 20, 'a1b2c3d4')
  const other = new SharedMemory(name)
  t.true(allocated() <= 1 << 20, `after a caged open: ${allocated()} bytes allocated`)
  const view = new Uint8Array(other.buffer!)
  t.deepEqual([...view.subarray((40 << 20) - 1, (40 << 20) + 5)], [0, 0xa1, 0xb2, 0xc3, 0xd4, 0])
  t.is(view[SIZE - 1], 0)
  other.close()
  mem.close()
})

// A JS listener for SIGBUS makes Node install libuv's handler on top of the fault guard (it does
// not chain: a caged call on a shrunk segment would fault forever), and removing it makes libuv set
// SIG_DFL (the guard gone: death by SIGBUS). The facade puts the guard back on top after both. In a
// child, with a timeout for the hang.
const signalListenerChild = `
const fs = require('fs')
const { SharedMemory } = require('./dist')
const [name, mode] = process.argv.slice(1)
const m = SharedMemory.create(name, 3 * 4096)
let got = 0
const warnings = []
process.on('warning', (w) => warnings.push(w.code))
const f = () => { got++ }
// 'cycles': 20 on/off cycles (each used two of the guard's 8 chain slots once), 'cycles-on' one more on
const cycles = mode.startsWith('cycles') ? 20 : 0
for (let i = 0; i < cycles; i++) { process.on('SIGBUS', f); process.off('SIGBUS', f) }
if (mode !== 'cycles') process.on('SIGBUS', f)
if (mode === 'on-off') process.off('SIGBUS', f)
fs.truncateSync('/dev/shm/' + name, 4096)
for (const call of [() => m.atomicLoad(8192), () => m.copyFrom(0, 0, 3 * 4096)]) {
  try { call(); console.log('no error') } catch (e) { console.log('caught', e.code) }
}
if (mode === 'on') process.kill(process.pid, 'SIGBUS')
setTimeout(() => { console.log('listener ran', got); console.log('warnings', warnings.join()); process.exit(0) }, 200)
`
const listenerModes: Record<string, string> = {
  on: "process.on('SIGBUS')",
  'on-off': "process.on then off('SIGBUS')",
  cycles: "20 process.on/off('SIGBUS') cycles",
  'cycles-on': "20 process.on/off('SIGBUS') cycles then on",
}
for (const mode of Object.keys(listenerModes)) {
  test(`caged: ${listenerModes[mode]} after an open keeps the fault guard: a shrink is ERR_SHM_SHRUNK, not a hang or SIGBUS`, (t) => {
    if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
      t.pass('the fault guard exists on Linux x64/arm64 only')
      return
    }
    const name = uniqueName('cg-uvsig')
    t.teardown(() => SharedMemory.unlink(name))
    const r = spawnSync(process.execPath, ['-e', signalListenerChild, name, mode], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, NODE_SHARED_MEM_FORCE_COPY: '1' },
    })
    t.is(r.signal, null, `no hang (killed by the timeout) and no SIGBUS: ${r.stdout}${r.stderr}`)
    t.is(r.status, 0, r.stderr)
    t.is(r.stdout.split('\n').filter((l) => l === 'caught ERR_SHM_SHRUNK').length, 2, r.stdout)
    if (mode === 'on') t.true(r.stdout.includes('listener ran 1'), `a sent SIGBUS still reaches the listener: ${r.stdout}`)
    t.true(r.stdout.includes('warnings \n'), `no NSM_FAULT_GUARD_EXHAUSTED warning: ${r.stdout}`)
  })
}

// The facade hooks 'SIGSEGV' listeners too: without the package, removing the last one makes libuv
// set SIG_DFL (SIGSEGV no longer caught, /proc/self/status SigCgt bit 11 clear: a fault of ours that
// the kernel raises as SIGSEGV, e.g. on pages gone altogether, would kill). With it, the guard is put
// back on top after the 'off' (on Linux a shrink raises SIGBUS, so this reads the disposition).
test("caged: process.on then off('SIGSEGV') after an open leaves SIGSEGV caught (the guard is put back)", (t) => {
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
    t.pass('the fault guard exists on Linux x64/arm64 only')
    return
  }
  const name = uniqueName('cg-segv')
  t.teardown(() => SharedMemory.unlink(name))
  const child = `
const fs = require('fs')
const { SharedMemory } = require('./dist')
const caught = (sig) => (BigInt('0x' + /SigCgt:\\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) >> BigInt(sig - 1)) & 1n
const m = SharedMemory.create(process.argv[1], 4096)
const f = () => {}
for (let i = 0; i < 3; i++) { process.on('SIGSEGV', f); process.off('SIGSEGV', f) }
console.log('SIGSEGV caught', caught(11))
m.close()
`
  const r = spawnSync(process.execPath, ['-e', child, name], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NODE_SHARED_MEM_FORCE_COPY: '1' },
  })
  t.is(r.status, 0, r.stderr)
  t.true(r.stdout.includes('SIGSEGV caught 1'), r.stdout + r.stderr)
})

// The shrink guard costs no system call: a Node child under strace does 3000 caged copies and
// atomics (no size syscall may appear), then 10 copies past a shrunk end (each throws, and only
// that error path reads the size: exactly one lseek/fstat each). Counted on the main thread,
// between two marker writes.
test('caged: copies and atomics make no size re-check syscall; only a copy that hits a shrunk end reads the size (strace)', (t) => {
  if (process.platform !== 'linux' || !(runs('strace', ['-o', '/dev/null', 'true']))) {
    if (!skip('the caged syscall-count test', 'strace')) t.fail('strace missing and CI=true')
    t.pass()
    return
  }
  const name = foreignCreate('cg-strace', 3 * 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const out = path.join(os.tmpdir(), `nsm-strace-${process.pid}.txt`)
  t.teardown(() => fs.rmSync(out, { force: true }))
  const script = `const fs=require('fs');const {SharedMemory}=require(${JSON.stringify(ROOT)});` +
    `const m=new SharedMemory(${JSON.stringify(name)});if(!m.requiresCopy)throw new Error('not caged');` +
    `m.copyFrom(0,0,64);m.copyTo(0,0,64);m.atomicAdd(0,1);` +
    `fs.writeSync(2,'NSM-BEGIN\\n');` +
    `for(let i=0;i<1000;i++){m.copyFrom(64,64,64);m.copyTo(128,128,64);m.atomicAdd(0,1)}` +
    `fs.writeSync(2,'NSM-MID\\n');fs.truncateSync('/dev/shm/${name}',4096);fs.writeSync(2,'NSM-TRUNCATED\\n');let n=0;` +
    `for(let i=0;i<10;i++){try{m.copyFrom(4096,0,64)}catch(e){if(e.code==='ERR_SHM_SHRUNK')n++}}` +
    `fs.writeSync(2,'NSM-END '+n+'\\n');m.close()`
  const r = spawnSync('strace', ['-f', '-o', out, '-e', 'trace=lseek,fstat,newfstatat,statx,write', process.execPath, '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_SHARED_MEM_FORCE_COPY: '1' },
  })
  t.is(r.status, 0, r.stderr)
  t.regex(r.stderr, /NSM-END 10/)
  const lines = fs.readFileSync(out, 'utf8').split('\n')
  const mark = (m: string) => lines.findIndex((l) => l.includes(`"${m}`))
  const [begin, mid, truncated, end] = ['NSM-BEGIN', 'NSM-MID', 'NSM-TRUNCATED', 'NSM-END'].map(mark)
  t.true(begin >= 0 && begin < mid && mid < truncated && truncated < end, 'markers in order')
  const pid = lines[begin].split(/\s+/)[0]
  const sizeCalls = (from: number, to: number) =>
    lines.slice(from + 1, to).filter((l) => l.startsWith(pid + ' ') && /\b(lseek|fstat|newfstatat|statx)\(/.test(l))
  t.deepEqual(sizeCalls(begin, mid), [], '3000 caged calls, no size syscall')
  t.is(sizeCalls(truncated, end).length, 10, 'one size read per copy that hit the shrunk end')
})
