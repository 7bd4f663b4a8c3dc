'use strict'
// One rule for suites that need a system tool (valgrind, wine, qemu, a cross gcc, rustc-web…):
// when the tool is missing, print exactly one line
//   SKIPPED <what>: <tool> missing (see scripts/provision-ci.sh)
// and pass, so that `npm test` works for a contributor without root, on any OS. When CI=true a
// skip is a failure: CI provisions everything (scripts/provision-ci.sh) and must never lose
// coverage silently. ESM twin: scripts/skip.mjs. From a shell:
//   node scripts/skip.cjs "<what>" "<tool>"   # prints the line; exit 0 locally, 1 when CI=true
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const SEE = 'scripts/provision-ci.sh'

/** True when skips must fail the run (CI=true, as GitHub Actions and .ci/run set it). */
function strict() {
  const ci = String(process.env.CI ?? '').toLowerCase()
  return ci === 'true' || ci === '1'
}

/**
 * Reports a skipped suite. Returns true when the caller may carry on (local run), false when the
 * skip counts as a failure (CI=true); the caller then fails (or sets process.exitCode = 1).
 */
function skip(what, tool, see = SEE) {
  console.log(`SKIPPED ${what}: ${tool} missing (see ${see})`)
  if (strict()) {
    console.log(`FAIL ${what}: CI=true, where a skipped suite counts as a failure`)
    process.exitCode = 1
    return false
  }
  return true
}

/** Whether `cmd` is an executable file, given as a path or found on PATH (no process is run). */
function hasTool(cmd) {
  const isExe = (p) => {
    try {
      const st = fs.statSync(p)
      if (!st.isFile()) return false
      if (process.platform === 'win32') return true
      fs.accessSync(p, fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  }
  if (cmd.includes('/') || cmd.includes(path.sep)) return isExe(cmd)
  const exts = process.platform === 'win32' ? (process.env.PATHEXT || '.EXE;.CMD;.BAT').split(';') : ['']
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue
    for (const ext of exts) if (isExe(path.join(dir, cmd + ext))) return true
  }
  return false
}

/** Whether `cmd args…` runs and exits 0 (for tools that exist but may be broken). */
function runs(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 })
  return !r.error && r.status === 0
}

/** Whether this process runs as root (never true on Windows). */
function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

module.exports = { skip, strict, hasTool, runs, isRoot, SEE }

if (require.main === module) {
  const [what, tool] = process.argv.slice(2)
  if (!what || !tool) {
    console.error('usage: node scripts/skip.cjs "<what>" "<tool>"')
    process.exit(2)
  }
  process.exit(skip(what, tool) ? 0 : 1)
}
