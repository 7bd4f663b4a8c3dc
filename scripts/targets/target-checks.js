'use strict'
// Checks run on a foreign target by scripts/test-targets.sh: node.exe under Wine (Windows x64),
// node under qemu-aarch64 (Linux arm64). Plain CommonJS with no dependencies, because it runs
// from a staged copy of the package (target/<target>/pkg), loaded the way users load it: through
// the package root (package.json "main").
//
//   node target-checks.js PKG_ROOT                 all checks, in this process's mode
//   NODE_SHARED_MEM_FORCE_COPY=1 node target-checks.js PKG_ROOT     caged mode
//   node target-checks.js PKG_ROOT --child NAME    (internal) the second process
//
// Environment: TARGET_CHILD_CMD  JSON argv prefix that starts this runtime again (qemu needs
//   ["qemu-aarch64", "-L", sysroot, node]); default [process.execPath].
//   TARGET_PEER   Windows only: path of peer-win.exe, the foreign (non-Node) process.
// Prints "ok   …" / "FAIL …" per check and "N passed, N failed"; exits 1 on any failure.
const { spawn } = require('node:child_process')
const crypto = require('node:crypto')
const path = require('node:path')

const PKG = process.argv[2]
if (!PKG) {
  console.error('usage: target-checks.js PKG_ROOT [--child NAME]')
  process.exit(2)
}
const { SharedMemory, MemoryAccess } = require(path.resolve(PKG))
const WIN = process.platform === 'win32'
const FORCED = process.env.NODE_SHARED_MEM_FORCE_COPY === '1'
// What Node's own fs errors carry on this platform: libuv's numbers on Windows, -errno on Linux.
const ERRNO = WIN ? { ENOENT: -4058, EEXIST: -4075, EACCES: -4092 } : { ENOENT: -2, EEXIST: -17, EACCES: -13 }
// Node's message text for a code (uv_strerror), the same on every OS.
const STRERROR = { ENOENT: 'no such file or directory', EEXIST: 'file already exists' }
const gc = typeof globalThis.gc === 'function' ? globalThis.gc : null

// ------------------------------------------------------------------ the second process
const ci = process.argv.indexOf('--child')
if (ci > 0) {
  child(process.argv[ci + 1]).then(
    (code) => process.exit(code),
    (e) => {
      console.log(`child error: ${e && e.stack}`)
      process.exit(9)
    },
  )
  return
}

/**
 * Opens NAME (created by the parent), checks the parent's bytes, writes its own, then plays
 * the other side of the wait/notify hand-off: waits for an odd value at 64, stores the next even
 * value and notifies, until the counter reaches ROUNDS (read at offset 8).
 */
async function child(name) {
  const mem = new SharedMemory(name)
  const u8 = new Uint8Array(mem.buffer)
  if (mem.requiresCopy) mem.copyFrom()
  const seen = Buffer.from(u8.subarray(16, 32)).toString('hex')
  u8.set([0xc1, 0x1d, 0xc1, 0x1d], 100)
  if (mem.requiresCopy) mem.copyTo(100, 100, 4)
  console.log(`seen ${seen}`)
  const rounds = mem.atomicLoad(8)
  let v = 0
  while (v < rounds) {
    // Block (sync wait, up to 10 s per round) until the parent stores an odd value.
    const cur = mem.atomicLoad(64)
    if (cur % 2 === 0) {
      const r = mem.wait(64, cur, 10_000)
      if (r === 'timed-out') {
        console.log(`stuck at ${cur}`)
        return 3
      }
      continue
    }
    v = cur + 1
    mem.atomicStore(64, v)
    mem.notify(64)
  }
  console.log(`handoffs ${v}`)
  mem.close()
  return 0
}

// ------------------------------------------------------------------ harness
let passed = 0
let failed = 0
class CheckError extends Error {}
const assert = (c, m) => {
  if (!c) throw new CheckError(m)
}
const eq = (a, b, what) => assert(a === b, `${what}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`)
async function check(title, fn) {
  try {
    const note = await fn()
    passed++
    console.log(`ok   ${title}${note ? ` (${note})` : ''}`)
  } catch (e) {
    failed++
    console.log(`FAIL ${title}: ${e instanceof CheckError ? e.message : (e && e.stack) || e}`)
  }
}
function thrown(fn) {
  try {
    fn()
  } catch (e) {
    return e
  }
  return undefined
}
/** Node's SystemError shape: code, errno (this OS's libuv value), syscall, path, message. */
function systemError(fn, code, name, what) {
  const e = thrown(fn)
  assert(e !== undefined, `${what}: did not throw`)
  eq(e.code, code, `${what}: code`)
  eq(e.errno, ERRNO[code], `${what}: errno (Node's ${code} on ${process.platform})`)
  assert(typeof e.syscall === 'string' && e.syscall.length > 0, `${what}: syscall ${e.syscall}`)
  eq(e.path, name, `${what}: path`)
  assert(
    e.message.startsWith(`${code}: ${STRERROR[code]}, `) && e.message.endsWith(`'${name}'`),
    `${what}: message shaped like Node's fs errors ("${code}: ${STRERROR[code]}, <syscall> '<name>'"), got "${e.message}"`,
  )
  return e
}
const uniq = (tag) => `nsm-t-${tag}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`
const hex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('hex')
const tick = () => new Promise((r) => setTimeout(r, 5))

function startChild(args) {
  const prefix = process.env.TARGET_CHILD_CMD ? JSON.parse(process.env.TARGET_CHILD_CMD) : [process.execPath]
  const c = spawn(prefix[0], [...prefix.slice(1), __filename, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  c.stdout.on('data', (d) => (out += d))
  c.stderr.on('data', (d) => (out += d))
  const done = new Promise((resolve) => {
    const timer = setTimeout(() => c.kill(), 120_000)
    c.on('error', (e) => resolve({ code: -1, out: String(e) }))
    c.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? signal, out: out.trim() })
    })
  })
  return { proc: c, done, output: () => out }
}

/** The foreign Windows peer (peer-win.exe): line commands over stdin/stdout. */
function startPeer(...args) {
  const c = spawn(process.env.TARGET_PEER, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let buf = ''
  let err = ''
  const waiters = []
  c.stderr.on('data', (d) => (err += d))
  c.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim()
      buf = buf.slice(i + 1)
      const w = waiters.shift()
      if (w) w(line)
    }
  })
  const exit = new Promise((r) => c.on('close', (code) => r(code)))
  const next = () =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`peer-win.exe: no answer (${err.trim()})`)), 30_000)
      waiters.push((l) => {
        clearTimeout(t)
        resolve(l)
      })
    })
  const ask = (line) => {
    const p = next()
    c.stdin.write(line + '\n')
    return p
  }
  return {
    ready: Promise.race([next(), exit.then((code) => `exit ${code} ${err.trim()}`)]),
    read: (off, len) => ask(`r ${off} ${len}`),
    write: (off, h) => ask(`w ${off} ${h}`),
    end: () => {
      c.stdin.end()
      return exit
    },
  }
}

/** Resolves when opening `name` throws ENOENT (the OS object is gone); gc()s while it waits. */
async function goneAfterGc(name, rounds = 50) {
  for (let i = 0; i < rounds; i++) {
    if (gc) gc()
    await tick()
    const e = thrown(() => new SharedMemory(name).close())
    if (e && e.code === 'ENOENT') return i
  }
  return -1
}

// ------------------------------------------------------------------ checks
async function main() {
  console.log(`target-checks: node ${process.version} ${process.platform}-${process.arch}, mode ${FORCED ? 'caged (forced)' : 'zero-copy'}, gc ${gc ? 'exposed' : 'not exposed'}`)
  const SIZE = 8192

  await check('load through the package root', () => {
    eq(typeof SharedMemory, 'function', 'SharedMemory')
    eq(MemoryAccess.READ, 0, 'MemoryAccess.READ')
    eq(MemoryAccess.WRITE, 1, 'MemoryAccess.WRITE')
  })

  // -------- smoke: one process, two instances
  const name = uniq('smoke')
  const a = SharedMemory.create(name, SIZE)
  await check('create, open by name, bytes shared between two instances', () => {
    eq(a.length, SIZE, 'length')
    eq(a.requiresCopy, FORCED, 'requiresCopy')
    assert(a.buffer instanceof ArrayBuffer && a.buffer.byteLength === SIZE, 'buffer')
    const b = new SharedMemory(name)
    try {
      // Windows sizes a mapping in whole pages; the name opens at the page-rounded size.
      assert(b.length >= SIZE, `length of the opened segment ${b.length}`)
      new Uint8Array(a.buffer).set([1, 2, 3, 4], 4000)
      if (a.requiresCopy) a.copyTo(4000, 4000, 4)
      if (b.requiresCopy) b.copyFrom()
      eq(hex(new Uint8Array(b.buffer, 3999, 6)), '000102030400', 'bytes 3999..4005 seen by the other instance')
      eq(b.atomicStore(8, 41), 41, 'atomicStore')
      eq(a.atomicAdd(8, 1), 41, 'atomicAdd returns the old value')
      eq(b.atomicCompareExchange(8, 42, -7), 42, 'CAS')
      eq(a.atomicLoad(8), -7, 'atomicLoad')
    } finally {
      b.close()
    }
    return `opened length ${SIZE}`
  })

  await check('wait: not-equal, timed-out; waitAsync timed-out', async () => {
    eq(a.wait(64, 5, 10), 'not-equal', 'wait on a word != expected')
    eq(a.wait(64, 0, 30), 'timed-out', 'wait 30 ms')
    eq(await a.waitAsync(64, 0, 30), 'timed-out', 'waitAsync 30 ms')
  })

  await check('notify wakes a waitAsync of this process without a value change, and counts it', async () => {
    const p = a.waitAsync(128, 0, 10_000)
    let n = 0
    const deadline = Date.now() + 10_000
    // Repeat until the waiter is registered (notify returns 0 before that).
    while (n === 0 && Date.now() < deadline) {
      await tick()
      n = a.notify(128, 1)
    }
    eq(n, 1, 'notify count')
    eq(await p, 'ok', 'waitAsync result')
    eq(a.atomicLoad(128), 0, 'the word was never changed')
  })

  await check('READ: local writes stay local (copy-on-write), writes to the segment refused', () => {
    const ro = new SharedMemory(name, 4096, MemoryAccess.READ)
    try {
      eq(ro.access, MemoryAccess.READ, 'access')
      if (ro.requiresCopy) ro.copyFrom()
      eq(new Uint8Array(ro.buffer)[4001], 2, 'READ sees the segment')
      new Uint8Array(ro.buffer)[4001] = 0x99
      if (a.requiresCopy) a.copyFrom(4001, 4001, 1)
      eq(new Uint8Array(a.buffer)[4001], 2, 'segment after a local write to the READ buffer')
      eq(thrown(() => ro.copyTo())?.code, 'EACCES', 'copyTo on READ')
      eq(thrown(() => ro.atomicStore(0, 1))?.code, 'EACCES', 'atomicStore on READ')
    } finally {
      ro.close()
    }
  })

  // -------- errors
  await check('ENOENT: open a missing name', () => {
    const n = uniq('missing')
    const e = systemError(() => new SharedMemory(n), 'ENOENT', n, 'open missing')
    eq(SharedMemory.unlink(n), false, 'unlink of a missing name')
    return `errno ${e.errno}, syscall ${e.syscall}`
  })
  await check('EEXIST: exclusive create of an existing name', () => {
    const e = systemError(() => SharedMemory.create(name, 64), 'EEXIST', name, 'create existing')
    const b = SharedMemory.create(name, 64, { exclusive: false })
    assert(b.length >= 64, 'exclusive:false opens the existing segment')
    b.close()
    return `errno ${e.errno}, syscall ${e.syscall}`
  })
  if (WIN) {
    await check('ENOENT for a name in a namespace that does not exist (ERROR_PATH_NOT_FOUND)', () => {
      const n = `NoSuchNamespace\\${uniq('ns')}`
      const e = systemError(() => SharedMemory.create(n, 64), 'ENOENT', n, 'create in a missing namespace')
      return `errno ${e.errno}`
    })
    await check('names: 260 UTF-16 units accepted, 261 refused before any syscall', () => {
      const base = `Local\\${uniq('long')}-`
      // Astral characters count as two UTF-16 units: the limit is in units, not code points.
      const fill = (units) => base + '\u{1F600}'.repeat(Math.floor((units - base.length) / 2)) + 'x'.repeat((units - base.length) % 2)
      const ok = fill(260)
      eq(ok.length, 260, 'UTF-16 length of the longest name')
      const m = SharedMemory.create(ok, 64)
      const o = new SharedMemory(ok)
      eq(o.name, ok, 'name round-trips')
      o.close()
      m.close()
      const bad = fill(261)
      const e = thrown(() => SharedMemory.create(bad, 64))
      assert(e instanceof TypeError, `261 units: TypeError, got ${e && e.constructor.name}: ${e && e.message}`)
      eq(e.code, 'ERR_INVALID_ARG_VALUE', '261 units: code')
      eq(thrown(() => new SharedMemory(bad))?.code, 'ERR_INVALID_ARG_VALUE', 'open with 261 units')
    })
  }

  // -------- close and GC release
  await check('close(): buffer detached, ERR_SHM_CLOSED after, second close harmless', () => {
    const m = new SharedMemory(name)
    const ab = m.buffer
    m.close()
    eq(m.closed, true, 'closed')
    eq(ab.byteLength, 0, 'old buffer detached')
    eq(thrown(() => m.atomicLoad(0))?.code, 'ERR_SHM_CLOSED', 'atomicLoad after close')
    m.close()
  })
  if (WIN) {
    // On Windows the OS object lives exactly as long as some handle or view: once ours are
    // released, the name must stop opening. This is what "released" means, observable by name.
    await check('Windows: close() + GC release the handle and view (the name stops opening)', async () => {
      const n = `Local\\${uniq('close')}`
      const m = SharedMemory.create(n, 4096)
      const o = new SharedMemory(n)
      o.close()
      m.close()
      const rounds = await goneAfterGc(n)
      assert(rounds >= 0, 'the mapping object still exists after close() and 50 gc() rounds')
      return `gone after ${rounds} gc round(s)`
    })
    await check('Windows: an unclosed, unreachable instance is released by GC', async () => {
      assert(gc, 'run with --expose-gc')
      const n = `Local\\${uniq('gc')}`
      ;(() => {
        const m = SharedMemory.create(n, 4096)
        new Uint8Array(m.buffer)[0] = 1
      })()
      const rounds = await goneAfterGc(n)
      assert(rounds >= 0, 'the mapping object still exists after 50 gc() rounds')
      return `gone after ${rounds} gc round(s)`
    })
  }

  // -------- cross-process: a second process of the same runtime
  const names = WIN
    ? [`Local\\${uniq('xp')}`, `nsm-ünïcödé-名前-\u{1F600}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`]
    : [uniq('xp'), `nsm-ünïcödé-名前-${process.pid}-${crypto.randomBytes(3).toString('hex')}`]
  for (const n of names) {
    await check(`two processes: open by name, writes both ways, wait/notify hand-offs [${n.replace(/-\d+-[0-9a-f]{6}$/, '')}]`, async () => {
      const ROUNDS = 200
      const m = SharedMemory.create(n, 4096)
      try {
        const u8 = new Uint8Array(m.buffer)
        u8.set(Buffer.from('0123456789abcdeffedcba9876543210', 'hex'), 16)
        if (m.requiresCopy) m.copyTo(16, 16, 16)
        m.atomicStore(8, ROUNDS)
        const c = startChild([PKG, '--child', n])
        // Drive the odd values: store, notify, then wait for the child's even answer. Half the
        // rounds wait with wait() (blocking), half with waitAsync().
        let v = 0
        const deadline = Date.now() + 60_000
        while (v < ROUNDS && Date.now() < deadline) {
          m.atomicStore(64, v + 1)
          m.notify(64)
          for (;;) {
            const cur = m.atomicLoad(64)
            if (cur === v + 2) break
            if (Date.now() > deadline) break
            if (v % 4 === 0) await m.waitAsync(64, cur, 1000)
            else m.wait(64, cur, 1000)
          }
          v += 2
        }
        const r = await c.done
        eq(r.code, 0, `child exit (output: ${r.out})`)
        assert(r.out.includes('seen 0123456789abcdeffedcba9876543210'), `child saw the parent's bytes: ${r.out}`)
        assert(r.out.includes(`handoffs ${ROUNDS}`), `child completed the hand-offs: ${r.out}`)
        eq(m.atomicLoad(64), ROUNDS, 'final counter')
        if (m.requiresCopy) m.copyFrom(100, 100, 4)
        eq(hex(new Uint8Array(m.buffer, 99, 6)), '00c11dc11d00', "the child's bytes, seen by the parent")
      } finally {
        m.close()
      }
      return `${ROUNDS} hand-offs`
    })
  }

  // -------- a foreign (non-Node) Windows process: what .NET / Python / C programs do
  if (WIN && process.env.TARGET_PEER) {
    await check('foreign process (CreateFileMappingW in C) creates; this runtime opens, reads, writes', async () => {
      const n = `Local\\${uniq('peer')}`
      const p = startPeer('create', n, '5000')
      const ready = await p.ready
      assert(ready.startsWith('ready '), `peer: ${ready}`)
      try {
        eq(await p.write(16, 'cafebabe'), 'ok', 'peer write')
        const m = new SharedMemory(n)
        try {
          // Windows reports the page-rounded size; the README says so.
          eq(m.length, Number(ready.split(' ')[1]), 'length = the view size Windows reports')
          assert(m.length >= 5000, `length ${m.length} >= 5000`)
          if (m.requiresCopy) m.copyFrom()
          eq(hex(new Uint8Array(m.buffer, 15, 6)), '00cafebabe00', 'bytes the peer wrote')
          new Uint8Array(m.buffer).set([0xfe, 0xed], 4998)
          if (m.requiresCopy) m.copyTo(4998, 4998, 2)
          eq(await p.read(4997, 4), '00feed00', 'the peer reads our bytes')
          m.atomicStore(40, 0x12345678)
          eq(await p.read(40, 4), '78563412', 'the peer reads an atomicStore (LE)')
        } finally {
          m.close()
        }
        eq(SharedMemory.unlink(n), true, 'unlink: the name exists while the peer holds it')
        systemError(() => SharedMemory.create(n, 64), 'EEXIST', n, 'create over the peer\'s name')
      } finally {
        eq(await p.end(), 0, 'peer exit')
      }
      const gone = thrown(() => new SharedMemory(n))
      eq(gone && gone.code, 'ENOENT', 'name gone once the last handle (the peer\'s) closed')
    })
    await check('this runtime creates; a foreign process opens, reads, writes', async () => {
      const n = `Local\\${uniq('peer2')}`
      const m = SharedMemory.create(n, 3000)
      try {
        new Uint8Array(m.buffer).set([0xab, 0xcd], 2990)
        if (m.requiresCopy) m.copyTo()
        const p = startPeer('open', n)
        const ready = await p.ready
        assert(ready.startsWith('ready '), `peer: ${ready}`)
        eq(await p.read(2989, 4), '00abcd00', 'the peer reads our bytes')
        eq(await p.write(7, '0102'), 'ok', 'peer write')
        if (m.requiresCopy) m.copyFrom()
        eq(hex(new Uint8Array(m.buffer, 6, 4)), '00010200', "the peer's bytes")
        eq(await p.end(), 0, 'peer exit')
      } finally {
        m.close()
      }
    })
  }

  a.close()
  for (const n of [name, ...names]) {
    try {
      SharedMemory.unlink(n)
    } catch {}
  }
  console.log(`${passed} passed, ${failed} failed`)
  process.exitCode = failed ? 1 : 0
}

main().catch((e) => {
  console.log(`FAIL harness: ${e && e.stack}`)
  process.exit(1)
})
