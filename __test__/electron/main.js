// Electron spec for node-shared-mem's caged (copy) mode.
//
// Electron >= 21 runs V8 with the memory cage (sandbox), where Node-API refuses external
// buffers: `buffer` must then be a V8-owned copy kept in sync with copyFrom()/copyTo(). This
// script checks that against a segment created by a *foreign* process (the Python peer):
// requiresCopy === true, copyFrom/copyTo with and without sub-ranges, range errors, close().
//
// Run in Electron's main process (CI, Linux, under xvfb):
//   xvfb-run -a npx electron --no-sandbox __test__/electron/main.js
// It exits 0 when every check passes, 1 otherwise (the failure is printed).
//
// It also runs under plain Node with NODE_SHARED_MEM_FORCE_COPY=1 (npm run test:electron-spec):
// the forced-copy stand-in used where Electron cannot be installed.
'use strict'
const assert = require('node:assert/strict')
const { execFileSync, spawn } = require('node:child_process')
const { randomBytes } = require('node:crypto')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..', '..')
const PEER = path.join(ROOT, '__test__', 'helpers', 'peer.py')
const PYTHON = process.env.PYTHON || (process.platform === 'win32' ? 'python' : 'python3')
const electronVersion = process.versions.electron

const peer = (...args) => execFileSync(PYTHON, [PEER, ...args.map(String)], { encoding: 'utf8' }).trim()

/**
 * Creates the segment from the Python peer and keeps it alive (`peer.py hold`: on Windows a
 * name lives only while a handle is open). The holder writes a counter at bytes 0..3 every
 * 10 ms, so the checks below stay clear of them; it unlinks the segment when its stdin closes.
 */
function hold(name, size, offset, hexBytes) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [PEER, 'hold', name, String(size), String(offset), hexBytes], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stderr.on('data', (d) => (err += d))
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('ready')) resolve(child)
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (!out.includes('ready')) reject(new Error(`peer hold exited early (${code}): ${out}${err}`))
    })
  })
}

const hex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('hex')

async function runChecks() {
  const { SharedMemory, MemoryAccess } = require(ROOT)
  const where = electronVersion ? `Electron ${electronVersion} (V8 ${process.versions.v8})` : `Node ${process.version}`
  console.log(`[electron-spec] ${where}, ${process.platform}-${process.arch}`)

  if (electronVersion) {
    assert.ok(Number(electronVersion.split('.')[0]) >= 21, 'this spec targets Electron >= 21 (memory cage)')
    assert.notEqual(process.env.NODE_SHARED_MEM_FORCE_COPY, '1', 'run the Electron spec without forced copy')
  } else {
    assert.equal(process.env.NODE_SHARED_MEM_FORCE_COPY, '1', 'outside Electron, set NODE_SHARED_MEM_FORCE_COPY=1')
  }

  const SIZE = 4096
  const name = `nsm-el-${process.pid}-${randomBytes(4).toString('hex')}`
  const initial = randomBytes(32)
  const holder = await hold(name, SIZE, 64, initial.toString('hex'))
  let mem
  try {
    mem = new SharedMemory(name)
    assert.equal(mem.requiresCopy, true, 'requiresCopy must be true in caged mode')
    assert.equal(mem.length, SIZE)
    assert.equal(mem.access, MemoryAccess.WRITE)
    const buf = mem.buffer
    assert.ok(buf instanceof ArrayBuffer)
    assert.equal(buf.byteLength, SIZE)
    const u8 = new Uint8Array(buf)

    // The copy is filled at open time.
    assert.equal(hex(u8.subarray(64, 96)), initial.toString('hex'), 'initial contents')

    // Every copied range below is checked at its first and last byte AND at the byte just
    // outside each end, in the copy and in the segment: a copy one byte too long or too short
    // at either end fails here. Local bytes start as 0x5a (the peer never writes that value).
    const LOCAL = 0x5a
    u8.fill(LOCAL, 4)
    const segRange = (off, n) => peer('read', name, off, n)
    const localHex = (off, n) => hex(u8.subarray(off, off + n))

    // A foreign write is invisible until copyFrom(). The peer writes 18 bytes 99..116; only
    // 100..115 are copied, so the copy must keep 0x5a at 99 and 116.
    const a = randomBytes(18)
    const b = randomBytes(18)
    for (const x of [a, b]) for (let i = 0; i < x.length; i++) if (x[i] === LOCAL) x[i] = 0x11
    peer('write', name, 99, a.toString('hex'))
    peer('write', name, 199, b.toString('hex'))
    assert.equal(localHex(99, 18), '5a'.repeat(18), 'the copy must not change by itself')

    // copyFrom(srcOffset, dstOffset, length): only that range is refreshed.
    mem.copyFrom(100, 100, 16)
    assert.equal(localHex(100, 16), a.subarray(1, 17).toString('hex'), 'copyFrom sub-range')
    assert.equal(u8[99], LOCAL, 'copyFrom must not write the byte before its destination range')
    assert.equal(u8[116], LOCAL, 'copyFrom must not write the byte after its destination range')
    assert.equal(localHex(199, 18), '5a'.repeat(18), 'copyFrom must not touch bytes outside its range')

    // copyFrom to a different buffer offset.
    mem.copyFrom(200, 1000, 16)
    assert.equal(localHex(1000, 16), b.subarray(1, 17).toString('hex'), 'copyFrom to another offset')
    assert.equal(u8[999], LOCAL, 'copyFrom to another offset: byte before the range untouched')
    assert.equal(u8[1016], LOCAL, 'copyFrom to another offset: byte after the range untouched')

    // copyFrom() with no arguments refreshes everything.
    mem.copyFrom()
    assert.equal(localHex(199, 18), b.toString('hex'), 'copyFrom() full')
    assert.equal(localHex(1000, 16), '00'.repeat(16), 'copyFrom() full overwrites the whole copy')
    assert.equal(u8[SIZE - 1], 0, 'copyFrom() full reaches the last byte')

    // copyTo(srcOffset, dstOffset, length): only that range reaches the segment. The segment
    // around it holds 0xc3 (peer-written), the copy holds distinct bytes on both sides of it.
    const c = randomBytes(8)
    const d = randomBytes(8)
    peer('write', name, 296, 'c3'.repeat(16))
    peer('write', name, 396, 'c3'.repeat(16))
    peer('write', name, 2996, 'c3'.repeat(16))
    u8.fill(0x77, 290, 420)
    u8.set(c, 300)
    u8.set(d, 400)
    mem.copyTo(300, 300, 8)
    assert.equal(segRange(299, 10), 'c3' + c.toString('hex') + 'c3', 'copyTo writes exactly 300..307 (299 and 308 untouched)')
    assert.equal(segRange(396, 16), 'c3'.repeat(16), 'copyTo must not write outside its range')

    // copyTo to a different segment offset, and bytes the peer wrote meanwhile survive a sub-range copyTo.
    const e = randomBytes(4)
    peer('write', name, 2000, e.toString('hex'))
    mem.copyTo(400, 3000, 8)
    assert.equal(segRange(2999, 10), 'c3' + d.toString('hex') + 'c3', 'copyTo to another offset writes exactly 3000..3007')
    assert.equal(segRange(2000, 4), e.toString('hex'), "a sub-range copyTo keeps the peer's other bytes")
    assert.equal(segRange(396, 16), 'c3'.repeat(16), 'copyTo to another offset leaves the source offset alone in the segment')

    // copyTo() with no arguments writes the whole copy (which overwrites the peer's byte at 2000).
    mem.copyTo()
    assert.equal(segRange(399, 10), '77' + d.toString('hex') + '77', 'copyTo() full')
    assert.equal(segRange(2000, 4), '00'.repeat(4), 'copyTo() full writes every byte')

    // Defaults: copyFrom(srcOffset) / copyTo(srcOffset, dstOffset) copy the most bytes that fit.
    const f = randomBytes(8)
    for (let i = 0; i < f.length; i++) if (f[i] === LOCAL) f[i] = 0x11
    peer('write', name, SIZE - 8, f.toString('hex'))
    u8.fill(LOCAL, 4, 16)
    mem.copyFrom(SIZE - 8)
    assert.equal(localHex(4, 4), f.subarray(4).toString('hex'), 'copyFrom(srcOffset) copies the tail to offset 0')
    assert.equal(u8[8], LOCAL, 'copyFrom(srcOffset): exactly 8 bytes (the rest), not one more')
    u8.fill(0x66, 100, 120)
    peer('write', name, SIZE - 20, 'c3'.repeat(20))
    mem.copyTo(100, SIZE - 10)
    assert.equal(segRange(SIZE - 11, 11), 'c3' + '66'.repeat(10), 'copyTo(srcOffset, dstOffset): the 10 bytes that fit, none before')

    // Atomics act on the segment itself, in both modes.
    mem.atomicStore(512, 7)
    assert.equal(peer('read', name, 512, 4), '07000000')

    // Bad ranges are RangeErrors with a code, never a crash.
    for (const args of [[SIZE + 1], [0, 0, SIZE + 1], [-1], [0.5], [0, SIZE - 4, 8]]) {
      assert.throws(() => mem.copyFrom(...args), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `copyFrom(${args})`)
      assert.throws(() => mem.copyTo(...args), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, `copyTo(${args})`)
    }

    // A read-only instance refuses copyTo in caged mode too.
    const ro = new SharedMemory(name, SIZE, MemoryAccess.READ)
    assert.equal(ro.requiresCopy, true)
    assert.throws(() => ro.copyTo(), { code: 'EACCES' })
    ro.close()

    mem.close()
    assert.equal(mem.closed, true)
    assert.equal(buf.byteLength, 0, 'close() detaches the copy')
    assert.throws(() => mem.copyFrom(), { code: 'ERR_SHM_CLOSED' })
    assert.throws(() => mem.copyTo(), { code: 'ERR_SHM_CLOSED' })
  } finally {
    if (mem && !mem.closed) mem.close()
    holder.stdin.end()
    await new Promise((resolve) => holder.once('exit', resolve))
  }
  console.log('[electron-spec] PASS')
}

async function main() {
  try {
    await runChecks()
    return 0
  } catch (e) {
    console.error('[electron-spec] FAILED:', e && e.stack ? e.stack : e)
    return 1
  }
}

if (electronVersion) {
  const { app } = require('electron')
  app.disableHardwareAcceleration()
  app.whenReady().then(main).then((code) => app.exit(code))
} else {
  main().then((code) => (process.exitCode = code))
}
