'use strict'
// Helpers for the lifecycle scenarios (lifecycle/scenarios.cjs). Plain CommonJS that runs
// unchanged on Node, Bun and Deno (Deno: `deno run --allow-all --v8-flags=--expose-gc`: Deno grants
// /proc and /dev paths only with --allow-all).
//
// A scenario reports with one line on stdout:  @@LC {"status":"pass"|"fail"|"na"|"skip", …}
// and may print progress lines  @@NOTE <text>  (the runner shows the last one when a child hangs).
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync, spawn } = require('node:child_process')
const { randomBytes } = require('node:crypto')

const ROOT = path.resolve(__dirname, '..')
const SHM_DIR = '/dev/shm'
const PEER = path.join(__dirname, 'peer.py')
const PYTHON = process.env.PYTHON || 'python3'
const CAGED = process.env.NODE_SHARED_MEM_FORCE_COPY === '1'
const RUNTIME =
  typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node'

let addon
/** The package, loaded through its root (package.json "main"), never ../index.js directly. */
function lib() {
  // The trailing separator makes require() resolve the directory (package.json "main"), never a
  // file that happens to be named like it (<root>.js, <root>.json).
  if (!addon) addon = require(ROOT + path.sep)
  return addon
}

/** A name no other process uses: nsm-lc-<pid>-<tag>-<random>. The runner removes leftovers by pid. */
function uniqueName(tag) {
  return `nsm-lc-${process.pid}-${tag}-${randomBytes(4).toString('hex')}`
}
function shmPath(name) {
  return path.join(SHM_DIR, name.replace(/^\/+/, ''))
}
/** A private temporary directory (removed by the runner by pid if the scenario dies). */
function tmpDir(tag) {
  const d = path.join('/tmp', `nsm-lc-${process.pid}-${tag}-${randomBytes(4).toString('hex')}`)
  fs.mkdirSync(d, { mode: 0o700 })
  return d
}
/** Removes whatever sits under /dev/shm/<name> (file, symlink, FIFO, directory); never follows links. */
function removeEntry(p) {
  try {
    const st = fs.lstatSync(p)
    if (st.isDirectory()) fs.rmSync(p, { recursive: true, force: true })
    else fs.unlinkSync(p)
  } catch {}
}

class Fail extends Error {}
class NotApplicable extends Error {}
function fail(msg) {
  throw new Fail(msg)
}
function na(reason) {
  throw new NotApplicable(reason)
}
function check(cond, msg) {
  if (!cond) fail(msg)
}
function eq(actual, expected, what) {
  if (actual !== expected) fail(`${what}: expected ${fmt(expected)}, got ${fmt(actual)}`)
}
function fmt(v) {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'bigint') return `${v}n`
  return String(v)
}
/** Describes an error the way failure messages quote it: Class code 'message'. */
function errStr(e) {
  if (!(e instanceof Error) && !(e && typeof e === 'object')) return `non-error ${fmt(e)}`
  const msg = String(e.message ?? '').split('\n')[0].slice(0, 120)
  return `${e.constructor?.name ?? 'Object'}${e.code !== undefined ? ` ${e.code}` : ' (no code)'} '${msg}'`
}
/** Runs fn, which must throw an instance of ctor with exactly `code`; returns the error. */
function throwsCode(fn, code, ctor, what) {
  let r
  try {
    r = fn()
  } catch (e) {
    if (e instanceof Fail) throw e
    if (e?.code !== code || (ctor && !(e instanceof ctor))) {
      fail(`${what}: expected ${ctor ? ctor.name + ' ' : ''}${code}, got ${errStr(e)}`)
    }
    return e
  }
  const d = describeValue(r)
  tryClose(r)
  fail(`${what}: expected ${ctor ? ctor.name + ' ' : ''}${code}, but it returned ${d}`)
}
/** Like throwsCode, but any coded system/library error passes; returns the error (or fails). */
function throwsCoded(fn, what, { not = [] } = {}) {
  let r
  try {
    r = fn()
  } catch (e) {
    if (e instanceof Fail) throw e
    if (!(e instanceof Error) || typeof e.code !== 'string' || /^ERR_INVALID_ARG/.test(e.code) || not.includes(e.code)) {
      fail(`${what}: expected a coded Error${not.length ? ` (not ${not.join('/')})` : ''}, got ${errStr(e)}`)
    }
    return e
  }
  const d = describeValue(r)
  tryClose(r)
  fail(`${what}: expected a coded Error, but it returned ${d}`)
}
function describeValue(r) {
  if (r && typeof r === 'object' && 'length' in r && 'closed' in r) return `an open instance (length ${r.length})`
  return fmt(r)
}
function tryClose(r) {
  try {
    if (r && typeof r.close === 'function') r.close()
  } catch {}
}

// ---------------------------------------------------------------- process introspection (Linux)
/** Descriptors of process `pid` that point at /dev/shm/<name> (also once unlinked). */
function fdsTo(name, pid = 'self') {
  const want = shmPath(name)
  let n = 0
  let list = []
  try {
    list = fs.readdirSync(`/proc/${pid}/fd`)
  } catch (e) {
    throw new Error(`cannot list /proc/${pid}/fd: ${e.message}`)
  }
  for (const fd of list) {
    try {
      const l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`)
      if (l === want || l === `${want} (deleted)`) n++
    } catch {}
  }
  return n
}
/** Mappings of /dev/shm/<name> in this process (/proc/self/maps lines). */
function mapsOf(name) {
  const want = shmPath(name)
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.endsWith(' ' + want) || l.endsWith(' ' + want + ' (deleted)')).length
}

// ---------------------------------------------------------------- GC and time
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
function hasGc() {
  return typeof globalThis.gc === 'function' || typeof globalThis.Bun?.gc === 'function'
}
function gcNow() {
  if (typeof globalThis.gc === 'function') globalThis.gc()
  else if (typeof globalThis.Bun?.gc === 'function') globalThis.Bun.gc(true)
  else na('no gc() (run with --expose-gc)')
}
/** Several collections with turns of the event loop between them, so finalizers run. */
async function gcHard(rounds = 4) {
  for (let i = 0; i < rounds; i++) {
    gcNow()
    await new Promise((r) => setImmediate(r))
    await sleep(10)
  }
}
/** Polls `fn` until it returns true or `ms` pass; returns the last value of `fn`. */
async function until(fn, ms, step = 25) {
  const end = Date.now() + ms
  let v = fn()
  while (!v && Date.now() < end) {
    await sleep(step)
    if (hasGc()) gcNow()
    v = fn()
  }
  return v
}
/** Resolves with the promise's outcome, or { pending: true } after `ms`. */
function settleWithin(p, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ pending: true }), ms)
    Promise.resolve(p).then(
      (value) => {
        clearTimeout(t)
        resolve({ value })
      },
      (error) => {
        clearTimeout(t)
        resolve({ error })
      },
    )
  })
}

// ---------------------------------------------------------------- the Python peer
function py(...args) {
  return execFileSync(PYTHON, [PEER, ...args.map(String)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}
/** Starts a long-running peer command; resolves once it printed `readyWord`. */
function pyStart(args, readyWord) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [PEER, ...args.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const lines = []
    const waiters = []
    child.stdout.on('data', (d) => {
      out += d
      let i
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i).trim()
        out = out.slice(i + 1)
        lines.push(line)
        for (const w of waiters.splice(0)) w()
      }
    })
    child.stderr.on('data', (d) => (err += d))
    const api = {
      child,
      lines,
      /** Resolves when the peer printed `word` (or rejects when it exits first). */
      waitFor(word, ms = 5000) {
        return new Promise((res, rej) => {
          const end = Date.now() + ms
          const look = () => {
            if (lines.includes(word)) return res()
            if (child.exitCode !== null) return rej(new Error(`peer exited (${child.exitCode}) before '${word}': ${err.trim()}`))
            if (Date.now() > end) return rej(new Error(`peer did not print '${word}' within ${ms} ms: ${err.trim()}`))
            waiters.push(look)
            setTimeout(look, 50)
          }
          look()
        })
      },
      stop() {
        try {
          child.stdin.end()
        } catch {}
        return new Promise((res) => (child.exitCode !== null ? res() : child.on('exit', () => res())))
      },
    }
    child.on('error', reject)
    api.waitFor(readyWord).then(() => resolve(api), reject)
  })
}

// ---------------------------------------------------------------- reporting
function emit(obj) {
  process.stdout.write('@@LC ' + JSON.stringify(obj) + '\n')
}
function note(text) {
  process.stdout.write('@@NOTE ' + text + '\n')
}

module.exports = {
  ROOT, SHM_DIR, CAGED, RUNTIME, lib, uniqueName, shmPath, tmpDir, removeEntry,
  Fail, NotApplicable, fail, na, check, eq, fmt, errStr, throwsCode, throwsCoded, tryClose,
  fdsTo, mapsOf, sleep, hasGc, gcNow, gcHard, until, settleWithin, py, pyStart, emit, note,
}
