#!/usr/bin/env node
// Runs scripts/runtime-smoke.mjs on Node 22, 24, 26, Bun and Deno (each installed on demand
// from npm by get-runtime.mjs into .runtimes/), in zero-copy and in forced-copy (caged) mode,
// plus the Node running this script as a baseline. Prints a table runtime × mode × result and
// exits 1 if any run that should pass failed.
//
//   npm run test:runtimes                     # all
//   node scripts/test-runtimes.mjs bun deno   # some (names: host node22 node24 node26 bun deno)
//
// Needs the addon built (npm run build) and python3 (the foreign peer).
// Also records whether each runtime exports the experimental Node-API function
// node_api_create_external_sharedarraybuffer (which `sharedBuffer` needs) and checks that
// `sharedBuffer` is a SharedArrayBuffer in zero-copy mode exactly where it does.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, openSync, readSync, closeSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { getRuntime } from './get-runtime.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SMOKE = join(ROOT, 'scripts', 'runtime-smoke.mjs')

// Deno loads Node-API addons only with --allow-ffi; the generated loader reads files
// (--allow-read) and environment variables (--allow-env); the smoke starts python3 and a
// child of itself (--allow-run). Nothing else (no --allow-all, no --allow-sys).
export const DENO_FLAGS = ['run', '--allow-read', '--allow-ffi', '--allow-env', '--allow-run']

const ALL = ['host', 'node22', 'node24', 'node26', 'bun', 'deno']

// Runtimes (or runtime+mode) that cannot work, with the reason: reported as "known
// limitation", not as a failure. Empty: every runtime passed both modes when this was written.
// Shape: { deno: { modes: ['zero-copy'], reason: '…' } }
const KNOWN_LIMITATIONS = {}

const names = process.argv.slice(2).length ? process.argv.slice(2) : ALL
for (const n of names) {
  if (!ALL.includes(n)) {
    console.error(`unknown runtime '${n}' (known: ${ALL.join(', ')})`)
    process.exit(2)
  }
}

if (!existsSync(join(ROOT, 'index.js'))) {
  console.error('index.js missing: run `npm run build` first')
  process.exit(2)
}

/** Whether the executable exports the symbol (`nm -D`; versioned names such as Bun's
 *  `name@@BUN_1.2` count), else a byte scan; 'unknown' if neither works. */
function exportsSymbol(path, symbol) {
  const nm = spawnSync('nm', ['-D', '--defined-only', path], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
  if (!nm.error && nm.status === 0) {
    return nm.stdout.split('\n').some((l) => l.trim().split(/\s+/).pop().replace(/@.*$/, '') === symbol) ? 'yes' : 'no'
  }
  // Fallback: look for the name anywhere in the file (may say yes for a mere mention).
  try {
    const fd = openSync(path, 'r')
    const size = statSync(path).size
    const chunk = Buffer.alloc(8 * 1024 * 1024)
    const needle = Buffer.from(symbol)
    let pos = 0
    let carry = Buffer.alloc(0)
    try {
      while (pos < size) {
        const n = readSync(fd, chunk, 0, chunk.length, pos)
        if (n <= 0) break
        const buf = Buffer.concat([carry, chunk.subarray(0, n)])
        if (buf.includes(needle)) return 'yes (by name)'
        carry = buf.subarray(Math.max(0, buf.length - needle.length))
        pos += n
      }
    } finally {
      closeSync(fd)
    }
    return 'no (by name)'
  } catch {
    return 'unknown'
  }
}

function run(cmd, args, env, timeoutMs) {
  return new Promise((resolveP) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => {
      out += `\n[test-runtimes] timed out after ${timeoutMs} ms, killing\n`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (e) => {
      clearTimeout(timer)
      resolveP({ code: -1, out: out + String(e) })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolveP({ code: code ?? signal, out })
    })
  })
}

const rows = []
for (const name of names) {
  let exe
  let version
  try {
    if (name === 'host') {
      exe = process.execPath
      version = process.version
    } else {
      const r = getRuntime(name)
      exe = r.path
      version = r.version
    }
  } catch (e) {
    const known = KNOWN_LIMITATIONS[name]
    rows.push({ name, version: '-', mode: '-', result: known ? 'known limitation' : 'FAIL', note: known?.reason ?? `install: ${e.message}` })
    continue
  }
  version = version.replace(/^deno /, '').replace(/ \(.*$/, '')
  const symbol = exportsSymbol(exe, 'node_api_create_external_sharedarraybuffer')
  const prefix = name === 'deno' ? DENO_FLAGS : []
  for (const wanted of ['zero-copy', 'caged']) {
    const env = { ...process.env, NO_COLOR: '1', SMOKE_CHILD_ARGS: JSON.stringify(prefix) }
    delete env.NODE_SHARED_MEM_FORCE_COPY
    if (wanted === 'caged') env.NODE_SHARED_MEM_FORCE_COPY = '1'
    const t0 = Date.now()
    const { code, out } = await run(exe, [...prefix, SMOKE], env, 180_000)
    const ms = Date.now() - t0
    const mode = /^mode: (.*)$/m.exec(out)?.[1] ?? '?'
    const shared = /^sharedBuffer: (.*)$/m.exec(out)?.[1] ?? '?'
    const counts = /^(\d+) passed, (\d+) failed$/m.exec(out)
    const problems = []
    if (code !== 0) problems.push(`exit ${code}`)
    if (!counts) problems.push('no summary line')
    if (mode !== wanted) problems.push(`ran ${mode}, expected ${wanted}`)
    // sharedBuffer must be a SharedArrayBuffer in zero-copy mode exactly where the symbol exists.
    if (wanted === 'zero-copy' && (symbol === 'yes' || symbol === 'no')) {
      const isSab = shared === 'SharedArrayBuffer'
      if (isSab !== (symbol === 'yes')) problems.push(`sharedBuffer is '${shared}' but symbol exported: ${symbol}`)
    }
    if (wanted === 'caged' && shared === 'SharedArrayBuffer') problems.push('sharedBuffer is a SharedArrayBuffer in caged mode')
    const known = KNOWN_LIMITATIONS[name]
    const isKnown = known && (!known.modes || known.modes.includes(wanted))
    let result = problems.length ? 'FAIL' : 'pass'
    if (result === 'FAIL' && isKnown) result = 'known limitation'
    const note = problems.length ? (isKnown ? known.reason : problems.join('; ')) : isKnown ? 'listed as known limitation but passed: update the list' : ''
    rows.push({
      name: name === 'host' ? `node (host)` : name,
      version,
      mode: wanted,
      ran: mode,
      checks: counts ? `${counts[1]}/${Number(counts[1]) + Number(counts[2])}` : '-',
      symbol,
      shared,
      result,
      note,
      ms,
    })
    console.log(`[test-runtimes] ${name} ${version} ${wanted}: ${result} (${counts ? counts[0] : 'no summary'}, ${ms} ms)`)
    if (result !== 'pass') {
      // Show what went wrong: the failing lines, or the whole output if it crashed.
      const lines = out.split('\n')
      const bad = lines.filter((l) => l.startsWith('FAIL'))
      console.log((bad.length ? bad : lines.slice(-40)).map((l) => `    ${l}`).join('\n'))
    }
  }
}

// ---------------------------------------------------------------- table
const cols = [
  ['runtime', (r) => r.name],
  ['version', (r) => r.version],
  ['mode asked', (r) => r.mode],
  ['ran as', (r) => r.ran ?? '-'],
  ['checks', (r) => r.checks ?? '-'],
  ['ext. SAB symbol', (r) => r.symbol ?? '-'],
  ['sharedBuffer', (r) => (r.shared ?? '-').replace(/ \(.*/, '')],
  ['result', (r) => r.result],
]
const widths = cols.map(([h, f]) => Math.max(h.length, ...rows.map((r) => String(f(r)).length)))
const line = (cells) => '| ' + cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |'
console.log('')
console.log(line(cols.map(([h]) => h)))
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|')
for (const r of rows) console.log(line(cols.map(([, f]) => f(r))))
for (const r of rows) if (r.note) console.log(`  ${r.name} ${r.mode}: ${r.note}`)

mkdirSync(join(ROOT, '.runtimes'), { recursive: true })
writeFileSync(join(ROOT, '.runtimes', 'results.json'), JSON.stringify(rows, null, 2) + '\n')

const failedRuns = rows.filter((r) => r.result === 'FAIL').length
const passedRuns = rows.filter((r) => r.result === 'pass').length
const knownRuns = rows.filter((r) => r.result === 'known limitation').length
console.log('')
console.log(`runtimes: ${passedRuns} passed, ${failedRuns} failed${knownRuns ? `, ${knownRuns} skipped` : ''}`)
process.exit(failedRuns ? 1 : 0)
