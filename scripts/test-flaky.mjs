#!/usr/bin/env node
// npm run test:flaky — the flakiness check (not part of `npm test`): every property-based and
// timing-sensitive ava test, run many times in both modes with a fresh seed each run, while
// another process keeps one CPU busy (this machine class has two). Prints one row per test and
// mode: runs, failures, and for each failure its seed and the tail of its output.
//
//   node scripts/test-flaky.mjs                      # 200 runs of each, both modes, CPU busy
//   node scripts/test-flaky.mjs --runs 20 --only model --modes caged --no-busy
//   node scripts/test-flaky.mjs --list
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
  const o = { runs: 200, only: null, modes: ['zero-copy', 'caged'], busy: true, list: false, timeoutS: 180 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--runs') o.runs = Number(argv[++i])
    else if (a === '--only') o.only = argv[++i].split(',')
    else if (a === '--modes') o.modes = argv[++i].split(',')
    else if (a === '--no-busy') o.busy = false
    else if (a === '--timeout') o.timeoutS = Number(argv[++i])
    else if (a === '--list') o.list = true
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
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      busy?.kill('SIGKILL')
      current?.kill('SIGKILL')
      process.exit(2)
    })
  }
  const node = spawnSync(process.execPath, ['--version'], { encoding: 'utf8' }).stdout.trim()
  console.log(`test:flaky: ${o.runs} runs × ${tests.length} tests × ${o.modes.join('+')}; node ${node}; ` +
    `${availableParallelism()} CPUs; other CPU busy: ${o.busy}; load at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  const rows = []
  let failures = 0
  try {
    for (const [id, file, match] of tests) {
      for (const mode of o.modes) {
        let fails = 0
        let slowest = 0
        let total = 0
        const notes = []
        for (let i = 1; i <= o.runs; i++) {
          const r = await runOnce(file, match, mode, o.timeoutS)
          total += r.ms
          slowest = Math.max(slowest, r.ms)
          if (!r.ok) {
            fails++
            const seed = /seed[^0-9-]*(-?\d+)/i.exec(r.out)
            notes.push(`run ${i}: exit ${r.code ?? r.signal}${seed ? `, seed ${seed[1]}` : ''}`)
            console.log(`--- ${id} ${mode} run ${i} FAILED (exit ${r.code ?? r.signal}, ${r.ms} ms)\n${r.out.split('\n').slice(-40).join('\n')}`)
          }
          if (i % 25 === 0 || i === o.runs) {
            process.stdout.write(`  ${id} ${mode}: ${i}/${o.runs} runs, ${fails} failed\n`)
          }
        }
        failures += fails
        rows.push(`| ${id} | ${mode} | ${o.runs} | ${fails} | ${(total / o.runs / 1000).toFixed(1)} s | ${(slowest / 1000).toFixed(1)} s | ${notes.join('; ') || '—'} |`)
      }
    }
  } finally {
    busy?.kill('SIGKILL')
  }
  console.log(`\n| test | mode | runs | failed | mean | slowest | failures |\n|---|---|---|---|---|---|---|\n${rows.join('\n')}`)
  console.log(`load at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  const n = rows.length * o.runs
  console.log(`flaky: ${n - failures} passed, ${failures} failed`)
  process.exitCode = failures ? 1 : 0
}

main().catch((e) => {
  console.error(e)
  process.exit(2)
})
