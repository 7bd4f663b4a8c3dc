// Cross-process wait / notify / waitAsync. Runs in both modes (the native calls act on the
// segment itself either way).
import test from 'ava'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { SharedMemory } from '../dist'
import { ROOT, uniqueName } from './helpers/util'

/** Spawns a Node child running `script`; `done` resolves when it exits (killed after `ms`). */
function spawnBounded(script: string, args: string[], ms: number) {
  const child = spawn(process.execPath, ['-e', script, '--', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  let killed = false
  let exited = false
  const timer = setTimeout(() => {
    killed = true
    child.kill('SIGKILL')
  }, ms)
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; killed: boolean }>((resolve) => {
    child.on('close', (code, signal) => {
      exited = true
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, killed })
    })
  })
  return { pid: child.pid!, done, exited: () => exited, stdout: () => stdout }
}

/** Runs a Node child and kills it (failing the test) if it has not exited within `ms`. */
function runNodeBounded(script: string, args: string[], ms: number) {
  return spawnBounded(script, args, ms).done
}

// Token word: 0 = process A's turn, 1 = process B's turn, 2 = stop. A ends the game on its turn
// after `rounds` hand-offs or `budgetMs`, whichever comes first (a loaded machine makes every
// hand-off a context switch: 100k took 100 s at load 8), so the test's length does not depend on
// the machine's load; a lost wake-up still shows as a 5 s wait that times out.
const PINGPONG = `
const { SharedMemory } = require('.')
const [name, rounds, me, other, budgetMs] = process.argv.slice(1).map((v, i) => i ? Number(v) : v)
const STOP = 2
const m = new SharedMemory(name)
const deadline = Date.now() + budgetMs
let handoffs = 0
for (;;) {
  let v
  while ((v = m.atomicLoad(0)) !== me && v !== STOP) {
    const r = m.wait(0, other, 5000)
    if (r === 'timed-out') { console.error('lost wakeup after ' + handoffs + ' handoffs'); process.exit(3) }
  }
  if (v === STOP) break
  if (me === 0 && (handoffs === rounds || (handoffs % 1024 === 0 && Date.now() > deadline))) {
    m.atomicStore(0, STOP)
    m.notify(0, 1)
    break
  }
  m.atomicStore(0, other)
  m.notify(0, 1)
  handoffs++
}
process.stdout.write(String(handoffs))
`

test('two Node processes hand a token back and forth (100k times, or for 20 s) with wait/notify and lose no wakeup', async (t) => {
  const name = uniqueName('pingpong')
  const mem = SharedMemory.create(name, 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const rounds = 100_000
  // Both sides are children, so this test's own event loop stays free; each wait is bounded
  // (5 s) and a timeout is reported as a lost wakeup.
  const [a, b] = await Promise.all([
    runNodeBounded(PINGPONG, [name, String(rounds), '0', '1', '20000'], 90_000),
    runNodeBounded(PINGPONG, [name, String(rounds), '1', '0', '20000'], 90_000),
  ])
  t.false(a.killed || b.killed, 'neither side hung')
  t.is(a.code, 0, a.stderr)
  t.is(b.code, 0, b.stderr)
  const n = Number(a.stdout)
  t.log(`${n} hand-offs each way`)
  t.true(n >= 1024 && n <= rounds, `A handed the token over ${a.stdout} times`)
  t.is(b.stdout, a.stdout, 'B handed it back as often as A handed it over')
  t.is(mem.atomicLoad(0), 2, 'A ended the game on its turn')
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
  t.is(await mem.waitAsync(0, 0, 150), 'timed-out')
  t.true(Date.now() - start >= 140)
  // Only a timer of this very event loop can end this wait: if waitAsync blocked the loop, the
  // timer could never run and the test would time out. (No timing involved, so it also holds
  // on a heavily loaded machine.)
  const pending = mem.waitAsync(4, 0, 60_000)
  setTimeout(() => {
    mem.atomicStore(4, 1)
    mem.notify(4)
  }, 10)
  // 'ok' (woken), or 'not-equal' when the wait's own thread started only after the timer had
  // changed the word (a loaded machine): either way the timer ran while the wait was pending.
  t.true(['ok', 'not-equal'].includes(await pending))
  t.is(mem.atomicLoad(4), 1)
  mem.close()
})

test('waitAsync is woken by a notify from another process', async (t) => {
  const name = uniqueName('wnotify')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  // The word stays 0: only a notify can end this wait. The child notifies every 5 ms until one
  // call reports a woken waiter (a notify that lands between two of the waiter's kernel waits
  // finds nobody and reports 0), and gives up after 15 s.
  const waiting = mem.waitAsync(8, 0, 20_000)
  let ticks = 0
  const interval = setInterval(() => ticks++, 5)
  const child = await runNodeBounded(
    `const { SharedMemory } = require('.')
     const m = new SharedMemory(process.argv[1])
     const end = Date.now() + 15000
     setTimeout(() => { const t = setInterval(() => { const n = m.notify(8); if (n > 0 || Date.now() > end) { clearInterval(t); process.stdout.write(String(n)) } }, 5) }, 100)`,
    [name],
    30_000,
  )
  t.false(child.killed)
  t.is(child.code, 0, child.stderr)
  t.is(child.stdout, '1', 'notify reports the one waiter it woke')
  t.is(await waiting, 'ok')
  clearInterval(interval)
  // (That the loop keeps running during a wait is checked without timing in the test above;
  // a tick count would depend on the machine's load.)
  t.log(`${ticks} timer ticks while waiting`)
  t.is(mem.atomicLoad(8), 0)
  mem.close()
})

/**
 * Whether the main thread of `pid` is asleep in the kernel in futex(2) on OUR word: wait()
 * spins for a few µs first, and a waiter still spinning is not counted by notify, so the
 * exact-count checks below only notify once every waiter sleeps in FUTEX_WAIT on the segment's
 * word. A Node main thread also blocks in futex for other reasons (a condition variable while
 * it starts up on a loaded machine), so /proc/<pid>/task/<pid>/syscall must show futex with a
 * shared FUTEX_WAIT (op 0 or WAIT_BITSET 9, no PRIVATE flag) on an address whose offset in its
 * page is `byteOffset` (mappings are page-aligned). Elsewhere (no /proc) a generous settle
 * delay stands in.
 */
const FUTEX_NR: Record<string, string> = { x64: '202', arm64: '98', ia32: '240', arm: '240' }
function asleepOnWord(pid: number, byteOffset: number): boolean {
  try {
    const [nr, addr, op] = readFileSync(`/proc/${pid}/task/${pid}/syscall`, 'utf8').trim().split(' ')
    if (nr !== FUTEX_NR[process.arch]) return false
    const cmd = Number(BigInt(op) & 0x7fn)
    const shared = (BigInt(op) & 0x80n) === 0n
    return shared && (cmd === 0 || cmd === 9) && Number(BigInt(addr) & 0xfffn) === byteOffset
  } catch {
    return false
  }
}
async function untilAsleep(pids: number[], byteOffset: number, deadlineMs: number): Promise<boolean> {
  if (process.platform !== 'linux' || !FUTEX_NR[process.arch]) {
    await new Promise((r) => setTimeout(r, 2000))
    return true
  }
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline) {
    if (pids.every((pid) => asleepOnWord(pid, byteOffset))) return true
    await new Promise((r) => setTimeout(r, 10))
  }
  return false
}

test('notify(off, 1) wakes exactly one sleeping waiter of another process, and says so', async (t) => {
  const name = uniqueName('count')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  // The word stays 0 throughout: only notify can end these waits (each bounded at 60 s).
  const waiter = `const { SharedMemory } = require('.')
    const m = new SharedMemory(process.argv[1])
    process.stdout.write('waiting ')
    process.stdout.write(m.wait(0, 0, 60000))`
  const kids = [spawnBounded(waiter, [name], 90_000), spawnBounded(waiter, [name], 90_000)]
  t.true(await untilAsleep(kids.map((k) => k.pid), 0, 60_000), 'both waiters are asleep in FUTEX_WAIT on the word')
  t.is(mem.atomicLoad(0), 0, 'the word never changed')

  t.is(mem.notify(0, 1), 1, 'notify(off, 1) wakes exactly one waiter and counts it')
  const first = await Promise.race(kids.map((k, i) => k.done.then((r) => ({ i, r }))))
  t.is(first.r.code, 0, first.r.stderr)
  t.is(first.r.stdout, 'waiting ok')
  const other = kids[1 - first.i]
  // The other one must still be asleep: a notify(off, 1) that woke both would end it too.
  await new Promise((r) => setTimeout(r, 300))
  t.false(other.exited(), 'the second waiter was not woken')
  t.true(await untilAsleep([other.pid], 0, 5_000), 'and it is still asleep on the word')

  t.is(mem.notify(0, 1), 1, 'the second notify(off, 1) wakes the other one')
  const second = await other.done
  t.is(second.code, 0, second.stderr)
  t.is(second.stdout, 'waiting ok')
  t.is(mem.notify(0), 0, 'nobody is left waiting')
  mem.close()
})

test('notify(off) with no count wakes every sleeping waiter and counts them exactly', async (t) => {
  const name = uniqueName('countall')
  const mem = SharedMemory.create(name, 64)
  t.teardown(() => SharedMemory.unlink(name))
  const waiter = `const { SharedMemory } = require('.')
    const m = new SharedMemory(process.argv[1])
    process.stdout.write(m.wait(8, 0, 60000))`
  const kids = [0, 1, 2].map(() => spawnBounded(waiter, [name], 90_000))
  t.true(await untilAsleep(kids.map((k) => k.pid), 8, 60_000), 'all three waiters are asleep in FUTEX_WAIT on the word')
  t.is(mem.notify(8, 2), 2, 'notify(off, 2) wakes exactly two')
  // Wait for the two woken ones to exit (however slow the machine), then the third must still
  // be asleep in the kernel.
  const deadline = Date.now() + 30_000
  while (kids.filter((k) => k.exited()).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  await new Promise((r) => setTimeout(r, 300))
  const left = kids.filter((k) => !k.exited())
  t.is(left.length, 1, 'exactly two waiters returned')
  t.true(await untilAsleep(left.map((k) => k.pid), 8, 5_000), 'the third is still asleep on the word')
  t.is(mem.notify(8), 1, 'notify(off) wakes the one left')
  const results = await Promise.all(kids.map((k) => k.done))
  t.deepEqual(results.map((r) => r.stdout), ['ok', 'ok', 'ok'])
  mem.close()
})

test('close() wakes a pending waitAsync, which rejects with ERR_SHM_CLOSED, and the process exits', async (t) => {
  const name = uniqueName('closewait')
  SharedMemory.create(name, 64).close()
  t.teardown(() => SharedMemory.unlink(name))
  const r = await runNodeBounded(
    `const { SharedMemory } = require('.')
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
    `const { SharedMemory } = require('.')
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
