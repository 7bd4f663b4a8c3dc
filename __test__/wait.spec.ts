// Cross-process wait / notify / waitAsync. Runs in both modes (the native calls act on the
// segment itself either way).
import test from 'ava'
import { spawn } from 'node:child_process'
import { SharedMemory } from '../index.js'
import { ROOT, runNode, uniqueName } from './helpers/util'

/** Runs a Node child and kills it (failing the test) if it has not exited within `ms`. */
function runNodeBounded(script: string, args: string[], ms: number) {
  return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; killed: boolean }>((resolve) => {
    const child = spawn(process.execPath, ['-e', script, '--', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let killed = false
    const timer = setTimeout(() => {
      killed = true
      child.kill('SIGKILL')
    }, ms)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, killed })
    })
  })
}

const PINGPONG = `
const { SharedMemory } = require('./index.js')
const [name, rounds, me, other] = process.argv.slice(1).map((v, i) => i ? Number(v) : v)
const m = new SharedMemory(name)
let handoffs = 0
for (let i = 0; i < rounds; i++) {
  while (m.atomicLoad(0) !== me) {
    const r = m.wait(0, other, 5000)
    if (r === 'timed-out') { console.error('lost wakeup at round ' + i); process.exit(3) }
  }
  m.atomicStore(0, other)
  m.notify(0, 1)
  handoffs++
}
process.stdout.write(String(handoffs))
`

test('two Node processes hand a token back and forth 100k times with wait/notify and lose no wakeup', async (t) => {
  const name = uniqueName('pingpong')
  const mem = SharedMemory.create(name, 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const rounds = 100_000
  // Token: 0 = process A's turn, 1 = process B's turn. Both are children, so this test's own
  // event loop stays free; each wait is bounded (5 s) and a timeout is reported as a lost wakeup.
  const [a, b] = await Promise.all([
    runNodeBounded(PINGPONG, [name, String(rounds), '0', '1'], 120_000),
    runNodeBounded(PINGPONG, [name, String(rounds), '1', '0'], 120_000),
  ])
  t.false(a.killed || b.killed, 'neither side hung')
  t.is(a.code, 0, a.stderr)
  t.is(b.code, 0, b.stderr)
  t.is(a.stdout, String(rounds))
  t.is(b.stdout, String(rounds))
  t.is(mem.atomicLoad(0), 0, 'the token is back with A after an even number of handoffs')
  mem.close()
})

test('wait: not-equal at once, timed-out not before the timeout', (t) => {
  const name = uniqueName('timeout')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  t.is(mem.wait(0, 1), 'not-equal')
  t.is(mem.wait(0, 1, 0), 'not-equal')
  t.is(mem.wait(0, 0, 0), 'timed-out')
  const start = process.hrtime.bigint()
  t.is(mem.wait(0, 0, 60), 'timed-out')
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  t.true(ms >= 59, `waited ${ms} ms`)
  t.true(ms < 10_000, `returned within a sane bound: ${ms} ms`)
  mem.close()
})

test('waitAsync: resolves timed-out, not-equal, and lets a timer fire while it waits', async (t) => {
  const name = uniqueName('wasync')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  t.is(await mem.waitAsync(0, 5), 'not-equal')
  const start = Date.now()
  let timerFired = false
  setTimeout(() => (timerFired = true), 10)
  t.is(await mem.waitAsync(0, 0, 150), 'timed-out')
  t.true(timerFired, 'the event loop ran while waiting')
  t.true(Date.now() - start >= 140)
  mem.close()
})

test('waitAsync is woken by a notify from another process', async (t) => {
  const name = uniqueName('wnotify')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  const waiting = mem.waitAsync(8, 0, 20_000)
  let ticks = 0
  const interval = setInterval(() => ticks++, 5)
  const child = await runNode(
    `const { SharedMemory } = require('./index.js')
     const m = new SharedMemory(process.argv[1])
     setTimeout(() => { m.atomicStore(8, 1); let n = 0; const t = setInterval(() => { n += m.notify(8); if (n > 0) { clearInterval(t); process.stdout.write(String(n)) } }, 5) }, 100)`,
    [name],
  )
  t.is(child.code, 0, child.stderr)
  t.is(child.stdout, '1', 'notify reports the one waiter it woke')
  t.is(await waiting, 'ok')
  clearInterval(interval)
  t.true(ticks > 3, `timers kept running while waiting (${ticks} ticks)`)
  mem.close()
})

test('notify wakes exactly the waiters of other processes and says how many', async (t) => {
  const name = uniqueName('count')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  const waiter = `const { SharedMemory } = require('./index.js')
    const m = new SharedMemory(process.argv[1])
    process.stdout.write(m.wait(0, 0, 20000))`
  const children = [runNodeBounded(waiter, [name], 30_000), runNodeBounded(waiter, [name], 30_000)]
  let woken = 0
  const deadline = Date.now() + 20_000
  while (woken < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20))
    woken += mem.notify(0, 1)
  }
  const results = await Promise.all(children)
  t.is(woken, 2)
  t.deepEqual(results.map((r) => r.stdout), ['ok', 'ok'])
  t.is(mem.notify(0), 0, 'nobody is left waiting')
  mem.close()
})

test('close() wakes a pending waitAsync, which rejects with ERR_SHM_CLOSED, and the process exits', async (t) => {
  const name = uniqueName('closewait')
  SharedMemory.create(name, 64).close()
  t.teardown(() => SharedMemory.unlink(name))
  const r = await runNodeBounded(
    `const { SharedMemory } = require('./index.js')
     const m = new SharedMemory(process.argv[1])
     m.waitAsync(0, 0).then((v) => console.log('resolved', v), (e) => console.log('rejected', e.code))
     setTimeout(() => m.close(), 100)`,
    [name],
    15_000,
  )
  t.false(r.killed, 'the child did not hang')
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout.trim(), 'rejected ERR_SHM_CLOSED')
})

test('a pending waitAsync keeps the process alive until it is notified', async (t) => {
  const name = uniqueName('alive')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  // The child has nothing else to do: only its pending waitAsync can keep it running.
  const child = runNodeBounded(
    `const { SharedMemory } = require('./index.js')
     const m = new SharedMemory(process.argv[1])
     m.waitAsync(0, 0).then((v) => { console.log(v); m.close() })
     m.atomicStore(4, 1)`,
    [name],
    20_000,
  )
  const deadline = Date.now() + 15_000
  while (mem.atomicLoad(4) !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  await new Promise((r) => setTimeout(r, 300))
  let woken = 0
  while (woken === 0 && Date.now() < deadline) {
    woken = mem.notify(0)
    await new Promise((r) => setTimeout(r, 10))
  }
  const r = await child
  t.false(r.killed)
  t.is(woken, 1)
  t.is(r.stdout.trim(), 'ok')
  mem.close()
})

test('wait/notify/waitAsync check their arguments', (t) => {
  const name = uniqueName('wargs')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  for (const off of [2, -4, 64, 61, 1.5, NaN, Infinity, 2 ** 32]) {
    t.throws(() => mem.wait(off, 0, 0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(off))
    t.throws(() => mem.notify(off), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(off))
    t.throws(() => mem.waitAsync(off, 0, 0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(off))
  }
  for (const off of ['0', undefined, null, 0n]) {
    t.throws(() => mem.wait(off as any, 0, 0), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' }, String(off))
  }
  for (const ex of [2 ** 31, -(2 ** 31) - 1, 0.5, NaN]) {
    t.throws(() => mem.wait(0, ex, 0), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(ex))
  }
  t.throws(() => mem.wait(0, '0' as any, 0), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  for (const to of [-1, NaN, -Infinity]) {
    t.throws(() => mem.wait(0, 0, to), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(to))
    t.throws(() => mem.waitAsync(0, 0, to), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(to))
  }
  t.throws(() => mem.wait(0, 0, '5' as any), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
  for (const c of [-1, 1.5, NaN]) {
    t.throws(() => mem.notify(0, c), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' }, String(c))
  }
  t.is(mem.notify(60, Infinity), 0)
  t.is(mem.notify(0, 0), 0)
  t.is(mem.wait(60, 1, 0), 'not-equal', 'the last Int32 of the mapping is in range')
  mem.close()
})
