'use strict'
// Property-based hostile-input test of one entry point, run in a child process by run.js:
//   node reliability/fuzz.js <entry> <numRuns> [seed]
// Every generated case must either succeed with the documented meaning (checked against the
// segment's bytes read through /dev/shm, not through the addon) or throw the TypeError /
// RangeError / Error with the `code` an oracle predicts from the arguments. The oracle follows
// index.d.ts and the argument rules of the binding (no coercion: `undefined` = default,
// other non-numbers = ERR_INVALID_ARG_TYPE, bad numbers = ERR_OUT_OF_RANGE).
const fc = require('fast-check')
const fs = require('node:fs')
const { SharedMemory, MemoryAccess } = require('..')
const { uniqueName, shmPath, readSeg, writeSeg, report } = require('./lib')

const [entry, runsArg, seedArg] = process.argv.slice(2)
const numRuns = Number(runsArg ?? 1000)
const seed = seedArg !== undefined ? Number(seedArg) : Date.now() ^ (process.pid << 8)
const FORCED = process.env.NODE_SHARED_MEM_FORCE_COPY === '1'
const L = 64 // fixture size
const UMASK = process.umask()

// ---------- fixtures ----------
const FIX = uniqueName('fz')
const SCRATCH = uniqueName('fzs')
const fixMem = SharedMemory.create(FIX, L)
const fixRead = new SharedMemory(FIX, undefined, MemoryAccess.READ)
const created = new Set([FIX])
process.on('exit', () => {
  for (const n of [...created, SCRATCH]) {
    try { fs.unlinkSync(shmPath(n)) } catch {}
  }
})

// ---------- hostile values ----------
let valueOfCalls = 0
const trap = () => ({ valueOf() { valueOfCalls++; return 4 }, toString() { valueOfCalls++; return '4' } })
const hostileConst = fc.constantFrom(
  NaN, 0, -0, Infinity, -Infinity, 0.5, -0.5, 1.5, 3.999999, -1, -4, 1, 4, 8, 60, 63, 64, 65, 68,
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 4, 2 ** 32 + 0.5,
  2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE,
  Number.EPSILON, 1e308, 1e-7,
  undefined, null, true, false, '', '0', '4', ' 4 ', '0x10', 'abc', 0n, 1n, 4n, -1n, 2n ** 64n,
  [], [4], [1, 2], {}, Object.create(null), new Date(4), /4/, new Number(4), new String('4'),
)
const hostileMaker = fc.constantFrom(
  () => Symbol('s'), trap, () => () => 4, () => new Proxy({}, {}), () => new ArrayBuffer(4),
  () => new Int32Array(1),
).map((f) => f())
const hostile = fc.oneof(
  hostileConst,
  hostileMaker,
  fc.double(),
  fc.integer(),
  fc.integer({ min: -64, max: 64 }).map((k) => 2 ** 32 + k),
  fc.integer({ min: -64, max: 64 }).map((k) => 2 ** 53 + k),
  fc.integer({ min: -64, max: 64 }).map((k) => -(2 ** 32) + k),
  fc.bigInt(),
  fc.string({ maxLength: 8 }),
)
const idx = fc.oneof(fc.integer({ min: 0, max: L }), fc.constant(undefined), hostile)
const off4 = fc.oneof(fc.integer({ min: 0, max: L / 4 - 1 }).map((x) => x * 4), fc.integer({ min: 0, max: L }), hostile)
const i32 = fc.oneof(fc.integer(), fc.integer({ min: -3, max: 3 }), hostile)

// Test isolation: /dev/shm is shared with every other process on the machine, so no generated
// name that can reach the OS may be a fixed global one ('abc', 'x'.repeat(255), a random
// string …): another process could own it (this fuzz would then fail, or worse open, overwrite
// or unlink that process's segment). Every name that passes the up-front checks is made to start
// with RUN, this run's unique prefix; names that the checks refuse before any syscall (empty,
// '/' inside, NUL, too long) keep their shape. The length limits are covered by names built to
// end exactly at the boundary.
const RUN = uniqueName('fzn') + '-'
function ownName(n) {
  if (typeof n !== 'string') return n
  const lead = n.startsWith('/') ? '/' : ''
  const bare = n.slice(lead.length)
  if (bare === '' || bare.includes('/') || bare.includes('\0') || bare.startsWith(RUN) || bare === FIX || bare === SCRATCH) return n
  if (bare === '.' || bare === '..' || Buffer.byteLength(bare) > 255) return n // refused up front
  const own = lead + RUN + bare
  // Keep a name that fitted fitting (the limit itself is covered by `boundary` below).
  return Buffer.byteLength(own) - lead.length <= 255 ? own : lead + RUN + 'x'.repeat(255 - RUN.length)
}
/** RUN followed by `unit` repeated so that the name is `bytes` bytes long (or just under). */
const fill = (unit, bytes) => RUN + unit.repeat(Math.floor((bytes - RUN.length) / Buffer.byteLength(unit)))
const boundary = [254, 255, 256, 257].flatMap((b) => [fill('x', b), '/' + fill('x', b), fill('é', b), fill('\u{1F600}', b)])
const nameArb = fc.oneof(
  fc.constantFrom(FIX, '/' + FIX, '//' + FIX, FIX + '/', SCRATCH, '/' + SCRATCH, '', '/', '//', '.', '..', '/.', '/..',
    'a\0b', '\0', 'a/b', '/a/b', 'a\uD800b', '\uDFFF', 'é'.repeat(128), 'x'.repeat(256),
    '/' + 'x'.repeat(256), '日本語-名前', '\u{1F600}'.repeat(64), ...boundary),
  fc.string({ minLength: 1, maxLength: 40 }).map((s) => 'nsm-fz-' + s),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', minLength: 60, maxLength: 140 }),
  fc.tuple(fc.string({ maxLength: 10 }), fc.constantFrom('/', '\0'), fc.string({ maxLength: 10 })).map(([a, s, b]) => 'nsm-fz-' + a + s + b),
  fc.integer({ min: 240, max: 300 }).map((n) => RUN + 'n'.repeat(n - RUN.length)),
  hostile,
).map(ownName)

// ---------- oracle helpers ----------
class Expect { constructor(code, kind) { this.code = code; this.kind = kind } }
const TYPE = (c = 'ERR_INVALID_ARG_TYPE') => new Expect(c, TypeError)
const RANGE = () => new Expect('ERR_OUT_OF_RANGE', RangeError)
const SYS = (c) => new Expect(c, Error)
// An error from an OS call: must carry errno/syscall/path as Node's SystemError does.
const OS = (c) => Object.assign(new Expect(c, Error), { os: true })
const isInt = (v, min, max) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

/** undefined → default; else TYPE/RANGE per the binding's rules, or the integer. */
function indexRule(v, max) {
  if (v === undefined) return { value: undefined }
  if (typeof v !== 'number') return { err: TYPE() }
  if (!isInt(v, 0, max)) return { err: RANGE() }
  return { value: v + 0 }
}
function offsetRule(v) {
  if (v === undefined || typeof v !== 'number') return { err: TYPE() }
  if (!isInt(v, 0, L - 4) || v % 4 !== 0) return { err: RANGE() }
  return { value: v + 0 }
}
function i32Rule(v) {
  if (v === undefined || typeof v !== 'number') return { err: TYPE() }
  if (!isInt(v, -(2 ** 31), 2 ** 31 - 1)) return { err: RANGE() }
  return { value: v + 0 }
}
function timeoutRule(v) {
  if (v === undefined) return { value: Infinity }
  if (typeof v !== 'number') return { err: TYPE() }
  if (Number.isNaN(v) || v < 0) return { err: RANGE() }
  return { value: v }
}
function countRule(v) {
  if (v === undefined) return { value: Infinity }
  if (typeof v !== 'number') return { err: TYPE() }
  if (v === Infinity) return { value: v }
  if (Number.isNaN(v) || !Number.isInteger(v) || v < 0) return { err: RANGE() }
  return { value: v }
}
/** Name checks of the binding and core: type, then (after other args) value. */
function nameValueRule(n) {
  const bare = n.startsWith('/') ? n.slice(1) : n
  if (bare === '' || bare.includes('\0') || bare.includes('/') || Buffer.byteLength(bare) + 1 > 256) {
    return { err: TYPE('ERR_INVALID_ARG_VALUE') }
  }
  // '.' and '..' are refused up front (they name /dev/shm itself and its parent).
  if (bare === '.' || bare === '..') return { err: TYPE('ERR_INVALID_ARG_VALUE') }
  return { value: n, exists: fs.existsSync(shmPath(bare)) }
}

const stats = { cases: 0, ok: 0, codes: {} }
function fail(msg) { throw new Error(msg) }

/** Runs `call`; checks it threw `expected` (an Expect) or returned; returns the result. */
function outcome(call, expected) {
  let result
  try {
    result = call()
  } catch (e) {
    return checkError(e, expected)
  }
  if (expected) fail(`expected ${expected.kind.name} ${expected.code}, but the call succeeded (returned ${fmt(result)})`)
  stats.ok++
  return { ok: true, result }
}
function checkError(e, expected) {
  if (!(e instanceof Error)) fail(`threw a non-Error: ${fmt(e)}`)
  if (typeof e.code !== 'string' || e.code === '') fail(`threw ${e.constructor.name} without a string code: ${e.message}`)
  if (![TypeError, RangeError, Error].includes(e.constructor)) fail(`threw an unexpected class ${e.constructor.name}`)
  stats.codes[e.code] = (stats.codes[e.code] ?? 0) + 1
  if (!expected) fail(`expected success, but threw ${e.constructor.name} ${e.code}: ${e.message}`)
  if (expected.alt && e.code === expected.alt.code && e.constructor === expected.alt.kind) expected = expected.alt
  if (e.code !== expected.code || e.constructor !== expected.kind) {
    fail(`expected ${expected.kind.name} ${expected.code}, got ${e.constructor.name} ${e.code}: ${e.message}`)
  }
  if (expected.os) {
    if (typeof e.errno !== 'number' || typeof e.syscall !== 'string' || typeof e.path !== 'string') {
      fail(`system error ${e.code} lacks errno/syscall/path`)
    }
  }
  return { ok: false, error: e }
}
function fmt(v) {
  try { return fc.stringify(v) } catch { return String(v) }
}
function eqBytes(a, b, what) {
  if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) fail(`${what}: bytes differ\n got ${Buffer.from(a).toString('hex')}\nwant ${Buffer.from(b).toString('hex')}`)
}
function randomFill(buf) { require('node:crypto').randomFillSync(buf); return buf }

// Sets the segment to fresh random bytes P (via /dev/shm) and the caged buffer to Q.
function setup(mem = fixMem) {
  const P = randomFill(Buffer.alloc(L))
  writeSeg(FIX, 0, P)
  let Q = null
  if (FORCED) {
    Q = randomFill(Buffer.alloc(L))
    Buffer.from(mem.buffer).set(Q)
  }
  return { P, Q }
}
function view(mem) { return Buffer.from(mem.buffer) }
function word(buf, off) { return buf.readInt32LE(off) }

// ---------- entry points ----------
const entries = {}

const ctorName = fc.oneof({ arbitrary: fc.constantFrom(FIX, '/' + FIX), weight: 2 }, { arbitrary: nameArb, weight: 3 })
const ctorLen = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 80 }), weight: 2 }, fc.constant(undefined), hostile)
const ctorAccess = fc.oneof({ arbitrary: fc.constantFrom(0, 1, undefined), weight: 2 }, hostile)
entries.constructor = fc.property(ctorName, ctorLen, ctorAccess, (name, length, access) => {
  // The scratch name is an existing 0-byte segment (created but not sized yet).
  if (typeof name === 'string' && name.replace(/^\//, '') === SCRATCH) fs.writeFileSync(shmPath(SCRATCH), Buffer.alloc(0))
  const exp = (() => {
    if (typeof name !== 'string') return TYPE()
    if (length !== undefined) {
      if (typeof length !== 'number') return TYPE()
      if (!isInt(length, 1, 2 ** 53 - 1)) return RANGE()
    }
    if (access !== undefined) {
      if (typeof access !== 'number') return TYPE()
      if (access !== 0 && access !== 1) return RANGE()
    }
    const r = nameValueRule(name)
    if (r.err) return r.err
    const bare = name.replace(/^\//, '')
    if (!r.exists) return OS('ENOENT')
    if (bare !== FIX && bare !== SCRATCH) fail(`unexpected existing segment ${name}`)
    const size = fs.statSync(shmPath(bare)).size
    if (length !== undefined && length > size) return RANGE()
    if (size === 0) return SYS('ERR_SHM_EMPTY')
    return null
  })()
  const P = randomFill(Buffer.alloc(L))
  writeSeg(FIX, 0, P)
  const r = outcome(() => new SharedMemory(name, length, access), exp)
  if (!r.ok) return
  const m = r.result
  try {
    const want = length === undefined ? L : length
    if (m.length !== want) fail(`length ${m.length} != ${want}`)
    // Lone surrogates cannot cross into UTF-8: they read back as U+FFFD.
    if (m.name !== name.toWellFormed()) fail(`name ${fmt(m.name)} != ${fmt(name)}`)
    if (m.access !== (access === undefined ? 1 : access)) fail(`access ${m.access}`)
    if (m.requiresCopy !== FORCED) fail(`requiresCopy ${m.requiresCopy}`)
    if (m.buffer.byteLength !== want) fail(`buffer.byteLength ${m.buffer.byteLength}`)
    eqBytes(view(m), P.subarray(0, want), 'buffer after open')
  } finally {
    m.close()
  }
  if (m.closed !== true || m.buffer !== undefined) fail('close() did not close')
})

const createLen = fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.constant(undefined),
  hostile.filter((v) => !(isInt(v, 1, 2 ** 53 - 1) && v > 1 << 20)))
const optionsArb = fc.oneof(
  fc.constant(undefined),
  fc.record({ mode: fc.oneof(fc.integer({ min: 0, max: 0o7777 }), fc.constantFrom(0o600, 0o644, 0o666, 0o777, 0o1000, 0o2600, 0o4755, 0o7777, 0o10000, -1), hostile), exclusive: fc.oneof(fc.boolean(), hostile) }, { requiredKeys: [] }),
  fc.constant('throwing-getter'),
  hostile,
)
const freshName = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).map((s) => RUN + s.replace(/[\/\0]/g, '_'))
const createName = fc.oneof({ arbitrary: freshName, weight: 2 }, { arbitrary: nameArb, weight: 3 })
entries.create = fc.property(createName, createLen, optionsArb, (name, length, options) => {
  let thrown = null
  if (options === 'throwing-getter') {
    thrown = new Error('from a getter')
    options = { get mode() { throw thrown } }
  }
  const bare = typeof name === 'string' ? name.replace(/^\//, '') : ''
  if (bare === SCRATCH) fs.writeFileSync(shmPath(SCRATCH), Buffer.alloc(0))
  const exp = (() => {
    if (typeof name !== 'string') return TYPE()
    if (typeof length !== 'number') return TYPE()
    if (!isInt(length, 1, 2 ** 53 - 1)) return RANGE()
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') return TYPE()
      if (thrown) return 'thrown'
      const { mode, exclusive } = options
      if (mode !== undefined) {
        if (typeof mode !== 'number') return TYPE()
        if (!isInt(mode, 0, 0o777)) return RANGE() // permission bits only (issue 17: no setuid/setgid/sticky)
      }
      if (exclusive !== undefined && typeof exclusive !== 'boolean') return TYPE()
    }
    const r = nameValueRule(name)
    if (r.err) return r.err
    if (r.exists) {
      if (options?.exclusive !== false) return OS('EEXIST')
      const size = fs.statSync(shmPath(name.replace(/^\//, ''))).size
      if (size !== 0 && length > size) return RANGE()
    }
    return null
  })()
  const nameOk = typeof name === 'string' && !nameValueRule(name).err
  const existed = nameOk && nameValueRule(name).exists
  if (exp === 'thrown') {
    try { SharedMemory.create(name, length, options); fail('getter exception swallowed') } catch (e) {
      if (e !== thrown) fail(`getter exception replaced by ${e && e.code} ${e && e.message}`)
    }
    stats.codes['(getter exception passed through)'] = (stats.codes['(getter exception passed through)'] ?? 0) + 1
    return
  }
  const r = outcome(() => SharedMemory.create(name, length, options), exp)
  if (!r.ok) {
    // A failed create must not leave a segment behind that was not there before.
    if (nameOk && !existed && fs.existsSync(shmPath(bare))) {
      fail(`failed create (${r.error.code}) left segment ${bare} behind`)
    }
    return
  }
  const m = r.result
  try {
    if (bare !== FIX && bare !== SCRATCH) created.add(bare)
    const st = fs.statSync(shmPath(bare))
    if (!existed || (bare === SCRATCH)) {
      const wantMode = (options?.mode ?? 0o600) & ~UMASK
      // Exact: no setuid/setgid/sticky bit can be asked for, none may appear.
      const got = st.mode & 0o7777
      if (!existed && got !== wantMode) fail(`mode ${got.toString(8)} != ${wantMode.toString(8)}`)
      if (st.size !== length) fail(`size ${st.size} != ${length}`)
      if (!existed) eqBytes(view(m).subarray(0, Math.min(length, 256)), Buffer.alloc(Math.min(length, 256)), 'new segment not zero-filled')
    }
    if (m.length !== length) fail(`length ${m.length} != ${length}`)
    if (m.access !== 1 || m.requiresCopy !== FORCED || m.name !== name.toWellFormed()) fail('bad getters after create')
  } finally {
    m.close()
    if (bare !== FIX) { try { fs.unlinkSync(shmPath(bare)) } catch {} created.delete(bare) }
  }
})

entries.unlink = fc.property(nameArb, fc.boolean(), (name, makeScratch) => {
  if (makeScratch) fs.writeFileSync(shmPath(SCRATCH), Buffer.alloc(8))
  else try { fs.unlinkSync(shmPath(SCRATCH)) } catch {}
  if (typeof name === 'string' && name.replace(/^\//, '') === FIX) name = SCRATCH // never unlink the fixture
  const rule = typeof name !== 'string' ? { err: TYPE() } : nameValueRule(name)
  const r = outcome(() => SharedMemory.unlink(name), rule.err ?? null)
  if (!r.ok) return
  if (r.result !== rule.exists) fail(`unlink returned ${r.result}, existed: ${rule.exists}`)
  if (fs.existsSync(shmPath(name.replace(/^\//, '')))) fail('name still exists after unlink')
})

function copyCase(which, mem, s, d, n) {
  const a = indexRule(s, L)
  const b = a.err ? a : indexRule(d, L)
  const rest = a.err || b.err ? 0 : Math.min(L - (a.value ?? 0), L - (b.value ?? 0))
  const c = a.err || b.err ? {} : indexRule(n, rest)
  let exp = a.err ?? b.err ?? c.err ?? null
  if (!exp && which === 'copyTo' && mem.access === 0) exp = SYS('EACCES')
  const { P, Q } = setup(mem)
  const r = outcome(() => mem[which](s, d, n), exp)
  const S = a.value ?? 0, D = b.value ?? 0, N = c.value ?? rest
  const seg = readSeg(FIX, 0, L)
  if (!FORCED || !r.ok) {
    // Zero-copy: a no-op. Failed call: nothing changes.
    eqBytes(seg, P, `${which}: segment changed`)
    if (FORCED) eqBytes(view(mem), Q, `${which}: buffer changed`)
    else if (mem.access === 1) eqBytes(view(mem), P, 'zero-copy buffer is not the segment')
    return
  }
  if (r.result !== undefined) fail(`${which} returned ${fmt(r.result)}`)
  if (which === 'copyFrom') {
    const want = Buffer.from(Q); P.copy(want, D, S, S + N)
    eqBytes(view(mem), want, `copyFrom(${S},${D},${N}) buffer`)
    eqBytes(seg, P, 'copyFrom changed the segment')
  } else {
    const want = Buffer.from(P); Q.copy(want, D, S, S + N)
    eqBytes(seg, want, `copyTo(${S},${D},${N}) segment`)
    eqBytes(view(mem), Q, 'copyTo changed the buffer')
  }
}
entries.copyFrom = fc.property(idx, idx, idx, (s, d, n) => copyCase('copyFrom', fixMem, s, d, n))
entries.copyTo = fc.property(idx, idx, idx, (s, d, n) => copyCase('copyTo', fixMem, s, d, n))
entries.copyToRead = fc.property(idx, idx, idx, (s, d, n) => copyCase('copyTo', fixRead, s, d, n))
entries.copyFromRead = fc.property(idx, idx, idx, (s, d, n) => copyCase('copyFrom', fixRead, s, d, n))

function atomicCase(op, mem, args) {
  const o = offsetRule(args[0])
  const rules = o.err ? [] : args.slice(1).map(i32Rule)
  let exp = o.err ?? rules.find((x) => x.err)?.err ?? null
  if (!exp && op !== 'atomicLoad' && mem.access === 0) exp = SYS('EACCES')
  const { P } = setup(mem)
  const r = outcome(() => mem[op](...args), exp)
  const seg = readSeg(FIX, 0, L)
  if (!r.ok) return eqBytes(seg, P, `${op} failed but changed the segment`)
  const off = o.value
  const old = word(P, off)
  const want = Buffer.from(P)
  const v = rules.map((x) => x.value)
  let ret
  if (op === 'atomicLoad') ret = old
  else if (op === 'atomicStore') { ret = v[0]; want.writeInt32LE(v[0], off) }
  else if (op === 'atomicAdd') { ret = old; want.writeInt32LE((old + v[0]) | 0, off) }
  else { ret = old; if (old === v[0]) want.writeInt32LE(v[1], off) }
  if (!Object.is(r.result, ret)) fail(`${op}(${args.map(fmt)}) returned ${fmt(r.result)}, want ${ret}`)
  eqBytes(seg, want, `${op} segment`)
}
entries.atomicLoad = fc.property(off4, (o) => atomicCase('atomicLoad', fixMem, [o]))
entries.atomicStore = fc.property(off4, i32, (o, v) => atomicCase('atomicStore', fixMem, [o, v]))
entries.atomicAdd = fc.property(off4, i32, (o, v) => atomicCase('atomicAdd', fixMem, [o, v]))
entries.atomicCompareExchange = fc.property(off4, i32, i32, fc.boolean(), (o, e, rep, matchOld) => {
  // Half the time make `expected` equal the current value so that the swap happens.
  if (matchOld && isInt(o, 0, L - 4) && o % 4 === 0) {
    const P = setup().P
    e = word(P, o)
  }
  atomicCase('atomicCompareExchange', fixMem, [o, e, rep])
})
entries.atomicsRead = fc.property(fc.constantFrom('atomicLoad', 'atomicStore', 'atomicAdd', 'atomicCompareExchange'), off4, i32, i32,
  (op, o, a, b) => atomicCase(op, fixRead, op === 'atomicLoad' ? [o] : op === 'atomicCompareExchange' ? [o, a, b] : [o, a]))

function waitPlan(o, expected, timeout, useCurrent) {
  const ro = offsetRule(o)
  const re = ro.err ? {} : i32Rule(expected)
  const rt = ro.err || re.err ? {} : timeoutRule(timeout)
  const exp = ro.err ?? re.err ?? rt.err ?? null
  setup()
  let want = null
  if (!exp) {
    const cur = word(readSeg(FIX, 0, L), ro.value)
    if (useCurrent) expected = cur
    const ex = useCurrent ? cur : re.value
    if (cur !== ex) want = 'not-equal'
    else if (rt.value <= 20) want = 'timed-out'
    else {
      const b = Buffer.alloc(4); b.writeInt32LE((cur ^ 1) | 0); writeSeg(FIX, ro.value, b)
      want = 'not-equal'
    }
  }
  return { exp, want, args: [o, expected, timeout] }
}
const timeoutArb = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constantFrom(undefined, Infinity, 1e9, 0.5, 2 ** 53), hostile)
entries.wait = fc.property(off4, i32, timeoutArb, fc.boolean(), (o, e, t, cur) => {
  const p = waitPlan(o, e, t, cur)
  const r = outcome(() => fixMem.wait(...p.args), p.exp)
  if (r.ok && r.result !== p.want) fail(`wait returned ${r.result}, want ${p.want}`)
})
entries.waitAsync = fc.asyncProperty(off4, i32, timeoutArb, fc.boolean(), async (o, e, t, cur) => {
  const p = waitPlan(o, e, t, cur)
  const r = outcome(() => fixMem.waitAsync(...p.args), p.exp)
  if (!r.ok) return
  if (!(r.result instanceof Promise)) fail('waitAsync did not return a Promise')
  const v = await r.result
  if (v !== p.want) fail(`waitAsync resolved ${v}, want ${p.want}`)
})
entries.notify = fc.property(off4, fc.oneof(fc.integer({ min: 0, max: 10 }), hostile), (o, c) => {
  const ro = offsetRule(o)
  const exp = ro.err ?? countRule(c).err ?? null
  const r = outcome(() => fixMem.notify(o, c), exp)
  if (r.ok && r.result !== 0) fail(`notify woke ${r.result} with no waiter`)
})

// Every method and getter after close().
const closedMem = SharedMemory.create(uniqueName('fzc'), L)
created.add(closedMem.name)
const oldBuffer = closedMem.buffer
closedMem.close()
const methods = ['copyFrom', 'copyTo', 'atomicLoad', 'atomicStore', 'atomicAdd', 'atomicCompareExchange', 'wait', 'waitAsync', 'notify']
entries.closed = fc.property(fc.constantFrom(...methods, 'getters', 'close', 'dispose'), fc.array(hostile, { maxLength: 3 }), (what, args) => {
  if (what === 'getters') {
    for (const g of ['name', 'length', 'access', 'buffer', 'requiresCopy']) {
      if (closedMem[g] !== undefined) fail(`${g} after close: ${fmt(closedMem[g])}`)
    }
    if (closedMem.closed !== true) fail('closed !== true')
    if (oldBuffer.byteLength !== 0) fail('buffer not detached')
    stats.ok++
    return
  }
  if (what === 'close' || what === 'dispose') {
    const r = outcome(() => (what === 'close' ? closedMem.close(...args) : closedMem[Symbol.dispose](...args)), null)
    if (r.result !== undefined) fail('close returned a value')
    return
  }
  outcome(() => closedMem[what](...args), SYS('ERR_SHM_CLOSED'))
})

// ---------- raw native callbacks (issue 17) ----------
// The binding object the class uses, called directly: hostile handles and arguments must give a
// coded error (or the documented result), never bad memory. The copies have an exact oracle:
// the mutation "caged-copy bound check replaced by an unchecked index" fails it.
const raw = require('../index.js')
const RAW = uniqueName('fzr')
created.add(RAW)
const rawMem = SharedMemory.create(RAW, L)
const [rawHandle, rawBuffer] = raw.openSegment(RAW, undefined, undefined)
const [deadHandle] = raw.openSegment(RAW, undefined, undefined)
raw.close(deadHandle)
process.on('exit', () => { raw.close(rawHandle); rawMem.close(); void rawBuffer })
const isIndex = (v) => typeof v === 'number' && v >= 0 && Number.isInteger(v) && v <= 2 ** 64
const rawIdx = fc.oneof(fc.integer({ min: 0, max: L + 4 }), hostile)
const rawHandleArb = fc.oneof(
  fc.constant('live').map(() => rawHandle),
  fc.constant('closed').map(() => deadHandle),
  hostile,
)
const TE = (code) => ({ kind: TypeError, code })
const RE = (code) => ({ kind: RangeError, code })
const EE = (code) => ({ kind: Error, code })
entries.raw = fc.property(
  fc.constantFrom('copyFrom', 'copyTo', 'load', 'store', 'add', 'compareExchange', 'notify', 'wait', 'atomicsView', 'sharedBuffer', 'close', 'pageOffset'),
  rawHandleArb, rawIdx, rawIdx, rawIdx,
  (fn, h, a, b, c) => {
    const live = h === rawHandle
    if (fn === 'pageOffset') {
      // Never throws: -1 for anything but a typed array; an offset in [0, 4096) for one.
      const v = [h, rawBuffer, new Uint8Array(rawBuffer, typeof a === 'number' && a >= 0 && a <= L ? Math.floor(a) : 0)][(typeof b === 'number' ? b : 0) % 3 | 0]
      let r
      try {
        r = raw.pageOffset(v, a, b, c)
      } catch (e) {
        fail(`pageOffset threw ${e}`)
      }
      const typed = ArrayBuffer.isView(v) && !(v instanceof DataView)
      if (typed ? !(Number.isInteger(r) && r >= 0 && r < 4096) : r !== -1) fail(`pageOffset(${typed ? 'a typed array' : typeof v}) returned ${r}`)
      stats.ok++
      return
    }
    if (fn === 'close') {
      if (live) return // keep the fixture open; closing is covered with the dead handle
      outcome(() => raw.close(h, rawBuffer, new ArrayBuffer(8)), h === deadHandle ? undefined : TE('ERR_INVALID_ARG_TYPE'))
      if (rawBuffer.byteLength !== L) fail('close() with a foreign handle detached a buffer it was passed')
      return
    }
    if (fn === 'copyFrom' || fn === 'copyTo') {
      let expected
      if (!(live || h === deadHandle) || ![a, b, c].every(isIndex)) expected = TE('ERR_INVALID_ARG_TYPE')
      else if (!live) expected = EE('ERR_SHM_DETACHED')
      else if (!FORCED) expected = EE('ERR_SHM_DETACHED')
      else if (a + c > L || b + c > L) expected = RE('ERR_OUT_OF_RANGE')
      // A closed instance: its caged buffer is detached, so the copy has nothing to copy with.
      outcome(() => raw[fn](h, a, b, c), expected)
      return
    }
    if (!(live || h === deadHandle)) {
      outcome(() => raw[fn](h, a, b, c), TE('ERR_INVALID_ARG_TYPE'))
      return
    }
    // Live or closed handle, hostile numbers: a coded error or a result, never a crash.
    const args = fn === 'wait' ? [h, a, b, 0, false] : [h, a, b, c]
    try {
      raw[fn](...args)
      stats.ok++
    } catch (e) {
      checkError(e, { kind: e.constructor, code: e.code })
    }
  },
)

// ---------- run ----------
async function main() {
  const prop = entries[entry]
  if (!prop) { console.error(`unknown entry ${entry}; known: ${Object.keys(entries).join(', ')}`); process.exit(2) }
  let countingProp = prop
  const t0 = Date.now()
  const params = { numRuns, seed, endOnFailure: true }
  // Count cases: wrap via beforeEach hook.
  countingProp = prop.beforeEach((prev) => { stats.cases++; return prev() })
  let failure = null
  const details = entry === 'waitAsync' ? await fc.check(countingProp, params) : fc.check(countingProp, params)
  if (details.failed) {
    const err = details.errorInstance
    failure = `counterexample ${fmt(details.counterexample)} (seed ${details.seed}, path ${details.counterexamplePath}): ` +
      String(err && err.message ? err.message : err).slice(0, 3000)
  }
  if (valueOfCalls) failure = (failure ?? '') + `\nvalueOf/toString of an argument was called ${valueOfCalls} times (arguments must not be coerced)`
  fixMem.close(); fixRead.close()
  report({ kind: 'fuzz', entry, mode: FORCED ? 'copy' : 'zero-copy', numRuns, seed, cases: stats.cases, succeeded: stats.ok, codes: stats.codes, ms: Date.now() - t0, failure })
  process.exitCode = failure ? 1 : 0
}
main()
