// Which object a name stands for, against a foreign process that calls shm_open with the name
// exactly as given (helpers/exact_shm.py), as node-shared-mem 2.x did on macOS and as a .NET or
// C creator calling shm_open("x") does. On Linux "x" and "/x" are one object; on macOS two:
// open tries "x", then "/x"; create and unlink touch exactly the string given. Both branches
// are asserted on their own OS (macOS in CI's macos-latest job). Unix only. Runs twice from
// `npm test`: zero-copy and NODE_SHARED_MEM_FORCE_COPY=1.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import { SharedMemory } from '../dist'
import { PYTHON } from './helpers/util'

const MAC = process.platform === 'darwin'
const unix = process.platform === 'win32' ? test.skip : test
const EXACT = path.join(__dirname, 'helpers', 'exact_shm.py')

/** A bare name, short enough for macOS (31 bytes) with a '/' in front. */
function bare(): string {
  return `nsm${process.pid % 100000}${randomBytes(4).toString('hex')}`
}

/** Runs exact_shm.py; returns its exit status and stdout. Throws if Python itself failed. */
function exact(...args: (string | number)[]): { status: number; out: string } {
  const r = spawnSync(PYTHON, [EXACT, ...args.map(String)], { encoding: 'utf8' })
  if (r.error || r.status === null || r.status === 1) {
    throw new Error(`exact_shm.py ${args.join(' ')}: ${r.error ?? r.stderr}`)
  }
  return { status: r.status, out: r.stdout.trim() }
}

/** Creates exactly `name` from the foreign process with `text` at offset 0; false if it existed. */
function foreignCreate(name: string, text: string): boolean {
  const { status } = exact('create', name, 4096, Buffer.from(text).toString('hex'))
  if (status !== 0 && status !== 3) throw new Error(`create ${name}: exit ${status}`)
  return status === 0
}

/** The first `n` bytes of exactly `name` as text, read by the foreign process; null if absent. */
function foreignRead(name: string, n: number): string | null {
  const { status, out } = exact('read', name, n)
  return status === 0 ? Buffer.from(out, 'hex').toString() : null
}

/** Removes exactly `name` from the foreign process, if it exists. */
function foreignUnlink(name: string): void {
  exact('unlink', name)
}

/** Opens `name` through the package and returns its first `n` bytes as text. */
function readVia(name: string, n: number): string {
  const mem = new SharedMemory(name)
  try {
    if (mem.requiresCopy) mem.copyFrom(0, 0, n)
    return Buffer.from(mem.buffer!, 0, n).toString()
  } finally {
    mem.close()
  }
}

/** Creates `name` through the package with `text` at offset 0. */
function createVia(name: string, text: string): void {
  const mem = SharedMemory.create(name, 4096)
  Buffer.from(text).copy(Buffer.from(mem.buffer!))
  if (mem.requiresCopy) mem.copyTo(0, 0, text.length)
  mem.close()
}

function cleanup(x: string): void {
  foreignUnlink(x)
  foreignUnlink('/' + x)
}

unix('opens a segment a foreign shm_open made under the bare name (as 2.x did on macOS)', (t) => {
  const x = bare()
  t.teardown(() => cleanup(x))
  t.true(foreignCreate(x, 'made as x'))
  t.is(readVia(x, 9), 'made as x')
})

unix('a bare name also finds the segment Python made as "/name"', (t) => {
  const x = bare()
  t.teardown(() => cleanup(x))
  t.true(foreignCreate('/' + x, 'made as /x'))
  t.is(readVia(x, 10), 'made as /x')
  t.is(readVia('/' + x, 10), 'made as /x')
})

unix('a name with a leading "/" opens only that object', (t) => {
  const x = bare()
  t.teardown(() => cleanup(x))
  t.true(foreignCreate(x, 'made as x'))
  if (MAC) t.throws(() => new SharedMemory('/' + x), { code: 'ENOENT' })
  else t.is(readVia('/' + x, 9), 'made as x', 'Linux: one object')
})

unix('where both "x" and "/x" exist, "x" opens "x" and "/x" opens "/x"', (t) => {
  const x = bare()
  t.teardown(() => cleanup(x))
  t.true(foreignCreate(x, 'made as x.'))
  if (!MAC) {
    t.false(foreignCreate('/' + x, 'made as /x'), 'Linux: "/x" is the same object, so it exists')
    return
  }
  t.true(foreignCreate('/' + x, 'made as /x'))
  t.is(readVia(x, 10), 'made as x.')
  t.is(readVia('/' + x, 10), 'made as /x')
})

unix('create makes exactly the name given; a foreign shm_open of that string sees the bytes', (t) => {
  const x = bare()
  const y = bare()
  t.teardown(() => (cleanup(x), cleanup(y)))
  createVia(x, 'created x')
  createVia('/' + y, 'created /y')
  t.is(foreignRead(x, 9), 'created x')
  t.is(foreignRead('/' + y, 10), 'created /y')
  if (MAC) {
    t.is(foreignRead('/' + x, 9), null, 'macOS: create("x") did not make "/x"')
    t.is(foreignRead(y, 10), null, 'macOS: create("/y") did not make "y"')
  } else {
    t.is(foreignRead('/' + x, 9), 'created x')
    t.is(foreignRead(y, 10), 'created /y')
  }
})

unix('create of a bare name is exclusive on that name only', (t) => {
  const x = bare()
  t.teardown(() => cleanup(x))
  t.true(foreignCreate('/' + x, 'made as /x'))
  if (MAC) {
    // "/x" exists, "x" does not: create("x") makes "x"; it neither fails nor adopts "/x".
    createVia(x, 'created x.')
    t.is(foreignRead(x, 10), 'created x.')
    t.is(foreignRead('/' + x, 10), 'made as /x')
  } else {
    t.throws(() => SharedMemory.create(x, 4096), { code: 'EEXIST' })
  }
})

unix('unlink removes exactly the name given', (t) => {
  const x = bare()
  t.teardown(() => cleanup(x))
  t.true(foreignCreate(x, 'made as x.'))
  if (MAC) {
    t.true(foreignCreate('/' + x, 'made as /x'))
    t.true(SharedMemory.unlink(x))
    t.is(foreignRead(x, 10), null)
    t.is(foreignRead('/' + x, 10), 'made as /x', 'unlink("x") left "/x"')
    t.false(SharedMemory.unlink(x), '"x" is gone; "/x" is not looked at')
    t.true(SharedMemory.unlink('/' + x))
    t.is(foreignRead('/' + x, 10), null)
  } else {
    t.true(SharedMemory.unlink('/' + x), 'Linux: one object')
    t.is(foreignRead(x, 10), null)
    t.false(SharedMemory.unlink(x))
  }
})

unix('the longest name the OS takes opens, one byte more is refused before any syscall', (t) => {
  // macOS: 31 bytes, a leading '/' included (PSHMNAMLEN); Linux: 255 after the '/'.
  const max = MAC ? 31 : 255
  const x = bare()
  const long = x + 'z'.repeat(max - x.length)
  t.teardown(() => foreignUnlink(long)) // (macOS refuses '/' + long outright: EINVAL)
  createVia(long, 'longest')
  t.is(foreignRead(long, 7), 'longest')
  t.is(readVia(long, 7), 'longest')
  t.true(SharedMemory.unlink(long))
  const bad = { code: 'ERR_INVALID_ARG_VALUE' }
  t.throws(() => SharedMemory.create(long + 'z', 4096), bad)
  t.throws(() => new SharedMemory(long + 'z'), bad)
  if (MAC) t.throws(() => new SharedMemory('/' + long), bad)
  else t.throws(() => new SharedMemory('/' + long + 'z'), bad)
})
