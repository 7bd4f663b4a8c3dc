'use strict'
// Shared helpers for the reliability suite (plain CommonJS: no build step, runs under any Node).
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { randomBytes } = require('node:crypto')

const ROOT = path.resolve(__dirname, '..')
const SHM_DIR = '/dev/shm'

function uniqueName(tag) {
  return `nsm-rel-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`
}

/** Path of a POSIX segment in /dev/shm (Linux), for independent checks through the file system. */
function shmPath(name) {
  return path.join(SHM_DIR, name.startsWith('/') ? name.slice(1) : name)
}

/** Reads `length` bytes of a segment at `offset` through the file system (not the addon). */
function readSeg(name, offset, length) {
  const fd = fs.openSync(shmPath(name), 'r')
  try {
    const b = Buffer.alloc(length)
    const n = fs.readSync(fd, b, 0, length, offset)
    return b.subarray(0, n)
  } finally {
    fs.closeSync(fd)
  }
}

/** Writes bytes into a segment through the file system (not the addon). */
function writeSeg(name, offset, bytes) {
  const fd = fs.openSync(shmPath(name), 'r+')
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, offset)
  } finally {
    fs.closeSync(fd)
  }
}

/** Prints a result record for the parent (one line, prefixed). */
function report(obj) {
  process.stdout.write('@@RESULT ' + JSON.stringify(obj) + '\n')
}

/**
 * Runs `node [nodeArgs] script [args]` and resolves with exit code, signal, output and the
 * `@@RESULT` records it printed. A child that outlives `timeoutMs` is killed (SIGKILL) and
 * reported as timed out, so a hang fails instead of stalling the run.
 */
function runChild(script, args = [], { env = {}, nodeArgs = [], timeoutMs = 120000, cmd, cmdArgs } = {}) {
  return new Promise((resolve) => {
    const argv = cmd ? cmdArgs : [...nodeArgs, script, ...args]
    const child = spawn(cmd ?? process.execPath, argv, {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const started = process.hrtime.bigint()
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const results = stdout
        .split('\n')
        .filter((l) => l.startsWith('@@RESULT '))
        .map((l) => JSON.parse(l.slice(9)))
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      resolve({ code, signal, timedOut, stdout, stderr, results, ms })
    })
  })
}

/** One line describing how a child ended, for failure messages. */
function describeExit(r) {
  if (r.timedOut) return `timed out (killed) after ${Math.round(r.ms)} ms`
  if (r.signal) return `killed by signal ${r.signal}`
  return `exit code ${r.code}`
}

function tail(s, n = 1500) {
  return s.length > n ? '…' + s.slice(-n) : s
}

module.exports = { ROOT, SHM_DIR, uniqueName, shmPath, readSeg, writeSeg, report, runChild, describeExit, tail }
