'use strict'
// The lifecycle scenarios (issue 9): workers, buffers leaving their owner, waits at teardown,
// hostile /dev/shm entries, API misuse, the create(exclusive:false) race, inherited descriptors.
//
//   node --expose-gc lifecycle/scenarios.cjs --scenario <name>     one scenario (what run.js does)
//   node lifecycle/scenarios.cjs --list                            the names
//
// Every scenario runs in a process of its own (lifecycle/run.js starts it, with a timeout), so a
// crash shows up as the signal that killed it and a hang as a timeout. A scenario ends with one
// "@@LC {status, detail}" line (common.cjs): pass, fail (a wrong result, with what was expected
// and what was seen), na (the runtime lacks an API the scenario needs: not a pass) or skip.
// Workers run this same file with workerData.role set.
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { isMainThread, parentPort, workerData, Worker } = require('node:worker_threads')
const C = require('./common.cjs')
const { CAGED, check, eq, fail, na, errStr, throwsCode, throwsCoded, sleep, until, settleWithin } = C

const SIZE = 4096
const HEAD = 'a1b2c3d4' // what the Python peer writes at offset 0 of the segments it creates
const MODE_NAME = CAGED ? 'caged' : 'zero-copy'

/** name -> { name, group, timeoutMs, run } */
const SCENARIOS = []
function scenario(name, group, run, opts = {}) {
  SCENARIOS.push({ name, group, run, timeoutMs: opts.timeoutMs ?? 10000, ...opts })
}
/** Worker roles: role -> async (workerData) => void. */
const ROLES = {}

function hex(ab, off, n) {
  return Buffer.from(new Uint8Array(ab, off, n)).toString('hex')
}
function shmExists(name) {
  try {
    fs.lstatSync(C.shmPath(name))
    return true
  } catch {
    return false
  }
}
/** Collects several checks' failures instead of stopping at the first. */
function soft(problems, what, fn) {
  try {
    const r = fn()
    return r
  } catch (e) {
    problems.push(e instanceof C.Fail ? e.message : `${what}: unexpected ${errStr(e)}`)
    return undefined
  }
}

// ---------------------------------------------------------------- workers from the main thread
function startWorker(role, data = {}) {
  const w = new Worker(__filename, { workerData: { role, ...data } })
  const msgs = []
  let wake = []
  let error = null
  let exitCode = null
  const exited = new Promise((res) =>
    w.on('exit', (c) => {
      exitCode = c
      res(c)
      for (const f of wake.splice(0)) f()
    }),
  )
  w.on('message', (m) => {
    msgs.push(m)
    for (const f of wake.splice(0)) f()
  })
  w.on('error', (e) => {
    error = e
    for (const f of wake.splice(0)) f()
  })
  return {
    w,
    msgs,
    exited,
    get exitCode() {
      return exitCode
    },
    /** The next message of `type` (a worker's 'fail'/'na' message is thrown as such). */
    next(type, ms = 8000) {
      return new Promise((resolve, reject) => {
        const end = Date.now() + ms
        let timer
        const look = () => {
          clearTimeout(timer)
          const bad = msgs.find((m) => m.type === 'fail' || m.type === 'na')
          if (bad) return reject(bad.type === 'na' ? new C.NotApplicable(bad.text) : new C.Fail(`worker (${role}): ${bad.text}`))
          const i = msgs.findIndex((m) => (Array.isArray(type) ? type.includes(m.type) : m.type === type))
          if (i >= 0) return resolve(msgs.splice(i, 1)[0])
          if (error) return reject(new C.Fail(`worker (${role}) threw ${errStr(error)}`))
          if (exitCode !== null) return reject(new C.Fail(`worker (${role}) exited (code ${exitCode}) before sending '${type}'`))
          if (Date.now() > end) return reject(new C.Fail(`worker (${role}) sent no '${type}' within ${ms} ms`))
          wake.push(look)
          timer = setTimeout(look, Math.max(1, Math.min(100, end - Date.now())))
        }
        look()
      })
    },
    /** Exit code, or fails if the worker has not exited within `ms`. */
    async exitedWithin(ms, what = 'exit') {
      const s = await settleWithin(exited, ms)
      if (s.pending) fail(`worker (${role}) did not ${what} within ${ms} ms`)
      if (error) fail(`worker (${role}) threw ${errStr(error)}`)
      return s.value
    },
  }
}

function runWorkerRole() {
  const role = ROLES[workerData.role]
  const send = (m, list) => parentPort.postMessage(m, list)
  Promise.resolve()
    .then(() => role(workerData, send))
    .catch((e) => {
      if (e instanceof C.NotApplicable) send({ type: 'na', text: e.message })
      else send({ type: 'fail', text: e instanceof C.Fail ? e.message : `${errStr(e)}\n${e?.stack ?? ''}` })
    })
}

function naSharedBuffer() {
  na(CAGED ? 'sharedBuffer is null in caged mode' : 'sharedBuffer is null: the runtime lacks node_api_create_external_sharedarraybuffer')
}

// ================================================================ workers
ROLES.use = async ({ name, close, i }, send) => {
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  if (mem.requiresCopy !== CAGED) fail(`requiresCopy is ${mem.requiresCopy} in ${MODE_NAME} mode`)
  if (mem.requiresCopy) mem.copyFrom()
  const head = hex(mem.buffer, 0, 4)
  new Uint8Array(mem.buffer)[100 + i] = i + 1
  if (mem.requiresCopy) mem.copyTo(100 + i, 100 + i, 1)
  mem.atomicAdd(64, 1)
  if (close) mem.close()
  send({ type: 'done', head, requiresCopy: CAGED })
  // The worker then ends on its own (its event loop drains), with or without the instance open.
}

async function workerUse(close) {
  const name = C.uniqueName('wu')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const N = 6
    for (let i = 0; i < N; i++) {
      const h = startWorker('use', { name, close, i })
      const m = await h.next('done')
      eq(m.head, HEAD, `worker ${i} read of the peer's bytes`)
      eq(await h.exitedWithin(5000), 0, `worker ${i} exit code`)
    }
    const counter = Buffer.from(C.py('read', name, 64, 4), 'hex').readInt32LE(0)
    eq(counter, N, "the peer's view of the counter the workers incremented")
    eq(C.py('read', name, 100, N + 1), Buffer.from([...Array.from({ length: N }, (_, i) => i + 1), 0]).toString('hex'), "the peer's view of the workers' bytes (and the byte after them)")
    await until(() => C.fdsTo(name) === 0 && C.mapsOf(name) === 0, 3000)
    eq(C.fdsTo(name), 0, `descriptors of the segment left in the process after ${N} workers exited`)
    eq(C.mapsOf(name), 0, `mappings of the segment left in the process after ${N} workers exited`)
    return `${N} workers in turn: peer saw counter ${counter} and each worker's byte; 0 fds and 0 mappings left`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
}
scenario('worker-use-close-exit', 'workers', () => workerUse(true))
scenario('worker-use-exit-unclosed', 'workers', () => workerUse(false))

ROLES.storm = async ({ name, iters, prefix }, send) => {
  const { SharedMemory } = C.lib()
  for (let i = 0; i < iters; i++) {
    const m = new SharedMemory(name)
    m.atomicAdd(0, 1)
    const own = `${prefix}${i}-${Math.random().toString(16).slice(2, 8)}`
    const c = SharedMemory.create(own, SIZE)
    new Uint8Array(c.buffer)[1] = 7
    if (c.requiresCopy) c.copyTo(1, 1, 1)
    if (SharedMemory.unlink(own) !== true) fail(`unlink('${own}') did not return true`)
    c.close()
    if (i % 2 === 0) m.close() // the odd ones are left to the GC / worker teardown
    if (i % 25 === 0) {
      const r = await new SharedMemory(name).waitAsync(4, 12345, 1000)
      if (r !== 'not-equal') fail(`waitAsync on a word that differs returned '${r}'`)
    }
  }
  send({ type: 'done' })
}
scenario('workers-8-storm', 'workers', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('storm')
  const mem = SharedMemory.create(name, SIZE)
  try {
    const fds0 = C.fdsTo(name)
    const maps0 = C.mapsOf(name)
    const iters = 100
    const prefix = `nsm-lc-${process.pid}-st-`
    const hs = Array.from({ length: 8 }, () => startWorker('storm', { name, iters, prefix }))
    await Promise.all(hs.map((h) => h.next('done', 12000)))
    const codes = await Promise.all(hs.map((h) => h.exitedWithin(5000)))
    eq(codes.join(','), '0,0,0,0,0,0,0,0', 'exit codes of the 8 workers')
    eq(mem.atomicLoad(0), 8 * iters, 'the shared counter (one atomicAdd per open in 8 workers)')
    await until(() => C.fdsTo(name) === fds0 && C.mapsOf(name) === maps0, 3000)
    eq(C.fdsTo(name), fds0, "descriptors of the segment after the workers exited (the main thread's own)")
    eq(C.mapsOf(name), maps0, "mappings of the segment after the workers exited (the main thread's own)")
    const left = fs.readdirSync(C.SHM_DIR).filter((f) => f.startsWith(prefix))
    eq(left.length, 0, 'segments the workers created and unlinked still in /dev/shm')
    return `8 workers × ${iters} open/create/unlink/close (half left unclosed): counter ${8 * iters}, fds ${fds0}→${C.fdsTo(name)}, maps ${maps0}→${C.mapsOf(name)}`
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
}, { timeoutMs: 20000 })

ROLES.holdMany = async ({ name, n, stay }, send) => {
  const { SharedMemory } = C.lib()
  const keep = []
  for (let i = 0; i < n; i++) {
    const m = new SharedMemory(name)
    if (m.requiresCopy) m.copyFrom(0, 0, 4)
    keep.push(m, m.buffer, m.sharedBuffer, hex(m.buffer, 0, 4))
  }
  send({ type: 'ready' })
  if (stay) setInterval(() => keep.length, 1000) // keeps this worker alive until the process exits
}
async function unclosedAtExit(viaProcessExit) {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('ux')
  C.py('create', name, SIZE, 0, HEAD)
  const keep = []
  for (let i = 0; i < 30; i++) {
    const m = new SharedMemory(name)
    keep.push(m, m.buffer, m.sharedBuffer)
  }
  globalThis.__keep = keep
  const r = await keep[0].waitAsync(4, 9, 100) // a finished wait too
  eq(r, 'not-equal', 'waitAsync on a word that differs')
  const h = startWorker('holdMany', { name, n: 30, stay: viaProcessExit })
  await h.next('ready')
  if (!viaProcessExit) eq(await h.exitedWithin(5000), 0, 'worker (30 unclosed instances) exit code')
  SharedMemory.unlink(name) // the mappings stay valid; nothing is left in /dev/shm
  return { keep, h }
}
scenario('exit-unclosed-natural', 'workers', async () => {
  await unclosedAtExit(false)
  return 'main: 30 unclosed instances, a worker with 30 more exited; the process then ends by itself (exit 0 expected)'
}, { natural: true })
scenario('exit-unclosed-process-exit', 'workers', async () => {
  await unclosedAtExit(true)
  return 'main: 30 unclosed instances, a running worker with 30 more; process.exit(0) (exit 0 expected)'
}, { exitNow: true })

// ================================================================ buffers leaving their owner
/** Moves `b` out of its owner's hands: returns { t, list } to post. */
function move(b, how) {
  if (how === 'transfer') {
    if (typeof ArrayBuffer.prototype.transfer !== 'function') {
      na('ArrayBuffer.prototype.transfer missing (Node 20 needs --harmony-rab-gsab-transfer)')
    }
    const t = b.transfer()
    return { t, list: [t] }
  }
  if (how === 'clone') {
    if (typeof structuredClone !== 'function') na('structuredClone missing')
    try {
      const t = structuredClone(b, { transfer: [b] })
      return { t, list: [t] }
    } catch (e) {
      if (isRefusal(e)) return { refused: errStr(e) }
      throw e
    }
  }
  if (how === 'post') return { t: b, list: [b] }
  if (how === 'share') return { t: b, list: [] } // a SharedArrayBuffer is shared, not moved
  throw new Error(how)
}
/** The runtime refusing to move an external ArrayBuffer (Node ≥ 22 and Bun mark it
 *  untransferable): a DataCloneError. A safe outcome, as long as the source stays usable. */
function isRefusal(e) {
  return e?.name === 'DataCloneError' || e?.code === 25
}
/** Posts with a transfer list; returns null, or the refusal text. */
function postOrRefusal(port, msg, list) {
  try {
    port.postMessage(msg, list)
    return null
  } catch (e) {
    if (list.length && isRefusal(e)) return errStr(e)
    throw e
  }
}
/** After a refused move, the source must still be attached and show the segment. */
function checkRefusedSource(b, refused) {
  eq(b.byteLength, SIZE, `byteLength of the source buffer after the runtime refused the move (${refused})`)
  eq(hex(b, 0, 4), HEAD, 'the source buffer after the refused move')
  return `the runtime refused the move (${refused}); the source stayed attached and readable`
}
function sourceBuffer(mem, which) {
  if (which === 'buffer') return mem.buffer
  const s = mem.sharedBuffer
  if (s === null) naSharedBuffer()
  if (!(s instanceof SharedArrayBuffer)) fail(`sharedBuffer is ${s}`)
  return s
}
/** The receiver's checks on a buffer that left its owner. `len` is its byteLength where it
 *  landed; `moved` tells whether the runtime moved it (the source was detached) or copied it
 *  (Node copies an external ArrayBuffer for postMessage/structuredClone and leaves the source
 *  attached). Checks: size and the segment's bytes; then, where the README promises the mapping
 *  stays (a moved zero-copy buffer), a peer's write seen through it and its write seen by the
 *  peer; a copy must only stay readable and writable. Returns a short figure. */
async function receiverChecks(len, name, ask, moved) {
  eq(len, SIZE, 'byteLength of the buffer where it landed')
  eq(await ask('head'), HEAD, "the segment's first bytes read through the buffer where it landed")
  if (CAGED || !moved) {
    await ask('write') // a write into a copy must not crash
    return `${CAGED ? 'caged copy' : 'the runtime copied it (source stayed attached)'}: readable and writable`
  }
  C.py('write', name, 16, 'feedface')
  eq(await ask('at16'), 'feedface', "a peer's write after the owner let go, read through the moved buffer")
  await ask('write')
  eq(C.py('read', name, 32, 5), '0102030400', "the peer's read of the receiver's write (and the byte after it)")
  return 'moved: the same bytes as the segment, both ways'
}
/** Whether the buffer was moved (source detached) or copied; transfer() must move, a
 *  SharedArrayBuffer is shared (counts as moved: the same memory). */
function movedOrCopied(which, how, srcLen) {
  if (which !== 'buffer') return true
  if (srcLen !== 0 && srcLen !== SIZE) fail(`byteLength of the source buffer after the move: ${srcLen}`)
  if (how === 'transfer' && srcLen !== 0) fail(`transfer() left the source buffer attached (byteLength ${srcLen})`)
  return srcLen === 0
}
function touch(t, what) {
  if (what === 'head') return hex(t, 0, 4)
  if (what === 'at16') return hex(t, 16, 4)
  if (what === 'write') {
    new Uint8Array(t).set([1, 2, 3, 4], 32)
    return 'written'
  }
  throw new Error(what)
}

ROLES.give = async ({ name, which, how, close }, send) => {
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  const b = sourceBuffer(mem, which)
  const { t, list, refused } = move(b, how)
  const refusal = refused ?? postOrRefusal(parentPort, { type: 'moved', t, srcLen: b.byteLength }, list)
  if (refusal) {
    if (mem.requiresCopy) mem.copyFrom()
    send({ type: 'refused', text: checkRefusedSource(b, refusal) })
  }
  if (close) mem.close()
  await C.gcHard()
  // …and the worker exits: its environment is torn down while the main thread holds the bytes.
}
ROLES.take = async (_data, send) => {
  let t = null
  const onMessage = async (m) => {
    if (m.type === 'buf') {
      t = m.t
      send({ type: 'got', len: t.byteLength })
    } else if (m.type === 'ask') {
      send({ type: 'answer', value: touch(t, m.what) })
    } else if (m.type === 'drop') {
      t = null
      await C.gcHard()
      send({ type: 'dropped' })
      parentPort.off('message', onMessage) // nothing keeps the worker alive now
    }
  }
  parentPort.on('message', onMessage)
}

function moveScenario(which, how, dir, close) {
  const label = which === 'buffer' ? `buffer-${how}` : 'sharedBuffer'
  scenario(`move-${label}-${dir}-${close ? 'close' : 'unclosed'}`, 'transfer', async () => {
    const { SharedMemory } = C.lib()
    const name = C.uniqueName('mv')
    C.py('create', name, SIZE, 0, HEAD)
    try {
      if (dir === 'w2m') {
        // A worker opens and moves its buffer here, then closes (or not), collects and exits.
        const h = startWorker('give', { name, which, how, close })
        const m = await h.next(['moved', 'refused'])
        if (m.type === 'refused') {
          eq(await h.exitedWithin(5000), 0, 'owner worker exit code')
          return m.text
        }
        eq(await h.exitedWithin(5000), 0, 'owner worker exit code')
        await C.gcHard()
        const t = m.t
        const moved = movedOrCopied(which, how, m.srcLen)
        const fig = await receiverChecks(t.byteLength, name, async (what) => touch(t, what), moved)
        m.t = null
        return `worker → main by ${how}, owner ${close ? 'closed' : 'unclosed'}, exited, GC: ${fig}`
      }
      // The main thread opens and moves its buffer to a worker, then closes (or not) and collects;
      // the worker uses the bytes and exits; the main thread's instance must still work.
      const mem = new SharedMemory(name)
      const b = sourceBuffer(mem, which)
      const { t, list, refused } = move(b, how)
      const h = startWorker('take')
      const refusal = refused ?? postOrRefusal(h.w, { type: 'buf', t }, list)
      if (refusal) {
        if (mem.requiresCopy) mem.copyFrom()
        const text = checkRefusedSource(b, refusal)
        h.w.postMessage({ type: 'drop' })
        await h.next('dropped')
        mem.close()
        return text
      }
      const got = await h.next('got')
      const moved = movedOrCopied(which, how, b.byteLength)
      if (close) mem.close()
      await C.gcHard()
      const ask = async (what) => {
        h.w.postMessage({ type: 'ask', what })
        return (await h.next('answer')).value
      }
      const fig = await receiverChecks(got.len, name, ask, moved)
      h.w.postMessage({ type: 'drop' })
      await h.next('dropped')
      eq(await h.exitedWithin(5000), 0, 'receiving worker exit code')
      await C.gcHard()
      if (!close) {
        mem.atomicStore(40, 7)
        eq(C.py('read', name, 40, 4), '07000000', "the peer's read of the owner's atomicStore after the receiver exited")
        mem.close()
      }
      return `main → worker by ${how}, owner ${close ? 'closed' : 'unclosed'}, GC, receiver exited: ${fig}`
    } finally {
      C.removeEntry(C.shmPath(name))
    }
  })
}
for (const how of ['transfer', 'clone', 'post']) {
  for (const dir of ['w2m', 'm2w']) for (const close of [true, false]) moveScenario('buffer', how, dir, close)
}
for (const dir of ['w2m', 'm2w']) for (const close of [true, false]) moveScenario('sharedBuffer', 'share', dir, close)

scenario('move-buffer-transfer-same-thread', 'transfer', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('mt')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    let mem = new SharedMemory(name)
    const { t } = move(mem.buffer, 'transfer')
    eq(mem.buffer.byteLength, 0, 'byteLength of mem.buffer after transfer()')
    mem.close()
    mem = null
    await C.gcHard()
    return 'transfer(), close(), GC, then: ' + (await receiverChecks(t.byteLength, name, async (what) => touch(t, what), true))
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

// ================================================================ worker teardown (issue 17)
// A worker's zero-copy buffer is finalized when the worker's environment is torn down, even if
// its memory was moved to another thread (crates/shm-napi/src/instance.rs): the mapping must then
// stay, whatever JS ran before and in whatever order, and go when nothing can reach it.

/** Moves `mem.buffer` to the parent (transfer(), then a transfer list); false if refused. */
function giveToParent(mem, tag) {
  const { t, list, refused } = move(mem.buffer, 'transfer')
  if (refused) return false
  return postOrRefusal(parentPort, { type: 'moved', tag, t, srcLen: mem.buffer.byteLength }, list) === null
}
ROLES.teardownGive = async ({ name, when, spoof }, send) => {
  if (spoof) process.versions.deno = '2' // before the package loads in this worker
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  globalThis.__mem = mem // the instance lives until the worker's teardown
  if (mem.requiresCopy) mem.copyFrom()
  if (when === 'exit-listener') {
    // Registered after the package loaded, so it runs after any 'exit' listener of the package.
    process.on('exit', () => {
      if (!giveToParent(mem, 'exit')) parentPort.postMessage({ type: 'refused' })
    })
  } else if (!giveToParent(mem, 'now')) {
    send({ type: 'refused' })
  }
  send({ type: 'ready' })
  // …and the worker ends by itself.
}
ROLES.spoofDeno = async ({ name }, send) => {
  process.versions.deno = '2'
  const { SharedMemory } = C.lib()
  const m = new SharedMemory(name)
  m.close()
  send({ type: 'done' })
}
/** A worker moves its buffer to this thread (`when`: 'now', or in a process 'exit' listener of
 *  its own) and ends by itself; the bytes must stay usable here afterwards, both ways. */
async function teardownMove(when, { spoofFirst = false } = {}) {
  const name = C.uniqueName('td')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    let spoofed = ''
    if (spoofFirst) {
      const s = startWorker('spoofDeno', { name })
      await s.next('done')
      eq(await s.exitedWithin(5000), 0, 'exit code of the worker that set process.versions.deno')
      spoofed = 'another worker set process.versions.deno = "2" before loading the package; then '
    }
    const h = startWorker('teardownGive', { name, when, spoof: spoofFirst })
    await h.next('ready')
    const m = await h.next(['moved', 'refused'])
    eq(await h.exitedWithin(5000), 0, 'exit code of the worker that moved its buffer')
    if (m.type === 'refused') return `${spoofed}the runtime refused to move the buffer (safe)`
    await C.gcHard()
    const t = m.t
    eq(m.srcLen, 0, "byteLength of the worker's buffer after transfer()")
    const fig = await receiverChecks(t.byteLength, name, async (what) => touch(t, what), true)
    await C.gcHard()
    eq(touch(t, 'head'), HEAD, 'the moved buffer read again after more collections')
    return `${spoofed}worker moved its buffer ${when === 'now' ? 'by transfer()+postMessage' : "from its own process 'exit' listener (after the package's)"}, kept its instance open and ended; GC: ${fig}`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
}
scenario('teardown-move-in-exit-listener', 'teardown', () => teardownMove('exit-listener'))
scenario('teardown-move-instance-open', 'teardown', () => teardownMove('now'))
scenario('teardown-move-after-spoofed-deno', 'teardown', () => teardownMove('now', { spoofFirst: true }))

ROLES.keepBufferOnly = async ({ name }, send) => {
  const { SharedMemory } = C.lib()
  let mem = new SharedMemory(name)
  if (mem.requiresCopy) mem.copyFrom()
  globalThis.__buffer = mem.buffer
  let collected = false
  const reg = new FinalizationRegistry(() => (collected = true))
  reg.register(mem, 0)
  mem = null
  for (let i = 0; i < 20 && !collected; i++) await C.gcHard(1)
  // Node.js collects it deterministically (what this scenario is about there); Bun's conservative
  // collector may keep it: the worker's teardown then finalizes both, which must unmap as well.
  if (!collected && C.RUNTIME === 'node') fail('the dropped instance was not collected after 20 forced collections')
  send({ type: 'ready', head: hex(globalThis.__buffer, 0, 4), collected })
  // …and the worker ends by itself, its buffer still attached (never moved).
}
scenario('teardown-dropped-instance-kept-buffer', 'teardown', async () => {
  const name = C.uniqueName('tk')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('keepBufferOnly', { name })
    const m = await h.next('ready')
    eq(m.head, HEAD, "the worker's read through the buffer it kept")
    eq(await h.exitedWithin(5000), 0, 'worker exit code')
    await until(() => C.mapsOf(name) === 0 && C.fdsTo(name) === 0, 3000)
    eq(C.fdsTo(name), 0, 'descriptors of the segment after the worker ended')
    eq(C.mapsOf(name), 0, 'mappings of the segment after the worker ended (its buffer was never moved, so nothing else can reach it)')
    return `a worker dropped its instance (${m.collected ? 'collected' : 'not collected by this runtime'}), kept its buffer, ended: 0 fds and 0 mappings left`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

ROLES.holdAndStay = async ({ name, give }, send) => {
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  globalThis.__mem = mem
  if (mem.requiresCopy) mem.copyFrom()
  if (give && !giveToParent(mem, 'now')) send({ type: 'refused' })
  send({ type: 'ready' })
  setInterval(() => mem, 1000) // runs until terminate()
}
scenario('teardown-terminate-moved-buffer', 'teardown', async () => {
  const name = C.uniqueName('tt')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('holdAndStay', { name, give: true })
    const m = await h.next(['moved', 'refused'])
    await h.next('ready')
    if (m.type === 'refused') {
      await h.w.terminate()
      return 'the runtime refused to move the buffer (safe)'
    }
    await h.w.terminate() // no JS runs in the worker from here on
    await C.gcHard()
    const fig = await receiverChecks(m.t.byteLength, name, async (what) => touch(m.t, what), true)
    return `worker moved its buffer here, kept its instance open and was terminate()d; GC: ${fig}`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})
scenario('teardown-terminate-unmoved-released', 'teardown', async () => {
  const name = C.uniqueName('tu')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('holdAndStay', { name, give: false })
    await h.next('ready')
    await h.w.terminate()
    await until(() => C.mapsOf(name) === 0 && C.fdsTo(name) === 0, 3000)
    eq(C.fdsTo(name), 0, 'descriptors of the segment after the worker was terminated')
    eq(C.mapsOf(name), 0, 'mappings of the segment after the worker was terminated (its buffer never left it)')
    return 'a worker holding an open instance and its buffer was terminate()d: 0 fds and 0 mappings left'
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

ROLES.dropGcExit = async ({ name }, send) => {
  const { SharedMemory } = C.lib()
  let mem = new SharedMemory(name)
  if (mem.requiresCopy) mem.copyFrom()
  mem.atomicAdd(64, 1)
  const head = hex(mem.buffer, 0, 4)
  mem = null
  send({ type: 'done', head })
  C.gcNow() // collects the instance (and, were it not held until then, its buffer)…
  process.exit(0) // …and ends before anything else can run
}
scenario('teardown-gc-then-exit', 'teardown', async () => {
  const name = C.uniqueName('tg')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    for (let i = 0; i < 3; i++) {
      const h = startWorker('dropGcExit', { name })
      eq((await h.next('done')).head, HEAD, `worker ${i}: read of the peer's bytes`)
      eq(await h.exitedWithin(5000), 0, `worker ${i} exit code`)
    }
    await until(() => C.mapsOf(name) === 0 && C.fdsTo(name) === 0, 3000)
    eq(C.fdsTo(name), 0, 'descriptors of the segment after the workers ended')
    eq(C.mapsOf(name), 0, 'mappings of the segment after 3 workers dropped their instance, collected once and exited at once (the buffer never left them)')
    return '3 workers: drop the unclosed instance, one gc(), process.exit(0): 0 fds and 0 mappings left'
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

// The hidden atomics view (hot.rs `atomicsView`) has no witness: its finalizer unmaps at the
// worker's teardown, on the assumption that no JS can reach it. JS can, through any intrinsic the
// class looks up at call time (found by the break17b review): the view is then moved out of the
// worker like a buffer, and must stay mapped where it landed.
ROLES.stealView = async ({ name, via }, send) => {
  let stolen = null
  const restore = []
  if (via === 'atomics') {
    const orig = Atomics.load
    Atomics.load = function (v, i) {
      stolen = v.buffer
      return orig(v, i)
    }
    restore.push(() => (Atomics.load = orig))
  } else if (via === 'ctor') {
    const Orig = Int32Array
    globalThis.Int32Array = function (ab, off, len) {
      stolen = ab
      return new Orig(ab, off, len)
    }
    restore.push(() => (globalThis.Int32Array = Orig))
  } else if (via === 'byteLength') {
    const d = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')
    Object.defineProperty(ArrayBuffer.prototype, 'byteLength', {
      configurable: true,
      get() {
        if (stolen === null && globalThis.__mem && this !== globalThis.__mem.buffer) stolen = this
        return d.get.call(this)
      },
    })
    restore.push(() => Object.defineProperty(ArrayBuffer.prototype, 'byteLength', d))
  }
  if (via === 'raw') {
    // The raw binding (what hot.rs promises a direct caller: "an error but never bad memory").
    const raw = require(path.join(__dirname, '..', 'index.js'))
    const [handle] = raw.openSegment(name, undefined, undefined)
    globalThis.__handle = handle // open until the worker's teardown
    const view = raw.atomicsView(handle) // an Int32Array over the hidden buffer, or null
    stolen = view?.buffer ?? null
  }
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  globalThis.__mem = mem // open until the worker's teardown
  mem.atomicLoad(0)
  for (const r of restore) r()
  if (via === 'inspector') {
    // No intrinsic patched: the in-process inspector lists every ArrayBuffer of this isolate.
    const all = await allArrayBuffers()
    stolen = all.find((ab) => ab !== mem.buffer && ab.byteLength === SIZE && hex(ab, 0, 4) === HEAD) ?? null
  }
  if (stolen === null) return send({ type: 'nothing' })
  const { t, list, refused } = move(stolen, 'transfer')
  const refusal = refused ?? postOrRefusal(parentPort, { type: 'moved', t, srcLen: stolen.byteLength }, list)
  if (refusal) send({ type: 'refused', text: refusal })
  // …and the worker ends by itself.
}
function stolenViewScenario(via) {
  scenario(`teardown-stolen-atomics-view-${via}`, 'teardown', async () => {
    const name = C.uniqueName('sv')
    C.py('create', name, SIZE, 0, HEAD)
    try {
      const h = startWorker('stealView', { name, via })
      const m = await h.next(['moved', 'refused', 'nothing'])
      eq(await h.exitedWithin(5000), 0, 'exit code of the worker that moved the view')
      if (m.type === 'nothing') return `${via}: no JS could reach the atomics view (${CAGED ? 'caged: none made' : 'intrinsics captured'})`
      if (m.type === 'refused') return `${via}: the runtime refused to move the view (${m.text})`
      await C.gcHard()
      const fig = await receiverChecks(m.t.byteLength, name, async (what) => touch(m.t, what), m.srcLen === 0)
      return `${via}: a worker reached the hidden atomics view, moved it here and ended; GC: ${fig}`
    } finally {
      C.removeEntry(C.shmPath(name))
    }
  })
}
for (const via of ['atomics', 'ctor', 'byteLength', 'raw', 'inspector']) stolenViewScenario(via)

// A buffer moved main → worker and collected there: where the host runs the buffer's finalizer on
// the thread that freed the memory (Bun 1.4, found by the break17b review), that finalizer must
// not call Node-API with the main thread's env while the main thread runs JS and Node-API itself.
ROLES.sinkGc = async (_data, send) => {
  let n = 0
  parentPort.on('message', (m) => {
    if (m === 'end') return process.exit(0)
    new Uint8Array(m.t)[48]++
    m.t = null
    if (++n % 10 === 0) {
      C.gcNow()
      send({ type: 'ack', n })
    }
  })
}
scenario('move-buffer-m2w-released-while-owner-busy', 'transfer', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('mb')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('sinkGc')
    const keep = []
    let sent = 0
    const t0 = Date.now()
    while (Date.now() - t0 < 3000) {
      const mem = new SharedMemory(name)
      if (mem.requiresCopy) mem.copyFrom()
      const { t, list, refused } = move(mem.buffer, 'transfer')
      if (refused) na('the runtime refused transfer()')
      h.w.postMessage({ t }, list)
      sent++
      if (sent % 3 === 0) mem.close()
      else keep.push(mem)
      for (let i = 0; i < 200; i++) keep[keep.length - 1]?.atomicAdd(8, 1) // Node-API/JS busy here
      if (keep.length > 50) keep.splice(0, 25)
      if (sent % 20 === 0) await new Promise((r) => setImmediate(r))
      // Flow control: at most ~60 buffers in flight (the worker collects every 10).
      while (sent - (h.msgs.filter((m) => m.type === 'ack').at(-1)?.n ?? 0) > 60 && Date.now() - t0 < 8000) await sleep(1)
    }
    h.w.postMessage('end')
    eq(await h.exitedWithin(5000), 0, 'receiving worker exit code')
    for (const m of keep) m.close()
    return `${sent} buffers moved main → worker and collected there while this thread ran atomics: no crash`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
}, { timeoutMs: 20000 })

// The other way: a worker's buffers moved here and collected here while the worker runs JS and
// Node-API calls (Bun 1.4 runs their finalizer on this thread, with the worker's env).
ROLES.sourceBusy = async ({ name }, send) => {
  const { SharedMemory } = C.lib()
  let stop = false
  let acked = 0
  parentPort.on('message', (m) => (m === 'stop' ? (stop = true) : (acked = m)))
  const keep = []
  let n = 0
  while (!stop) {
    // Flow control: at most ~60 buffers in flight (the receiver collects every 10).
    while (n - acked > 60 && !stop) await sleep(1)
    const mem = new SharedMemory(name)
    if (mem.requiresCopy) mem.copyFrom()
    const { t, list, refused } = move(mem.buffer, 'transfer')
    if (refused) return send({ type: 'refused' })
    parentPort.postMessage({ type: 'moved', t }, list)
    keep.push(mem)
    if (keep.length > 40) keep.splice(0, 20)
    for (let i = 0; i < 200; i++) mem.atomicAdd(8, 1)
    if (++n % 20 === 0) await new Promise((r) => setImmediate(r))
  }
  for (const m of keep) m.close()
  process.exit(0)
}
scenario('move-buffer-w2m-released-while-owner-busy', 'transfer', async () => {
  const name = C.uniqueName('mw')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('sourceBusy', { name })
    let got = 0
    h.w.on('message', (m) => {
      if (m.type !== 'moved') return
      new Uint8Array(m.t)[48]++
      m.t = null
      if (++got % 10 === 0) {
        C.gcNow()
        h.w.postMessage(got)
      }
    })
    await sleep(3000)
    if (h.msgs.some((m) => m.type === 'refused')) na('the runtime refused transfer()')
    h.msgs.length = 0
    h.w.postMessage('stop')
    eq(await h.exitedWithin(10000), 0, 'source worker exit code')
    return `${got} buffers moved worker → main and collected here while the worker ran atomics: no crash`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
}, { timeoutMs: 25000 })

// instance.rs `env_stopping` reads property "x" of a fresh plain object in the buffer finalizer,
// "running no JS" — but the read goes up to Object.prototype, where a user getter runs (break17b).
ROLES.protoGetterGive = async ({ name }, send) => {
  // Any getter will do; this one allocates (so running it on a wrong thread shows).
  Object.defineProperty(Object.prototype, 'x', { configurable: true, get: () => JSON.stringify({ a: [1, 2, 3].map(String) }) })
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  globalThis.__mem = mem
  if (mem.requiresCopy) mem.copyFrom()
  if (!giveToParent(mem, 'now')) send({ type: 'refused' })
  await new Promise((res) => parentPort.once('message', res))
  parentPort.close()
}
scenario('move-buffer-w2m-released-proto-getter', 'transfer', async () => {
  const name = C.uniqueName('pg')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('protoGetterGive', { name })
    const m = await h.next(['moved', 'refused'])
    if (m.type === 'refused') na('the runtime refused transfer()')
    eq(hex(m.t, 0, 4), HEAD, 'the moved buffer read here')
    m.t = null
    await C.gcHard(8) // the owner worker still runs, with a getter on its Object.prototype
    h.w.postMessage('end')
    eq(await h.exitedWithin(5000), 0, 'owner worker exit code')
    return 'a worker with an Object.prototype getter moved its buffer here; dropped and collected here while it ran: no crash'
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})
scenario('misuse-proto-getter-in-finalizer', 'misuse', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('pf')
  C.py('create', name, SIZE, 0, HEAD)
  let calls = 0
  const uncaught = []
  const onUncaught = (e) => uncaught.push(errStr(e))
  process.on('uncaughtException', onUncaught)
  Object.defineProperty(Object.prototype, 'x', {
    configurable: true,
    get() {
      calls++
      throw new Error('user getter ran inside a finalizer')
    },
  })
  try {
    const openDrop = () => {
      const mem = new SharedMemory(name)
      if (mem.requiresCopy) mem.copyFrom()
      mem.atomicAdd(0, 1)
    }
    for (let i = 0; i < 20; i++) openDrop()
    await until(() => C.mapsOf(name) === 0, 3000)
    await C.gcHard()
    delete Object.prototype.x
    const maps = C.mapsOf(name)
    eq(calls, 0, 'calls of a user Object.prototype.x getter made by the addon while 20 dropped instances were collected (instance.rs: "runs no JS")')
    eq(uncaught.length, 0, `uncaught exceptions thrown from the addon's finalizers (${uncaught[0] ?? ''})`)
    eq(maps, 0, 'mappings left after 20 unclosed instances were dropped and collected')
    return '20 dropped unclosed instances with a throwing Object.prototype.x getter: no JS ran, 0 mappings left'
  } finally {
    delete Object.prototype.x
    process.off('uncaughtException', onUncaught)
    C.removeEntry(C.shmPath(name))
  }
})

// The witness finds the moved buffer's husk already collected (its weak reference empty): that
// must count as "moved" (instance.rs: GONE). A worker moves its buffer here, drops its instance,
// collects until the instance and the detached husk are gone, and ends (break17b: a witness
// treating an empty weak reference as "still attached" survived every other scenario).
ROLES.moveDropHusk = async ({ name }, send) => {
  const { SharedMemory } = C.lib()
  let mem = new SharedMemory(name)
  if (mem.requiresCopy) mem.copyFrom()
  let gone = 0
  const reg = new FinalizationRegistry(() => gone++)
  reg.register(mem.buffer, 'husk')
  reg.register(mem, 'instance')
  if (!giveToParent(mem, 'now')) return send({ type: 'refused' })
  mem = null
  for (let i = 0; i < 30 && gone < 2; i++) await C.gcHard(1)
  send({ type: 'ready', gone })
  // …and the worker ends by itself.
}
scenario('teardown-moved-husk-collected', 'teardown', async () => {
  const name = C.uniqueName('th')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('moveDropHusk', { name })
    const m = await h.next(['moved', 'refused'])
    if (m.type === 'refused') return 'the runtime refused to move the buffer (safe)'
    const r = await h.next('ready')
    eq(await h.exitedWithin(5000), 0, 'owner worker exit code')
    await C.gcHard()
    const fig = await receiverChecks(m.t.byteLength, name, async (what) => touch(m.t, what), m.srcLen === 0)
    return `a worker moved its buffer here, dropped its instance and collected (${r.gone}/2 of instance and husk collected), ended: ${fig}`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

// Witness confusion (break17b): the witness is reachable from JS through the in-process inspector
// (Runtime.queryObjects); detached (transfer(), dropped) and collected while the worker runs, it is
// finalized early and records "attached"; the buffer, moved afterwards, is then unmapped at the
// worker's end under the receiver.
async function allArrayBuffers() {
  let inspector
  try {
    inspector = require('node:inspector')
    if (typeof inspector.Session !== 'function') throw new Error('no inspector.Session')
  } catch (e) {
    na(`node:inspector Session missing (${errStr(e)})`)
  }
  const sess = new inspector.Session()
  const post = (m, p) => new Promise((res, rej) => sess.post(m, p, (e, r) => (e ? rej(e) : res(r))))
  sess.connect()
  try {
    const proto = await post('Runtime.evaluate', { expression: 'ArrayBuffer.prototype' })
    const q = await post('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId })
    await post('Runtime.callFunctionOn', { objectId: q.objects.objectId, functionDeclaration: 'function () { globalThis.__allBuffers = this }' })
  } catch (e) {
    na(`the inspector cannot list objects here (${errStr(e)})`)
  } finally {
    sess.disconnect()
  }
  const all = globalThis.__allBuffers
  delete globalThis.__allBuffers
  return all
}
ROLES.killWitness = async ({ name }, send) => {
  const before = new Set(await allArrayBuffers())
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  globalThis.__mem = mem
  if (mem.requiresCopy) mem.copyFrom()
  const fresh = (await allArrayBuffers()).filter((ab) => !before.has(ab) && ab !== mem.buffer)
  let detached = 0
  for (const ab of fresh) {
    if (ab.byteLength === 0 || typeof ab.transfer !== 'function') continue
    ab.transfer() // the new buffer is dropped at once
    detached++
  }
  await C.gcHard()
  if (!giveToParent(mem, 'now')) send({ type: 'refused' })
  send({ type: 'ready', detached })
  // …and the worker ends by itself.
}
scenario('teardown-witness-detached-early', 'teardown', async () => {
  const name = C.uniqueName('tw')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const h = startWorker('killWitness', { name })
    const m = await h.next(['moved', 'refused'])
    const r = await h.next('ready')
    eq(await h.exitedWithin(5000), 0, 'owner worker exit code')
    if (m.type === 'refused') return 'the runtime refused to move the buffer (safe)'
    await C.gcHard()
    const fig = await receiverChecks(m.t.byteLength, name, async (what) => touch(m.t, what), m.srcLen === 0)
    return `a worker detached and collected the ${r.detached} hidden buffer(s) the package made with its buffer, moved the buffer here and ended: ${fig}`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

const MIB = 1 << 20
ROLES.giveBig = async ({ name, close, stay }, send) => {
  const { SharedMemory } = C.lib()
  let mem = new SharedMemory(name)
  if (mem.requiresCopy) mem.copyFrom()
  if (!giveToParent(mem, 'now')) send({ type: 'refused' })
  if (close) mem.close()
  if (stay) {
    // Drops its instance, then runs until the parent has dropped and collected the buffer.
    mem = null
    await C.gcHard()
    send({ type: 'dropped' })
    await new Promise((res) => parentPort.once('message', res))
  }
}
/** Collects until `name` has no mapping here or `ms` pass; returns the mappings left. */
async function collectUntilUnmapped(name, ms) {
  const end = Date.now() + ms
  await C.gcHard()
  while (C.mapsOf(name) !== 0 && Date.now() < end) await C.gcHard(1)
  return C.mapsOf(name)
}
/** Five workers each move a 1 MiB buffer here (closing their instance or not); this thread
 *  drops them and collects. `stay`: each worker still runs (its instance dropped) meanwhile. */
async function movedFromWorkers(stay, settleMs) {
  const name = C.uniqueName('t5')
  C.py('create', name, MIB, 0, HEAD)
  try {
    const N = 5
    const hs = []
    let got = []
    for (let i = 0; i < N; i++) {
      const h = startWorker('giveBig', { name, close: i % 2 === 0, stay })
      const m = await h.next(['moved', 'refused'])
      if (m.type === 'refused') na('the runtime refused to move an external buffer')
      got.push(m.t)
      m.t = null
      hs.push(h)
      if (stay) await h.next('dropped')
      else eq(await h.exitedWithin(5000), 0, `worker ${i} exit code`)
    }
    const moved = got.filter((t) => t.byteLength === MIB && hex(t, 0, 4) === HEAD).length
    eq(moved, N, "buffers that arrived whole (1 MiB, the segment's bytes)")
    const before = C.mapsOf(name)
    got = null
    let after = await collectUntilUnmapped(name, settleMs)
    if (stay) {
      // Only now may the workers end (an instance a runtime has not collected yet goes then).
      for (const h of hs) h.w.postMessage('go')
      for (const [i, h] of hs.entries()) eq(await h.exitedWithin(5000), 0, `worker ${i} exit code`)
      after = await collectUntilUnmapped(name, 3000)
    }
    return { before, after, N }
  } finally {
    C.removeEntry(C.shmPath(name))
  }
}
scenario('teardown-moved-released-while-owner-runs', 'teardown', async () => {
  const { before, after, N } = await movedFromWorkers(true, 2000)
  eq(after, 0, `mappings left after this thread dropped and collected the ${N} moved buffers while their workers still ran, and the workers then ended`)
  return `${N} workers (half closed) moved 1 MiB buffers here; mappings ${before} → ${after} after drop + GC while the workers ran, then their end`
})
scenario('teardown-moved-after-owner-ended', 'teardown', async () => {
  const { before, after, N } = await movedFromWorkers(false, 1500)
  // README (Workers): where the owner's runtime finalizes its buffers at teardown (Node.js), a
  // buffer moved out of a worker that has ended is never released: its mapping stays for the
  // life of the process. Asserted as documented, per runtime.
  const kept = CAGED ? 0 : MOVED_KEPT_AFTER_OWNER_ENDED[C.RUNTIME] ? N : 0
  eq(after, kept, `mappings left after the ${N} owner workers ended and this thread dropped and collected their moved buffers (README, Workers: ${kept ? 'kept for the life of the process on this runtime' : 'released'})`)
  return `${N} workers (half closed) moved 1 MiB buffers here and ended; mappings ${before} → ${after} after drop + GC (${kept ? 'kept: documented' : 'released'})`
})
/** Runtimes on which a buffer moved out of a worker that then ended keeps its mapping for good. */
const MOVED_KEPT_AFTER_OWNER_ENDED = { node: true, bun: true, deno: true }

// ================================================================ waits
ROLES.block = async ({ name, mode, exitAfter }, send) => {
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  if (mode === 'wait') {
    send({ type: 'waiting' })
    const r = mem.wait(0, 0) // blocks this thread until word 0 changes and is notified
    send({ type: 'woke', r })
    return
  }
  const p = mem.waitAsync(0, 0, mode === 'waitAsyncTimed' ? 600 : Infinity)
  p.then((r) => send({ type: 'woke', r }), (e) => send({ type: 'woke', err: errStr(e) }))
  send({ type: 'waiting' })
  if (exitAfter) process.exit(0)
}

/** Starts a worker blocked in `mode`, terminates it, and checks terminate() resolves within 2 s. */
async function terminateBlocked(mode, after) {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('wt')
  const mem = SharedMemory.create(name, SIZE)
  try {
    const fds0 = C.fdsTo(name)
    const h = startWorker('block', { name, mode })
    await h.next('waiting')
    await sleep(150) // the worker is now in the wait (a post precedes the call by microseconds)
    const t0 = Date.now()
    const p = h.w.terminate()
    if (!p || typeof p.then !== 'function') na('worker.terminate() returns no promise on this runtime')
    const s = await settleWithin(p, 2000)
    if (s.pending) {
      // Unblock it so the process can end, then report.
      mem.atomicStore(0, 1)
      mem.notify(0)
      const s2 = await settleWithin(p, 2000)
      fail(`worker.terminate() still pending after 2000 ms with the worker blocked in ${mode}() (${s2.pending ? 'still pending after a notify' : 'resolved only after the word changed and was notified'})`)
    }
    const ms = Date.now() - t0
    if (s.error) fail(`worker.terminate() rejected: ${errStr(s.error)}`)
    const extra = after ? await after(mem) : ''
    await until(() => C.fdsTo(name) === fds0, 3000)
    eq(C.fdsTo(name), fds0, `descriptors of the segment after terminate() (the main thread's own: ${fds0})`)
    // An endless wait cannot have settled (nobody changed the word before terminate()).
    const woke = h.msgs.find((m) => m.type === 'woke')
    if (woke && mode !== 'waitAsyncTimed') fail(`the terminated worker's wait settled: ${JSON.stringify(woke)}`)
    return `terminate() resolved in ${ms} ms${extra}; fds back to ${fds0}`
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
}
scenario('wait-terminate', 'waits', () => terminateBlocked('wait'))
scenario('waitAsync-terminate-then-timeout', 'waits', () =>
  terminateBlocked('waitAsyncTimed', async () => {
    await sleep(1000) // the 600 ms timeout ends in the terminated worker's waiter thread
    return '; its 600 ms timeout passed without harm'
  }),
)
scenario('waitAsync-terminate-then-notify', 'waits', () =>
  terminateBlocked('waitAsync', async (mem) => {
    mem.atomicStore(0, 1)
    const n = mem.notify(0)
    await sleep(500)
    return `; a notify after it (woke ${n}) did no harm`
  }),
)
scenario('waitAsync-terminate-releases', 'waits', () => terminateBlocked('waitAsync'))

scenario('waitAsync-worker-process-exit', 'waits', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('we')
  const mem = SharedMemory.create(name, SIZE)
  try {
    const fds0 = C.fdsTo(name)
    const h = startWorker('block', { name, mode: 'waitAsync', exitAfter: true })
    eq(await h.exitedWithin(2000, 'end after its own process.exit(0) with a waitAsync pending'), 0, 'worker exit code')
    mem.atomicStore(0, 1)
    const n = mem.notify(0)
    await sleep(300)
    await until(() => C.fdsTo(name) === fds0, 3000)
    eq(C.fdsTo(name), fds0, `descriptors of the segment after the worker exited (the main thread's own: ${fds0})`)
    return `worker with a pending waitAsync called process.exit(0): ended; a later notify (woke ${n}) did no harm; fds back to ${fds0}`
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
})

scenario('wait-process-exit', 'waits', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('wx')
  SharedMemory.create(name, SIZE).close()
  const h = startWorker('block', { name, mode: 'wait' })
  await h.next('waiting')
  await sleep(150)
  SharedMemory.unlink(name)
  return 'process.exit(0) with a worker blocked in wait(): the process must end (exit 0)'
}, { exitNow: true, timeoutMs: 10000 })

scenario('waitAsync-process-exit', 'waits', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('wy')
  const mem = SharedMemory.create(name, SIZE)
  mem.waitAsync(0, 0) // pending in the main thread
  const h = startWorker('block', { name, mode: 'waitAsync' })
  await h.next('waiting')
  await sleep(150)
  SharedMemory.unlink(name)
  return 'process.exit(0) with waitAsync pending in the main thread and in a worker: the process must end (exit 0)'
}, { exitNow: true, timeoutMs: 10000 })

ROLES.closeWait = async ({ name }, send) => {
  const { SharedMemory } = C.lib()
  const mem = new SharedMemory(name)
  const p = mem.waitAsync(0, 0)
  mem.close()
  const s = await settleWithin(p, 2000)
  send({ type: 'result', s: s.pending ? 'pending' : s.error ? `rejected ${s.error.code}` : `resolved ${s.value}` })
}
scenario('waitAsync-close', 'waits', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('wc')
  const mem = SharedMemory.create(name, SIZE)
  try {
    const other = new SharedMemory(name)
    const p = other.waitAsync(0, 0)
    other.close()
    const s = await settleWithin(p, 2000)
    if (s.pending) fail('main thread: waitAsync still pending 2000 ms after close()')
    if (!s.error) fail(`main thread: waitAsync resolved '${s.value}' after close(); expected a rejection ERR_SHM_CLOSED`)
    eq(s.error.code, 'ERR_SHM_CLOSED', 'main thread: code of the rejection after close()')
    throwsCode(() => other.wait(0, 0, 10), 'ERR_SHM_CLOSED', Error, 'wait() after close()')
    const h = startWorker('closeWait', { name })
    eq((await h.next('result')).s, 'rejected ERR_SHM_CLOSED', 'worker: waitAsync after close()')
    eq(await h.exitedWithin(5000), 0, 'worker exit code')
    return 'close() rejects a pending waitAsync with ERR_SHM_CLOSED (main thread and worker); wait() after close() throws ERR_SHM_CLOSED. ' +
      '(A blocking wait() cannot meet close(): an instance belongs to one thread, which is blocked; terminate() is that case.)'
  } finally {
    mem.close()
    SharedMemory.unlink(name)
  }
})

scenario('waitAsync-gc', 'waits', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('wg')
  C.py('create', name, SIZE, 0, '00000000')
  try {
    let mem = new SharedMemory(name)
    const p1 = mem.waitAsync(0, 0) // no timeout
    const p2 = mem.waitAsync(8, 0, 200)
    mem = null
    await C.gcHard(6) // the instance is garbage now; its waits are not
    const s2 = await settleWithin(p2, 3000)
    if (s2.pending) fail('waitAsync(…, 200) of a collected instance still pending after 3000 ms')
    if (s2.error) fail(`waitAsync(…, 200) of a collected instance rejected: ${errStr(s2.error)}`)
    eq(s2.value, 'timed-out', 'waitAsync(…, 200) of a collected instance')
    const n = new SharedMemory(name)
    n.atomicStore(0, 1)
    const woke = n.notify(0)
    const s1 = await settleWithin(p1, 3000)
    if (s1.pending) fail(`waitAsync of a collected instance still pending 3000 ms after a notify (woke ${woke})`)
    if (s1.error) fail(`waitAsync of a collected instance rejected: ${errStr(s1.error)}`)
    eq(s1.value, 'ok', 'waitAsync of a collected instance, after the word changed and was notified')
    n.close()
    return `instance collected while 2 waits pended: timeout → 'timed-out', notify (woke ${woke}) → 'ok'`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

// ================================================================ hostile /dev/shm entries
const READ = () => C.lib().MemoryAccess.READ
/** Runs every entry point against a planted entry; `expect` maps an entry point to a code or a
 *  predicate; returns the observed codes. */
function hostileMatrix(name, expect, problems) {
  const { SharedMemory } = C.lib()
  const calls = {
    'new SharedMemory(name)': () => new SharedMemory(name),
    'new SharedMemory(name, undefined, READ)': () => new SharedMemory(name, undefined, READ()),
    'SharedMemory.create(name, 4096)': () => SharedMemory.create(name, SIZE),
    'SharedMemory.create(name, 4096, {exclusive:false})': () => SharedMemory.create(name, SIZE, { exclusive: false }),
  }
  const seen = {}
  for (const [what, fn] of Object.entries(calls)) {
    C.note(`hostile: ${what}`)
    const want = expect[what]
    const e = soft(problems, what, () =>
      typeof want === 'string' ? throwsCode(fn, want, Error, what) : throwsCoded(fn, what, { not: want.not }),
    )
    seen[what] = e ? e.code : 'wrong'
  }
  return seen
}
function codesLine(seen) {
  return Object.entries(seen)
    .map(([k, v]) => `${k.replace('SharedMemory.', '').replace('new SharedMemory', 'new')} → ${v}`)
    .join(', ')
}

scenario('hostile-symlink-to-file', 'hostile', async () => {
  const { SharedMemory } = C.lib()
  const dir = C.tmpDir('sym')
  const target = path.join(dir, 'victim')
  const content = Buffer.alloc(SIZE, 0x54)
  fs.writeFileSync(target, content, { mode: 0o600 })
  const name = C.uniqueName('sym')
  const link = C.shmPath(name)
  fs.symlinkSync(target, link)
  const problems = []
  try {
    const seen = hostileMatrix(name, {
      'new SharedMemory(name)': 'ELOOP',
      'new SharedMemory(name, undefined, READ)': 'ELOOP',
      'SharedMemory.create(name, 4096)': 'EEXIST',
      'SharedMemory.create(name, 4096, {exclusive:false})': 'ELOOP',
    }, problems)
    if (!fs.readFileSync(target).equals(content)) problems.push('the symlink target was modified')
    if (!fs.lstatSync(link).isSymbolicLink()) problems.push('the planted symlink is no longer a symlink')
    let un
    try {
      un = `→ ${SharedMemory.unlink(name)}`
    } catch (e) {
      un = `→ ${e.code}`
      if (typeof e.code !== 'string') problems.push(`unlink(name): uncoded ${errStr(e)}`)
    }
    if (!fs.existsSync(target)) problems.push('unlink(name) removed the symlink target')
    else if (!fs.readFileSync(target).equals(content)) problems.push('unlink(name) modified the symlink target')
    if (un === '→ true' && shmExists(name)) problems.push('unlink(name) returned true but the link is still there')
    if (problems.length) fail(problems.join('; '))
    return `${codesLine(seen)}; unlink ${un} (the link, like shm_unlink); target untouched`
  } finally {
    C.removeEntry(link)
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

scenario('hostile-symlink-dangling', 'hostile', async () => {
  const dir = C.tmpDir('dsym')
  const target = path.join(dir, 'not-yet')
  const name = C.uniqueName('dsym')
  const link = C.shmPath(name)
  fs.symlinkSync(target, link)
  const problems = []
  try {
    const seen = hostileMatrix(name, {
      'new SharedMemory(name)': 'ELOOP',
      'new SharedMemory(name, undefined, READ)': 'ELOOP',
      'SharedMemory.create(name, 4096)': 'EEXIST',
      'SharedMemory.create(name, 4096, {exclusive:false})': 'ELOOP',
    }, problems)
    if (fs.existsSync(target)) problems.push(`a file was created at the dangling symlink's target (${fs.statSync(target).size} bytes)`)
    if (problems.length) fail(problems.join('; '))
    return `${codesLine(seen)}; no file created at the target`
  } finally {
    C.removeEntry(link)
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

scenario('hostile-fifo', 'hostile', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('fifo')
  const p = C.shmPath(name)
  require('node:child_process').execFileSync('mkfifo', ['-m', '600', p])
  const problems = []
  try {
    // READ last: an O_RDONLY open of a FIFO without O_NONBLOCK blocks until a writer comes (a hang).
    const notEmpty = { not: ['ERR_SHM_EMPTY'] }
    const seen = hostileMatrix(name, {
      'new SharedMemory(name)': notEmpty,
      'SharedMemory.create(name, 4096)': 'EEXIST',
      'SharedMemory.create(name, 4096, {exclusive:false})': notEmpty,
      'new SharedMemory(name, undefined, READ)': notEmpty,
    }, problems)
    if (!fs.lstatSync(p).isFIFO()) problems.push('the FIFO is no longer a FIFO')
    let un
    try {
      un = `→ ${SharedMemory.unlink(name)}`
    } catch (e) {
      un = `→ ${e.code}`
    }
    if (problems.length) fail(problems.join('; '))
    return `${codesLine(seen)} (ERR_SHM_EMPTY would misname a FIFO); unlink ${un}; no hang`
  } finally {
    C.removeEntry(p)
  }
})

scenario('hostile-directory', 'hostile', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('dir')
  const p = C.shmPath(name)
  fs.mkdirSync(p, { mode: 0o700 })
  fs.writeFileSync(path.join(p, 'inside'), 'x')
  const problems = []
  try {
    const notEmpty = { not: ['ERR_SHM_EMPTY'] }
    const seen = hostileMatrix(name, {
      'new SharedMemory(name)': notEmpty,
      'new SharedMemory(name, undefined, READ)': notEmpty,
      'SharedMemory.create(name, 4096)': 'EEXIST',
      'SharedMemory.create(name, 4096, {exclusive:false})': notEmpty,
    }, problems)
    let un
    try {
      un = `→ ${SharedMemory.unlink(name)}`
      problems.push(`unlink(name) of a directory returned ${un.slice(2)}; expected a coded error`)
    } catch (e) {
      un = `→ ${e.code}`
      if (typeof e.code !== 'string') problems.push(`unlink(name): uncoded ${errStr(e)}`)
    }
    if (!fs.lstatSync(p).isDirectory() || !fs.existsSync(path.join(p, 'inside'))) problems.push('the directory or its content changed')
    if (problems.length) fail(problems.join('; '))
    return `${codesLine(seen)}; unlink ${un}; directory untouched`
  } finally {
    C.removeEntry(p)
  }
})

scenario('hostile-hardlink', 'hostile', async () => {
  const { SharedMemory } = C.lib()
  const a = C.uniqueName('hla')
  const b = C.uniqueName('hlb')
  C.py('create', a, SIZE, 0, HEAD)
  try {
    fs.linkSync(C.shmPath(a), C.shmPath(b))
    // Same inode under a second name: allowed, as glibc's shm_open and Python allow it. (A hard
    // link cannot reach outside /dev/shm's file system, and with fs.protected_hardlinks=1 a user
    // cannot link another user's file.)
    const m = new SharedMemory(b)
    if (m.requiresCopy) m.copyFrom()
    eq(hex(m.buffer, 0, 4), HEAD, "bytes read through the hard link's name")
    m.atomicStore(8, 0x01020304)
    eq(C.py('read', a, 8, 4), '04030201', "the peer's read (under the first name) of a write through the link")
    m.close()
    eq(SharedMemory.unlink(b), true, 'unlink(link name)')
    check(!shmExists(b), 'the link name is gone')
    eq(C.py('read', a, 0, 4), HEAD, 'the first name still holds the segment')
    return 'opens the same inode (like glibc); writes reach it; unlink removes only the link name'
  } finally {
    C.removeEntry(C.shmPath(a))
    C.removeEntry(C.shmPath(b))
  }
})

scenario('hostile-other-user', 'hostile', async () => {
  if (typeof process.getuid !== 'function') na('process.getuid missing')
  if (process.getuid() !== 0) {
    C.emit({ status: 'skip', detail: 'SKIPPED hostile-other-user: root missing (needs root to plant a segment owned by another user; see docs/reliability.md#lifecycle)' })
    return C.SKIPPED
  }
  const owner = 65534 // nobody: the planter
  const victim = 1 // daemon: the user who opens the name
  const name0600 = C.uniqueName('ou6')
  const name0666 = C.uniqueName('ou7')
  C.py('create', name0600, SIZE, 0, HEAD)
  C.py('create', name0666, SIZE, 0, HEAD)
  try {
    for (const [n, mode] of [[name0600, 0o600], [name0666, 0o666]]) {
      fs.chownSync(C.shmPath(n), owner, owner)
      fs.chmodSync(C.shmPath(n), mode)
    }
    const selfArgs = JSON.parse(process.env.LIFECYCLE_SELF_ARGS || '[]')
    const child = spawn(process.execPath, [...selfArgs, __filename, '--other-user-child', name0600, name0666], {
      uid: victim,
      gid: victim,
      env: { ...process.env, HOME: '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const code = await new Promise((r) => child.on('close', (c, s) => r(c ?? s)))
    const line = out.split('\n').find((l) => l.startsWith('@@CHILD '))
    if (!line) fail(`child as uid ${victim} printed no result (exit ${code}): ${(err || out).trim().slice(-400)}`)
    const r = JSON.parse(line.slice(8))
    if (r.uid !== victim) na(`could not start a child as uid ${victim} on this runtime (it ran as uid ${r.uid})`)
    const problems = []
    const want = {
      'new(0600)': 'EACCES',
      'READ(0600)': 'EACCES',
      'create(0600)': 'EEXIST',
      'create-nonexcl(0600)': 'EACCES',
      'unlink(0600)': 'EPERM|EACCES',
      'create-nonexcl(0666)': 'opened 4096',
    }
    for (const [k, v] of Object.entries(want)) {
      if (!v.split('|').includes(r.seen[k])) problems.push(`${k}: expected ${v}, got ${r.seen[k]}`)
    }
    eq(C.py('read', name0600, 0, 4), HEAD, "the other user's 0600 segment's bytes afterwards")
    check(shmExists(name0600), "the other user's 0600 segment still exists")
    if (problems.length) fail(problems.join('; '))
    return `as uid ${victim} against uid ${owner}'s segments: ${Object.entries(r.seen).map(([k, v]) => `${k} → ${v}`).join(', ')} ` +
      '(a 0666 segment planted by another user is opened, as glibc does: exclusive create is the guard)'
  } finally {
    C.removeEntry(C.shmPath(name0600))
    C.removeEntry(C.shmPath(name0666))
  }
})
function otherUserChild(name0600, name0666) {
  const { SharedMemory, MemoryAccess } = C.lib()
  const seen = {}
  const tryIt = (k, fn) => {
    try {
      const r = fn()
      seen[k] = r && typeof r === 'object' ? `opened ${r.length}` : String(r)
      C.tryClose(r)
    } catch (e) {
      seen[k] = e.code ?? `uncoded ${errStr(e)}`
    }
  }
  tryIt('new(0600)', () => new SharedMemory(name0600))
  tryIt('READ(0600)', () => new SharedMemory(name0600, undefined, MemoryAccess.READ))
  tryIt('create(0600)', () => SharedMemory.create(name0600, SIZE))
  tryIt('create-nonexcl(0600)', () => SharedMemory.create(name0600, SIZE, { exclusive: false }))
  tryIt('unlink(0600)', () => SharedMemory.unlink(name0600))
  tryIt('create-nonexcl(0666)', () => SharedMemory.create(name0666, SIZE, { exclusive: false }))
  process.stdout.write('@@CHILD ' + JSON.stringify({ uid: process.getuid(), seen }) + '\n')
}

// ================================================================ API misuse
scenario('misuse-call-without-new', 'misuse', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('nn')
  C.py('create', name, SIZE, 0, HEAD)
  try {
    const maps0 = C.mapsOf(name)
    const fds0 = C.fdsTo(name)
    throwsCode(() => SharedMemory(name), 'ERR_CONSTRUCT_CALL_REQUIRED', TypeError, 'SharedMemory(name) without new')
    throwsCode(() => SharedMemory.call({}, name), 'ERR_CONSTRUCT_CALL_REQUIRED', TypeError, 'SharedMemory.call({}, name)')
    const codes = {}
    for (let i = 0; i < 1000; i++) {
      try {
        SharedMemory(name)
        codes['(returned)'] = (codes['(returned)'] ?? 0) + 1
      } catch (e) {
        const k = `${e.constructor?.name} ${e.code}`
        codes[k] = (codes[k] ?? 0) + 1
      }
    }
    const maps1 = C.mapsOf(name)
    const fds1 = C.fdsTo(name)
    eq(JSON.stringify(codes), JSON.stringify({ 'TypeError ERR_CONSTRUCT_CALL_REQUIRED': 1000 }), 'outcomes of 1000 calls without new')
    eq(maps1, maps0, 'mappings of the segment after 1000 calls without new')
    eq(fds1, fds0, 'descriptors of the segment after 1000 calls without new')
    const m = new SharedMemory(name) // the class still works
    eq(m.length, SIZE, 'length of a proper instance afterwards')
    m.close()
    return `1000 × TypeError ERR_CONSTRUCT_CALL_REQUIRED; mappings ${maps0}→${maps1}, fds ${fds0}→${fds1}`
  } finally {
    C.removeEntry(C.shmPath(name))
  }
})

scenario('misuse-wrong-receiver', 'misuse', async () => {
  const { SharedMemory } = C.lib()
  const proto = SharedMemory.prototype
  const keys = [...Object.getOwnPropertyNames(proto), ...Object.getOwnPropertySymbols(proto)].filter((k) => k !== 'constructor')
  const receivers = [
    ['{}', () => ({})],
    ['Object.create(SharedMemory.prototype)', () => Object.create(proto)],
    ['new Map()', () => new Map()],
  ]
  const problems = []
  let n = 0
  for (const k of keys) {
    const d = Object.getOwnPropertyDescriptor(proto, k)
    const fns = []
    if (typeof d.value === 'function') fns.push([`${String(k)}()`, d.value])
    if (typeof d.get === 'function') fns.push([`get ${String(k)}`, d.get])
    for (const [label, fn] of fns) {
      for (const [rl, mk] of receivers) {
        n++
        soft(problems, `${label} on ${rl}`, () => throwsCode(() => fn.call(mk(), 0, 0, 0), 'ERR_INVALID_THIS', TypeError, `${label} on ${rl}`))
      }
    }
  }
  check(n >= 30, `only ${n} method/getter × receiver calls found on the prototype`)
  // A real instance still works.
  const name = C.uniqueName('wr')
  const m = SharedMemory.create(name, SIZE)
  m.atomicStore(0, 5)
  eq(Object.getOwnPropertyDescriptor(proto, 'length').get.call(m), SIZE, 'the length getter taken off the prototype, called on a real instance')
  m.close()
  SharedMemory.unlink(name)
  if (problems.length) fail(`${problems.length}/${n} calls wrong: ${problems.slice(0, 4).join('; ')}${problems.length > 4 ? '; …' : ''}`)
  return `${n} calls (every method and getter × 3 wrong receivers) → TypeError ERR_INVALID_THIS`
})

scenario('misuse-dot-names', 'misuse', async () => {
  const { SharedMemory } = C.lib()
  const problems = []
  let n = 0
  for (const nm of ['.', '..', '/.', '/..']) {
    const calls = {
      new: () => new SharedMemory(nm),
      'new READ': () => new SharedMemory(nm, SIZE, READ()),
      create: () => SharedMemory.create(nm, SIZE),
      'create nonexcl': () => SharedMemory.create(nm, SIZE, { exclusive: false }),
      unlink: () => SharedMemory.unlink(nm),
    }
    for (const [k, fn] of Object.entries(calls)) {
      n++
      soft(problems, `${k}('${nm}')`, () => throwsCode(fn, 'ERR_INVALID_ARG_VALUE', TypeError, `${k}('${nm}')`))
    }
  }
  if (problems.length) fail(`${problems.length}/${n} wrong: ${problems.slice(0, 4).join('; ')}${problems.length > 4 ? '; …' : ''}`)
  return `${n} calls with '.', '..', '/.', '/..' → TypeError ERR_INVALID_ARG_VALUE`
})

scenario('misuse-name-255-bytes', 'misuse', async () => {
  const { SharedMemory } = C.lib()
  const base = C.uniqueName('n255')
  const name255 = base + 'x'.repeat(255 - base.length)
  eq(Buffer.byteLength(name255), 255, 'test name length')
  try {
    eq(C.py('mkname', name255, SIZE), 'made', "Python's multiprocessing.shared_memory creating a 255-byte name (glibc's limit)")
    const problems = []
    soft(problems, 'open 255', () => {
      const m = new SharedMemory(name255)
      if (m.requiresCopy) m.copyFrom()
      eq(hex(m.buffer, 0, 4), 'c0ffee11', 'bytes of the 255-byte-name segment Python made')
      m.close()
      const m2 = new SharedMemory('/' + name255)
      eq(m2.length, SIZE, "length via '/' + the 255-byte name")
      m2.close()
      eq(SharedMemory.unlink(name255), true, 'unlink(255-byte name)')
      check(!shmExists(name255), 'the 255-byte name is gone after unlink')
    })
    soft(problems, 'create 255', () => {
      const c = SharedMemory.create(name255, SIZE)
      c.close()
      eq(C.py('size', name255), String(SIZE), "Python's view of the size of a 255-byte-name segment we created")
      eq(SharedMemory.unlink('/' + name255), true, "unlink('/' + 255-byte name)")
    })
    // One byte over: refused up front (glibc's shm_open would fail with ENAMETOOLONG).
    const over = [name255 + 'y', name255.slice(0, 254) + 'é']
    for (const nm of over) {
      eq(Buffer.byteLength(nm), 256, 'over-long test name length')
      soft(problems, 'new 256', () => throwsCode(() => new SharedMemory(nm), 'ERR_INVALID_ARG_VALUE', TypeError, `new (${nm.length} chars, 256 bytes)`))
      soft(problems, 'create 256', () => throwsCode(() => SharedMemory.create(nm, SIZE), 'ERR_INVALID_ARG_VALUE', TypeError, `create (${nm.length} chars, 256 bytes)`))
      soft(problems, 'unlink 256', () => throwsCode(() => SharedMemory.unlink(nm), 'ERR_INVALID_ARG_VALUE', TypeError, `unlink (${nm.length} chars, 256 bytes)`))
    }
    if (problems.length) fail(problems.join('; '))
    return 'a 255-byte name (made by Python) opens, with or without the /, and unlinks; create works; 256 bytes → ERR_INVALID_ARG_VALUE'
  } finally {
    C.removeEntry(C.shmPath(name255))
  }
})

// ================================================================ create(exclusive:false) vs a real creator
/** A creator that shm_open()s the name, sleeps 20 ms (the segment is 0 bytes meanwhile), then
 *  sizes it to `creatorSize` and writes 5a5a5a5a; create(name, 4096, {exclusive:false}) is called
 *  inside that window. Returns { result | error, before (the size the creator saw just before its
 *  ftruncate), after (the final size) }. */
/** raceCreator, again (up to 3 tries, each under a new name) while the creator's 20 ms window
 *  stretched past 80 ms and create() gave up with ERR_SHM_EMPTY: on an overloaded machine that is
 *  the scheduler, not the contract (create waits about 100 ms). */
async function race(tag, creatorSize) {
  let r
  for (let attempt = 1; attempt <= 3; attempt++) {
    const name = C.uniqueName(tag)
    try {
      r = await raceCreator(name, creatorSize)
    } finally {
      C.removeEntry(C.shmPath(name))
    }
    r.attempt = attempt
    if (!(r.error?.code === 'ERR_SHM_EMPTY' && r.gapMs >= 80)) return r
    C.note(`race attempt ${attempt}: the creator took ${r.gapMs} ms to size its segment (machine overloaded); again`)
  }
  fail(`in 3 attempts the creator never sized its segment within 80 ms of shm_open (last: ${r.gapMs} ms): the machine is too loaded to run this race`)
}
async function raceCreator(name, creatorSize) {
  const { SharedMemory } = C.lib()
  const peer = await C.pyStart(['slowcreate', name, 20, creatorSize], 'opened')
  try {
    let m = null
    let error = null
    try {
      m = SharedMemory.create(name, SIZE, { exclusive: false })
    } catch (e) {
      error = e
    }
    await peer.waitFor('sized')
    const [before, gapMs] = (peer.lines.find((l) => l.startsWith('before ')) ?? '').split(' ').slice(1)
    let head = null
    let len = null
    if (m) {
      len = m.length
      if (m.requiresCopy) m.copyFrom(0, 0, 4)
      head = hex(m.buffer, 0, 4)
      m.close()
    }
    return { error, len, head, before, gapMs: Number(gapMs), after: C.py('size', name) }
  } finally {
    await peer.stop()
  }
}
scenario('create-nonexclusive-race', 'create', async () => {
  const r = await race('race', 8192)
  const problems = []
  if (r.error) problems.push(`create(…, 4096, {exclusive:false}) during the creator's 0-byte window threw ${errStr(r.error)}`)
  if (r.before !== '0') problems.push(`the creator found its segment resized to ${r.before} bytes before its own ftruncate (create must never resize an existing segment)`)
  if (r.after !== '8192') problems.push(`the segment's final size is ${r.after}, expected the creator's 8192`)
  // It maps the length it asked for, as new SharedMemory(name, 4096) would.
  if (!r.error && r.len !== SIZE) problems.push(`length of the instance: expected ${SIZE} (the requested length), got ${r.len}`)
  if (!r.error && r.head !== '5a5a5a5a') problems.push(`the creator's bytes read through it: expected "5a5a5a5a", got "${r.head}"`)
  if (problems.length) fail(problems.join('; '))
  return "create waited for the creator: it never resized the segment (the creator saw 0 bytes before its ftruncate), mapped 4096 of the creator's 8192 bytes and sees the creator's bytes"
})
scenario('create-nonexclusive-race-smaller', 'create', async () => {
  const r = await race('racs', 2048)
  const problems = []
  if (!r.error) problems.push(`create(…, 4096, {exclusive:false}) returned an instance of length ${r.len} over a segment the creator sized to 2048 bytes (expected RangeError ERR_OUT_OF_RANGE)`)
  else if (!(r.error instanceof RangeError) || r.error.code !== 'ERR_OUT_OF_RANGE') problems.push(`create(…, 4096, {exclusive:false}) threw ${errStr(r.error)}, expected RangeError ERR_OUT_OF_RANGE (the existing segment is smaller and is never resized)`)
  if (r.before !== '0') problems.push(`the creator found its segment resized to ${r.before} bytes before its own ftruncate`)
  if (r.after !== '2048') problems.push(`the segment's final size is ${r.after}, expected the creator's 2048`)
  if (problems.length) fail(problems.join('; '))
  return "RangeError ERR_OUT_OF_RANGE (the creator's 2048 bytes < 4096, never resized); the creator saw 0 bytes before its ftruncate"
})

scenario('create-nonexclusive-never-sized', 'create', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('empty')
  const peer = await C.pyStart(['holdempty', name], 'opened')
  try {
    const problems = []
    soft(problems, 'create', () => throwsCode(() => SharedMemory.create(name, SIZE, { exclusive: false }), 'ERR_SHM_EMPTY', Error, 'create(…, 4096, {exclusive:false}) of a 0-byte segment nobody sizes'))
    soft(problems, 'new', () => throwsCode(() => new SharedMemory(name), 'ERR_SHM_EMPTY', Error, 'new SharedMemory(name) of a 0-byte segment'))
    const size = C.py('size', name)
    if (size !== '0') problems.push(`the creator's segment was resized to ${size} bytes (must stay 0: never resize an existing segment)`)
    if (problems.length) fail(problems.join('; '))
    return 'ERR_SHM_EMPTY for create({exclusive:false}) and new; the segment stays 0 bytes'
  } finally {
    await peer.stop()
    C.removeEntry(C.shmPath(name))
  }
})

// ================================================================ descriptors
ROLES.hold = async ({ name }, send) => {
  const { SharedMemory } = C.lib()
  const m = new SharedMemory(name)
  send({ type: 'ready' })
  const onMessage = () => {
    m.close()
    parentPort.off('message', onMessage)
  }
  parentPort.on('message', onMessage)
}
scenario('fds-not-inherited', 'fds', async () => {
  const { SharedMemory } = C.lib()
  const name = C.uniqueName('fd')
  const m1 = SharedMemory.create(name, SIZE)
  const m2 = new SharedMemory(name, undefined, READ())
  const pending = m1.waitAsync(0, 0).catch(() => 'closed')
  const h = startWorker('hold', { name })
  await h.next('ready')
  const child = spawn('sleep', ['20'], { stdio: 'ignore' })
  // Control: a descriptor handed over on purpose (stdio[3]) must be seen in a child, or the
  // check below could not fail.
  const ctlFd = fs.openSync(C.shmPath(name), 'r')
  let control = null
  try {
    control = spawn('sleep', ['20'], { stdio: ['ignore', 'ignore', 'ignore', ctlFd] })
  } catch {}
  fs.closeSync(ctlFd)
  const execd = (c) => {
    try {
      return /(^|\/)sleep$/.test(fs.readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').split('\0')[0])
    } catch {
      return false
    }
  }
  try {
    // Wait until the children have exec'ed sleep (their descriptors are then final).
    check(await until(() => execd(child), 5000), 'the child never exec’d sleep')
    let ctl = 'control n/a (this runtime cannot pass extra stdio descriptors)'
    if (control?.pid && (await until(() => execd(control), 5000))) {
      const n = C.fdsTo(name, control.pid)
      if (n === 1) ctl = 'a descriptor passed on purpose is seen (1)'
      else if (n !== 0) fail(`control: a child given one descriptor of the segment on purpose holds ${n}`)
      else ctl = 'control n/a (the runtime did not pass stdio[3])'
    }
    const ours = C.fdsTo(name)
    const theirs = C.fdsTo(name, child.pid)
    check(ours >= 3, `this process holds only ${ours} descriptors of the segment (expected ≥ 3: two instances and a worker's)`)
    eq(theirs, 0, `descriptors of the segment inherited by a child_process.spawn child (we hold ${ours})`)
    return `we hold ${ours} descriptors of the segment (2 instances and a worker's, with a waitAsync pending); the spawned child has 0; ${ctl}`
  } finally {
    child.kill('SIGKILL')
    control?.kill('SIGKILL')
    h.w.postMessage('stop')
    m1.close()
    m2.close()
    await pending
    await h.exited
    SharedMemory.unlink(name)
  }
})

// ================================================================ entry points
C.SKIPPED = Symbol('skipped')
async function runScenario(name) {
  const sc = SCENARIOS.find((s) => s.name === name)
  if (!sc) {
    C.emit({ status: 'fail', detail: `unknown scenario '${name}'` })
    process.exit(2)
  }
  process.on('unhandledRejection', (e) => {
    C.emit({ status: 'fail', detail: `unhandled rejection ${errStr(e)}` })
    process.exit(1)
  })
  try {
    const detail = await sc.run()
    if (detail !== C.SKIPPED) C.emit({ status: 'pass', detail })
    if (sc.exitNow) process.exit(0)
    if (!sc.natural) C.note('checks done; the process must now end by itself')
  } catch (e) {
    if (e instanceof C.NotApplicable) {
      C.emit({ status: 'na', detail: e.message })
      process.exit(0)
    }
    C.emit({ status: 'fail', detail: e instanceof C.Fail ? e.message : `unexpected ${errStr(e)} ${String(e?.stack ?? '').split('\n').slice(1, 4).join(' ')}` })
    process.exit(1)
  }
}

module.exports = { SCENARIOS }

if (!isMainThread && workerData && workerData.role) {
  runWorkerRole()
} else if (isMainThread && process.argv.includes('--scenario')) {
  runScenario(process.argv[process.argv.indexOf('--scenario') + 1])
} else if (isMainThread && process.argv.includes('--other-user-child')) {
  const i = process.argv.indexOf('--other-user-child')
  otherUserChild(process.argv[i + 1], process.argv[i + 2])
} else if (isMainThread && process.argv.includes('--list')) {
  for (const s of SCENARIOS) console.log(`${s.group}\t${s.name}`)
}
