#!/usr/bin/env node
'use strict'
// Reliability and security suite runner. Every part runs in a child process, so a crash is
// reported with its signal name and a hang is killed by a timeout and reported as a failure.
//   node reliability/run.js            quick mode (CI): smaller counts, both zero-copy and copy mode
//   node reliability/run.js --full     issue counts: 10,000 fuzz cases per entry point and mode,
//                                      100k open/close + 10k unclosed, 1M increments, 1M handoffs
//   --only=fuzz,leaks,concurrency,checks,channel,valgrind   run some sections   --runs=N  fuzz cases
//   --seed=N  fixed fast-check seed    --json=FILE  also write the records as JSON
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ROOT, runChild, describeExit, tail } = require('./lib')
const { skip, hasTool, isRoot } = require('../scripts/skip.cjs')

const argv = process.argv.slice(2)
const opt = (k) => argv.find((a) => a.startsWith(`--${k}=`))?.split('=').slice(1).join('=')
const FULL = argv.includes('--full') || process.env.RELIABILITY_FULL === '1'
const only = opt('only')?.split(',')
const want = (s) => !only || only.includes(s)
const C = FULL
  ? { runs: 10000, openClose: 100000, unclosed: 10000, counter: 1000000, handoffs: 1000000 }
  : { runs: 1000, openClose: 5000, unclosed: 1000, counter: 1000000, handoffs: 100000 }
if (opt('runs')) C.runs = Number(opt('runs'))
const seed = opt('seed')
const MODES = [['zero-copy', {}], ['copy', { NODE_SHARED_MEM_FORCE_COPY: '1' }]]
const ENTRIES = ['constructor', 'create', 'unlink', 'copyFrom', 'copyTo', 'copyFromRead', 'copyToRead', 'atomicLoad',
  'atomicStore', 'atomicAdd', 'atomicCompareExchange', 'atomicsRead', 'wait', 'waitAsync', 'notify', 'closed', 'raw']

const outcomes = [] // { section, name, mode, ok, figure, detail }
const records = []
function record(section, name, mode, ok, figure, detail) {
  outcomes.push({ section, name, mode, ok, figure, detail })
  const line = `${ok ? 'ok  ' : 'FAIL'} ${section} ${name}${mode ? ' [' + mode + ']' : ''}: ${figure}`
  console.log(line)
  if (!ok && detail) console.log('     ' + detail.split('\n').join('\n     '))
}
/** Turns a child's end into a result: a record of its own, or a crash/timeout. */
function judge(r, section, name, mode, figureOf) {
  const rec = r.results.at(-1)
  if (rec) records.push({ section, name, mode, ...rec })
  const clean = !r.signal && !r.timedOut
  if (!rec || !clean) {
    return record(section, name, mode, false, describeExit(r), `no result record; ${describeExit(r)}\n${tail(r.stderr || r.stdout)}`)
  }
  const ok = clean && r.code === 0 && !rec.failure && rec.ok !== false
  record(section, name, mode, ok, figureOf(rec), rec.failure ?? (rec.ok === false ? rec.detail : r.code !== 0 ? `exit ${r.code}: ${tail(r.stderr)}` : null))
}
async function pool(tasks, width) {
  const queue = [...tasks]
  await Promise.all(Array.from({ length: width }, async () => { while (queue.length) await queue.shift()() }))
}

async function main() {
  const t0 = Date.now()
  const nodeFile = fs.readdirSync(ROOT).find((f) => f.endsWith('.node'))
  if (!nodeFile) { console.error('no built addon (.node) in the repo root: run `npm run build` first'); process.exit(1) }
  console.log(`reliability suite, ${FULL ? 'FULL' : 'quick'} mode, node ${process.version}, addon ${nodeFile}`)

  if (want('fuzz')) {
    const tasks = []
    for (const [mode, env] of MODES) for (const entry of ENTRIES) {
      tasks.push(async () => {
        const args = [entry, String(C.runs)]
        if (seed) args.push(seed)
        const r = await runChild(path.join(__dirname, 'fuzz.js'), args, { env, timeoutMs: FULL ? 600000 : 120000 })
        judge(r, 'fuzz', entry, mode, (x) => `${x.cases} cases, ${x.succeeded} succeeded, ${Object.values(x.codes).reduce((a, b) => a + b, 0)} coded errors (${Object.keys(x.codes).length} codes), ${x.ms} ms`)
      })
    }
    await pool(tasks, 2)
  }

  if (want('checks')) {
    const list = [
      ['peer-unlink-while-mapped', 'zero-copy'], ['peer-unlink-while-mapped', 'copy'], ['peer-shrink-caged', 'copy'],
      ['limit-zero-copy-shrink-sigbus', 'zero-copy'], ['caged-atomics-shrink-guarded', 'copy'],
      ['perm-default-mode', 'zero-copy'], ['perm-exclusive-squatter', 'zero-copy'], ['perm-read-instance', 'zero-copy'],
      ['perm-read-instance', 'copy'], ['perm-eacces-unprivileged', 'zero-copy'],
      ['bug-caged-huge-length-aborts', 'copy'], ['bug-failed-create-leaves-segment', 'zero-copy'],
    ]
    for (const [name, mode] of list) {
      // Opening as another user (setpriv to `nobody`) needs root; npm test never uses sudo.
      if (name === 'perm-eacces-unprivileged' && !(isRoot() && hasTool('setpriv'))) {
        if (!skip(`check ${name}`, isRoot() ? 'setpriv' : 'root (setpriv to another user)')) record('check', name, mode, false, 'skipped (CI=true)', null)
        continue
      }
      const env = mode === 'copy' ? { NODE_SHARED_MEM_FORCE_COPY: '1' } : {}
      const r = await runChild(path.join(__dirname, 'checks.js'), [name], { env, timeoutMs: 120000 })
      judge(r, 'check', name, mode, (x) => x.detail)
    }
  }

  if (want('leaks')) {
    for (const [mode, env] of MODES) {
      const r = await runChild(path.join(__dirname, 'leaks.js'), [String(C.openClose), String(C.unclosed)], { env, nodeArgs: ['--expose-gc'], timeoutMs: 600000 })
      judge(r, 'leaks', `${C.openClose} open/close + ${C.unclosed} unclosed`, mode, (x) =>
        `fds ${x.baseline.fds}→${x.afterOpenClose.fds}→${x.whileHeld.fds}→${x.afterGc.fds}, segment maps ${x.baseline.shmMaps}→${x.afterOpenClose.shmMaps}→${x.whileHeld.shmMaps}→${x.afterGc.shmMaps}, ` +
        `maps ${x.baseline.maps}→${x.afterGc.maps}, RSS ${x.baseline.rssMiB}→${x.afterOpenClose.rssMiB}→${x.whileHeld.rssMiB}→${x.afterGc.rssMiB} MiB, ${x.perOpenCloseUs} µs/open+close`)
    }
  }

  if (want('concurrency')) {
    for (const [mode, env] of MODES) {
      const r = await runChild(path.join(__dirname, 'concurrency.js'), ['counter', String(C.counter), '8'], { env, timeoutMs: 300000 })
      judge(r, 'concurrency', `8 procs × counter`, mode, (x) => `${x.via}: ${x.sum} / ${x.total} in ${x.ms} ms`)
    }
    for (const [mode, env] of MODES) {
      const r = await runChild(path.join(__dirname, 'concurrency.js'), ['handoff', String(C.handoffs)], { env, timeoutMs: FULL ? 900000 : 180000 })
      judge(r, 'concurrency', `wait/notify handoffs`, mode, (x) => `${x.final} / ${x.handoffs} handoffs, no lost wakeup, ${x.ms} ms (${x.usPerHandoff} µs each)`)
    }
  }

  if (want('channel')) {
    // The channel's hostile-peer fuzzer (reliability/channel-hostile.js): Node, Rust and Python
    // peers churn while this suite writes garbage into the segment; both modes inside the child.
    const rounds = FULL ? 12 : 2
    const args = [`--rounds=${rounds}`, '--seconds=3', ...(seed ? [`--seed=${seed}`] : [])]
    const r = await runChild(path.join(__dirname, 'channel-hostile.js'), args, { timeoutMs: (rounds * 2 * 3 * 25 + 120) * 1000 })
    const oks = (r.stdout.match(/^ok {2}/gm) || []).length
    const fails = (r.stdout.match(/^FAIL/gm) || []).length
    const seedLine = /seed (\d+)/.exec(r.stdout)?.[1]
    const ok = !r.signal && !r.timedOut && r.code === 0 && fails === 0 && oks > 0
    record('channel', 'hostile-peer fuzzer', null, ok, `${oks} peer runs held, ${fails} failed (seed ${seedLine ?? '?'})`,
      ok ? null : `${describeExit(r)}\n${tail(r.stdout + r.stderr)}`)
  }

  if (want('valgrind')) await valgrind()

  // ---- summary ----
  const passed = outcomes.filter((o) => o.ok).length
  const failed = outcomes.length - passed
  const secs = ((Date.now() - t0) / 1000).toFixed(1)
  console.log(`\n## Reliability summary (${FULL ? 'full' : 'quick'} mode, ${secs} s, node ${process.version}, ${process.platform}-${process.arch})\n`)
  console.log('| section | check | mode | result | figures |')
  console.log('| --- | --- | --- | --- | --- |')
  for (const o of outcomes) console.log(`| ${o.section} | ${o.name} | ${o.mode ?? ''} | ${o.ok ? 'pass' : '**FAIL**'} | ${String(o.figure).replace(/\|/g, '\\|')} |`)
  const fuzzCases = records.filter((r) => r.kind === 'fuzz').reduce((a, r) => a + r.cases, 0)
  if (fuzzCases) console.log(`\nfast-check: ${fuzzCases} generated cases in total over ${ENTRIES.length} entry points × 2 modes`)
  if (opt('json')) fs.writeFileSync(opt('json'), JSON.stringify({ full: FULL, outcomes, records }, null, 1))
  console.log(`\n${passed} passed, ${failed} failed`)
  process.exitCode = failed ? 1 : 0
}

async function valgrind() {
  if (!hasTool('valgrind')) {
    if (!skip('reliability memcheck (valgrind)', 'valgrind')) record('memcheck', 'valgrind', null, false, 'skipped (CI=true)', null)
    return
  }
  // 1) The core crate's tests (every test binary: the unit tests and each integration test),
  //    built once, run under memcheck.
  const build = spawnSync('cargo', ['test', '-p', 'shm-core', '--no-run', '--message-format=json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 })
  const exes = build.stdout.split('\n').map((l) => { try { return JSON.parse(l) } catch { return null } })
    .filter((j) => j && j.executable && j.profile && j.profile.test).map((j) => j.executable)
  if (!exes.length) return record('memcheck', 'cargo test -p shm-core', null, false, 'could not build the test binaries', tail(build.stderr))
  const vg = ['-q', '--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite', '--show-possibly-lost=no']
  let passed = 0
  let ms = 0
  let bad = null
  for (const exe of exes) {
    const run = await runChild(null, [], { cmd: 'valgrind', cmdArgs: [...vg, exe, '--test-threads=2'], timeoutMs: 600000 })
    const counts = /test result: ok\. (\d+) passed; (\d+) failed/.exec(run.stdout)
    ms += run.ms
    if (run.code !== 0 || !counts) { bad = { exe, run }; break }
    passed += Number(counts[1])
  }
  record('memcheck', 'cargo test -p shm-core', null, !bad, !bad
    ? `${passed} tests in ${exes.length} binaries passed under memcheck, 0 errors, no definite leaks (${Math.round(ms / 1000)} s)`
    : `${path.basename(bad.exe)}: ${describeExit(bad.run)}`, bad ? tail(bad.run.stderr + bad.run.stdout, 3000) : null)
  let r
  // 2) A tiny Node smoke under memcheck. The suppression file hides only V8's conservative stack
  //    scan (it reads uninitialised stack slots on purpose); see node-v8.supp.
  r = await runChild(null, [], {
    cmd: 'valgrind',
    cmdArgs: ['--error-exitcode=99', `--suppressions=${path.join(__dirname, 'node-v8.supp')}`, process.execPath, '--expose-gc', path.join(__dirname, 'valgrind-smoke.js')],
    timeoutMs: 600000,
  })
  const summary = /ERROR SUMMARY: (\d+) errors from (\d+) contexts \(suppressed: (\d+) from (\d+)\)/.exec(r.stderr)
  const ok = r.code === 0 && r.stdout.includes('smoke ok') && summary && summary[1] === '0'
  record('memcheck', 'node smoke (every entry point)', null, ok, summary
    ? `${summary[1]} errors (${summary[3]} suppressed V8 stack-scan reports from ${summary[4]} context), ${Math.round(r.ms / 1000)} s` : describeExit(r),
    ok ? null : tail(r.stderr, 4000))
}

main().catch((e) => { console.error(e); process.exit(1) })
