#!/usr/bin/env node
// npm run test:flaky — the flakiness check (not part of `npm test`): every property-based and
// timing-sensitive ava test, run many times in both modes with a fresh seed each run, while
// another process keeps one CPU busy (this machine class has two). Prints one row per test and
// mode: runs, failures, and for each failure its seed and the tail of its output.
//
//   node scripts/test-flaky.mjs                      # 200 runs of each, both modes, CPU busy
//   node scripts/test-flaky.mjs --runs 20 --only model --modes caged --no-busy
//   node scripts/test-flaky.mjs --list
//   node scripts/test-flaky.mjs --minutes 90   # stop after the round that passes 90 minutes
//
// Needs a built addon (`npm run build`). Each run is its own `ava` process (fresh seeds: the
// property tests draw theirs from Date.now() unless FC_SEED is set, and print it on failure).
// The result is reported in docs/reliability.md ("Flakiness").
import { spawn, spawnSync } from 'node:child_process'
import { availableParallelism, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** [id, spec file, ava --match pattern] — keep in step with the specs' titles. */
export const TESTS = [
  ['model', '__test__/channel.spec.ts', 'model:*'],
  ['stress', '__test__/channel.spec.ts', '8 producer processes*'],
  ['recovery', '__test__/channel.spec.ts', 'kill -9 between claim and commit*'],
  ['async', '__test__/channel.spec.ts', 'sendAsync waits for room*'],
  ['wait', '__test__/wait.spec.ts', '*'],
  ['gc', '__test__/gc.spec.ts', '*'],
]

function parse(argv) {
  const o = { runs: 200, only: null, modes: ['zero-copy', 'caged'], busy: true, list: false, timeoutS: 180, minutes: 0 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--runs') o.runs = Number(argv[++i])
    else if (a === '--only') o.only = argv[++i].split(',')
    else if (a === '--modes') o.modes = argv[++i].split(',')
    else if (a === '--no-busy') o.busy = false
    else if (a === '--timeout') o.timeoutS = Number(argv[++i])
    else if (a === '--list') o.list = true
    else if (a === '--minutes') o.minutes = Number(argv[++i])
    else throw new Error(`unknown argument ${a}`)
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs must be a positive integer')
  for (const m of o.modes) if (m !== 'zero-copy' && m !== 'caged') throw new Error(`unknown mode ${m}`)
  return o
}

// The busy loop checks that its parent is still there, so it ends even when this runner is killed
// with SIGKILL (before, a SIGTERM'd runner left `node -e for(;;){}` spinning under init forever).
const BUSY = 'const p = process.ppid; for (;;) { for (let i = 0; i < 5e7; i++); if (process.ppid !== p) process.exit() }'
let current = null // the ava child of the run in progress

function runOnce(file, match, mode, timeoutS) {
  return new Promise((resolve) => {
    const env = { ...process.env }
    delete env.FC_SEED
    if (mode === 'caged') env.NODE_SHARED_MEM_FORCE_COPY = '1'
    else delete env.NODE_SHARED_MEM_FORCE_COPY
    const args = [join(root, 'node_modules/ava/entrypoints/cli.mjs'), file, '--match', match, '--timeout', '2m']
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    current = child
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const t0 = Date.now()
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000)
    child.on('close', (code, signal) => {
      clearTimeout(killer)
      const ms = Date.now() - t0
      const ran = /(\d+) tests? passed/.exec(out)
      resolve({ ok: code === 0 && ran !== null, code, signal, ms, out })
    })
  })
}

async function main() {
  const o = parse(process.argv.slice(2))
  const tests = TESTS.filter(([id]) => !o.only || o.only.includes(id))
  if (o.list) {
    for (const [id, f, m] of TESTS) console.log(`${id.padEnd(9)} ${f} --match '${m}'`)
    return
  }
  let busy = null
  if (o.busy) busy = spawn(process.execPath, ['-e', BUSY], { stdio: 'ignore' })
  const node = spawnSync(process.execPath, ['--version'], { encoding: 'utf8' }).stdout.trim()
  console.log(`test:flaky: ${o.runs} runs × ${tests.length} tests × ${o.modes.join('+')}; node ${node}; ` +
    `${availableParallelism()} CPUs; other CPU busy: ${o.busy}; load at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  // Round-robin: run i of every test and mode before run i + 1 of any, so a run stopped early
  // (SIGINT/SIGTERM, or --minutes) still reports every row with about the same count.
  const cells = []
  for (const [id, file, match] of tests) {
    for (const mode of o.modes) cells.push({ id, file, match, mode, runs: 0, fails: 0, total: 0, slowest: 0, notes: [] })
  }
  const t0 = Date.now()
  let stopped = null
  const report = () => {
    const rows = cells.map((c) => `| ${c.id} | ${c.mode} | ${c.runs} | ${c.fails} | ${c.runs ? (c.total / c.runs / 1000).toFixed(1) : '—'} s | ` +
      `${(c.slowest / 1000).toFixed(1)} s | ${c.notes.join('; ') || '—'} |`)
    console.log(`\n| test | mode | runs | failed | mean | slowest | failures |\n|---|---|---|---|---|---|---|\n${rows.join('\n')}`)
    console.log(`load at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}; wall ${((Date.now() - t0) / 60000).toFixed(1)} min${stopped ? `; stopped early (${stopped})` : ''}`)
    const runs = cells.reduce((a, c) => a + c.runs, 0)
    const failures = cells.reduce((a, c) => a + c.fails, 0)
    console.log(`flaky: ${runs - failures} passed, ${failures} failed`)
    return failures
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      busy?.kill('SIGKILL')
      current?.kill('SIGKILL')
      stopped = sig
      report()
      process.exit(2)
    })
  }
  try {
    for (let i = 1; i <= o.runs && !stopped; i++) {
      if (o.minutes && Date.now() - t0 > o.minutes * 60000) {
        stopped = `--minutes ${o.minutes}`
        break
      }
      for (const c of cells) {
        const r = await runOnce(c.file, c.match, c.mode, o.timeoutS)
        c.runs++
        c.total += r.ms
        c.slowest = Math.max(c.slowest, r.ms)
        if (!r.ok) {
          c.fails++
          const seed = /seed[^0-9-]*(-?\d+)/i.exec(r.out)
          c.notes.push(`run ${i}: exit ${r.code ?? r.signal}${seed ? `, seed ${seed[1]}` : ''}`)
          console.log(`--- ${c.id} ${c.mode} run ${i} FAILED (exit ${r.code ?? r.signal}, ${r.ms} ms)\n${r.out.split('\n').slice(-40).join('\n')}`)
        }
      }
      if (i % 10 === 0 || i === o.runs) {
        const f = cells.reduce((a, c) => a + c.fails, 0)
        console.log(`  round ${i}/${o.runs}: ${f} failed so far; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
      }
    }
  } finally {
    busy?.kill('SIGKILL')
  }
  process.exitCode = report() ? 1 : 0
}

main().catch((e) => {
  console.error(e)
  process.exit(2)
})
