#!/usr/bin/env node
// `npm run mutants`: plants known bugs in the binding, one at a time, and reports which ones
// the JS suites miss.
//
// Each mutant is a precise search/replace in one source file (Rust or TypeScript). The script
// copies the committed HEAD (or, with --worktree, the working tree) to a scratch directory once, checks that the unmutated copy builds and passes, then for each
// mutant: applies it, builds the scratch copy (its own CARGO_TARGET_DIR), runs the suites the
// mutant lists in order until one fails (KILLED) or all pass (SURVIVED), and restores the file.
//   STALE     the search text is not in the file exactly once (the code moved: update the list)
//   UNVIABLE  the mutant does not build (no information: rewrite it)
// Nothing in the repository itself is modified.
//
//   node scripts/mutants.mjs [--only=id,id] [--keep] [--scratch=DIR] [--json=FILE] [--no-baseline] [--worktree]
//     [--all-suites]   run every suite of a mutant even after one failed (shows which suites kill it)
//     [--check]        only check that every search text is in HEAD exactly once (no build)
//     [--skip-spec=a,b] leave __test__/a.spec.ts, b.spec.ts out of the ava runs
// Exit code 0 when no mutant survived and none is stale or unviable, else 1.
import { spawnSync, execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
const opt = (k) => argv.find((a) => a.startsWith(`--${k}=`))?.split('=').slice(1).join('=')
const only = opt('only')?.split(',')
const SCRATCH = opt('scratch') ?? path.join(os.tmpdir(), `nsm-mutants-${process.pid}`)
const TARGET = process.env.MUTANTS_TARGET_DIR ?? path.join(ROOT, 'target', 'mutants')
const log = (s) => process.stderr.write(s + '\n')
const LOGS = path.join(os.tmpdir(), 'nsm-mutants-logs') // full output of each killing suite
fs.mkdirSync(LOGS, { recursive: true })

// ---- suites -------------------------------------------------------------------------------
// Each: [command, args, extra env, timeout ms]. Run from the scratch copy.
const COPY = { NODE_SHARED_MEM_FORCE_COPY: '1' }
// --skip-spec=a,b leaves __test__/a.spec.ts and b.spec.ts out of the ava runs (say why where the
// result is quoted); every other spec file runs.
const skipSpecs = opt('skip-spec')?.split(',') ?? []
const avaArgs = () =>
  skipSpecs.length
    ? fs.readdirSync(path.join(SCRATCH, '__test__')).filter((f) => f.endsWith('.spec.ts') && !skipSpecs.includes(f.replace(/\.spec\.ts$/, ''))).map((f) => `__test__/${f}`)
    : []
const SUITES = {
  ava: ['npx', ['ava'], {}, 15 * 60_000],
  'ava:copy': ['npx', ['ava'], COPY, 15 * 60_000],
  electron: [process.execPath, ['__test__/electron/main.js'], COPY, 2 * 60_000],
  reliability: [process.execPath, ['reliability/run.js', '--only=checks,fuzz', '--runs=300'], {}, 15 * 60_000],
  cargo: ['cargo', ['test', '-q', '-p', 'shm-core'], {}, 15 * 60_000],
  runtimes: ['npm', ['run', '-s', 'test:runtimes'], {}, 15 * 60_000],
}
const JS = ['ava', 'ava:copy', 'electron']

// ---- the planted bugs -----------------------------------------------------------------------
// id, what it breaks, file, search (must occur exactly once), replace, suites (default JS).
// The first 13 are the kinds issue 13 names; keep them current with the code.
const R = 'crates/shm-core/src/region.rs'
const U = 'crates/shm-core/src/unix.rs'
const F = 'crates/shm-core/src/futex_linux.rs'
const H = 'crates/shm-napi/src/hot.rs'
const I = 'crates/shm-napi/src/instance.rs'
const N = 'crates/shm-napi/src/lib.rs'
const T = 'src/shared-memory.ts'
const MUTANTS = [
  // -- the kinds issue 13 names --------------------------------------------------------------
  {
    id: 'notify-ignores-count',
    what: 'notify(off, count) wakes every waiter whatever count says',
    file: F,
    search: 'let woken = futex::wake(word(atomic), Flags::empty(), count)?;',
    replace: 'let _ = count;\n    let woken = futex::wake(word(atomic), Flags::empty(), i32::MAX as u32)?;',
  },
  {
    id: 'copyto-one-past',
    what: 'a caged copyTo writes one byte past its range (the next byte of buffer)',
    file: H,
    search: 'let Some(range) = at.checked_add(n).and_then(|end| bytes.get_mut(at..end)) else {',
    replace: 'let Some(range) = at.checked_add(n).and_then(|end| bytes.get_mut(at..end + usize::from(to_segment && end < bytes.len() && d + n < inst.region.len()))) else {',
    suites: ['electron', 'ava:copy', 'ava'], // the Electron spec first: it must catch this alone
  },
  {
    id: 'copyfrom-one-past',
    what: 'a caged copyFrom fills one byte past its range in buffer',
    file: H,
    search: 'let Some(range) = at.checked_add(n).and_then(|end| bytes.get_mut(at..end)) else {',
    replace: 'let Some(range) = at.checked_add(n).and_then(|end| bytes.get_mut(at..end + usize::from(!to_segment && end < bytes.len() && s + n < inst.region.len()))) else {',
    suites: ['electron', 'ava:copy', 'ava'], // the Electron spec first: it must catch this alone
  },
  {
    id: 'shrink-guard-off',
    what: 'the fault guard (ERR_SHM_SHRUNK instead of SIGBUS) recovers nothing',
    file: 'crates/shm-core/src/fault.rs',
    search: 'if (nsm_guard_start as *const () as usize..nsm_guard_end as *const () as usize).contains(&at)',
    replace: 'if false && (nsm_guard_start as *const () as usize..nsm_guard_end as *const () as usize).contains(&at)',
    suites: ['ava:copy', 'ava', 'electron', 'reliability'],
  },
  {
    id: 'read-runs-caged',
    what: 'READ instances lose the copy-on-write view and silently run caged',
    file: R,
    search: 'unsafe { segment.map_copy_on_write(Some(mapping.len() as u64)) }.ok()',
    replace: 'unsafe { segment.map_copy_on_write(Some(mapping.len() as u64)) }.ok().filter(|_| false)',
  },
  {
    id: 'sharedbuffer-null',
    what: 'sharedBuffer is always null',
    file: N,
    search: '(Some(f), Some(p)) if !instance.caged && !instance.region.is_closed() => (f, p),',
    replace: '(Some(f), Some(p)) if false && !instance.caged && !instance.region.is_closed() => (f, p),',
  },
  {
    id: 'existing-too-small-unchecked',
    what: 'create({exclusive:false}) no longer checks that the existing segment is big enough',
    file: U,
    search: 'if existing < len {',
    replace: 'if false && existing < len {',
  },
  {
    id: 'existing-too-small-grows',
    what: 'create({exclusive:false}) grows a too-small existing segment instead of refusing',
    file: U,
    search: `            if existing < len {
                return Err(Error::ExistingTooSmall {
                    requested: len,
                    size: existing,
                });
            }`,
    replace: `            if existing < len {
                rustix::fs::ftruncate(&segment.fd, len).map_err(os_err("ftruncate"))?;
            }`,
  },
  {
    id: 'forced-copy-ignored',
    what: 'NODE_SHARED_MEM_FORCE_COPY=1 no longer forces caged mode (requiresCopy stays false)',
    file: I,
    search: '    if force_copy() {\n        return sys::Status::napi_no_external_buffers_allowed;',
    replace: '    if false && force_copy() {\n        return sys::Status::napi_no_external_buffers_allowed;',
  },
  // -- more of the same families ------------------------------------------------------------
  {
    id: 'notify-count-zero',
    what: 'notify() reports 0 woken whatever it woke',
    file: F,
    search: 'let woken = futex::wake(word(atomic), Flags::empty(), count)?;',
    replace: 'let woken = futex::wake(word(atomic), Flags::empty(), count)? * 0;',
  },
  {
    id: 'notify-count-dropped-in-js',
    what: 'the JS facade passes Infinity as notify count',
    file: T,
    search: 'return native.notify(handle, off, checkCount(count))',
    replace: 'return native.notify(handle, off, (checkCount(count), Infinity))',
  },
  {
    id: 'read-cow-shared',
    what: 'the READ view is mapped MAP_SHARED instead of MAP_PRIVATE',
    file: U,
    search: `            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,`,
    replace: `            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,`,
  },
  {
    id: 'read-atomics-on-cow-view',
    what: "a READ instance's zero-copy atomics read its private copy-on-write view, not the segment",
    file: R,
    // READ atomics run natively since issue 17 (no JS view over a read-only mapping).
    search: 'AtomicI32::from_ptr(self.ptr.as_ptr().add(byte_offset).cast())',
    replace: 'AtomicI32::from_ptr(self.js_ptr.unwrap_or(self.ptr).as_ptr().add(byte_offset).cast())',
  },
  {
    id: 'caged-copyfrom-noop',
    what: 'a caged copyFrom does nothing',
    file: T,
    search: 'if (this.#caged) native.copyFrom(handle, s, d, n)',
    replace: 'if (false) native.copyFrom(handle, s, d, n)',
  },
  {
    id: 'copyto-readonly-allowed',
    what: 'copyTo on a READ instance is allowed in zero-copy mode (no EACCES)',
    file: T,
    search: "if (this.#access === MemoryAccess.READ) throw readOnly('copyTo', this.#name as string)",
    replace: "if (this.#access === MemoryAccess.READ && this.#caged) throw readOnly('copyTo', this.#name as string)",
  },
  {
    id: 'range-length-one-more',
    what: 'copyFrom accepts a length one byte longer than fits',
    file: T,
    search: "const n = length === undefined ? rest : checkIndex(length, 'length', rest)\n    if (this.#caged) native.copyFrom(",
    replace: "const n = length === undefined ? rest : checkIndex(length, 'length', rest + 1)\n    if (this.#caged) native.copyFrom(",
  },
  {
    id: 'close-keeps-buffer',
    what: 'close() leaves buffer attached (and unmaps under it)',
    file: H,
    search: 'let released = inst.made.detach_all(env);',
    replace: 'let released = true;',
  },
  // -- issue 17 ------------------------------------------------------------------------------
  {
    id: 'caged-copy-unchecked-index',
    what: 'the caged-copy bound check replaced by an unchecked index',
    file: H,
    search: 'let Some(range) = at.checked_add(n).and_then(|end| bytes.get_mut(at..end)) else {',
    replace: 'let Some(range) = at.checked_add(n).map(|end| unsafe { bytes.get_unchecked_mut(at..end) }) else {',
  },
  {
    id: 'wait-timeout-tenfold',
    what: 'the wait timeout converted with / 100 instead of / 1000 (waits 10x too long)',
    file: H,
    search: 'Duration::try_from_secs_f64(ms / 1000.0)',
    replace: 'Duration::try_from_secs_f64(ms / 100.0)',
  },
  {
    id: 'close-detaches-foreign',
    what: 'close(handle, buffer) detaches the buffer JavaScript passes',
    file: H,
    search: '    let [h] = unsafe { args::<1>(env, info) };\n    let Some(inst) = instance::unwrap(env, h) else {\n        return bad_call(env, "close");',
    replace: '    let [h, b] = unsafe { args::<2>(env, info) };\n    instance::detach(env, b);\n    let Some(inst) = instance::unwrap(env, h) else {\n        return bad_call(env, "close");',
  },
  {
    id: 'read-atomics-view',
    what: 'a READ instance gets a JS atomics view over its PROT_READ mapping',
    file: H,
    search: '        || inst.access == Access::ReadOnly\n',
    replace: '',
  },
  {
    id: 'mode-setuid-allowed',
    what: 'create() accepts setuid/setgid/sticky bits in options.mode',
    file: N,
    search: 'args::int_arg(env, mode, "options.mode", 0.0, 0o777 as f64)',
    replace: 'args::int_arg(env, mode, "options.mode", 0.0, 0o7777 as f64)',
  },
  {
    id: 'atomics-index-wraps',
    what: 'the zero-copy atomics index wraps at 2^31 (off >> 2)',
    file: T,
    search: 'atomicsLoad(v, off / 4)',
    replace: 'atomicsLoad(v, off >> 2)',
  },
  {
    id: 'atomics-uncaptured',
    what: 'the zero-copy atomics call the global Atomics.store (patchable) instead of the captured one',
    file: T,
    search: 'atomicsStore(v, off / 4, x)',
    replace: 'Atomics.store(v, off / 4, x)',
  },
]

// ---- helpers ------------------------------------------------------------------------------
function run(cmd, args, { env = {}, timeout, cwd = SCRATCH } = {}) {
  const t0 = Date.now()
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, CARGO_TARGET_DIR: TARGET, ...env },
    encoding: 'utf8',
    timeout,
    maxBuffer: 64 * 1024 * 1024,
  })
  const out = (r.stdout ?? '') + (r.stderr ?? '')
  return { ok: r.status === 0, status: r.status, signal: r.signal, timedOut: r.error?.code === 'ETIMEDOUT', out, seconds: (Date.now() - t0) / 1000 }
}
const tail = (s, n = 12) => s.trim().split('\n').slice(-n).join('\n')

function makeScratch() {
  fs.rmSync(SCRATCH, { recursive: true, force: true })
  fs.mkdirSync(SCRATCH, { recursive: true })
  if (argv.includes('--worktree')) {
    // The working tree as it is (tracked + untracked-but-not-ignored files).
    const files = execFileSync('git', ['-C', ROOT, 'ls-files', '-co', '--exclude-standard', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean)
    for (const f of files) {
      const src = path.join(ROOT, f)
      if (!fs.existsSync(src)) continue // deleted in the working tree
      fs.mkdirSync(path.dirname(path.join(SCRATCH, f)), { recursive: true })
      fs.copyFileSync(src, path.join(SCRATCH, f))
    }
  } else {
    // The committed HEAD (other people's edits in progress stay out of it).
    execFileSync('sh', ['-c', `git -C "${ROOT}" archive HEAD | tar -x -C "${SCRATCH}"`])
  }
  for (const link of ['node_modules', '.runtimes', '.bench']) {
    if (fs.existsSync(path.join(ROOT, link))) fs.symlinkSync(path.join(ROOT, link), path.join(SCRATCH, link))
  }
  log(`mutants: scratch copy of ${argv.includes('--worktree') ? 'the working tree' : 'HEAD'} in ${SCRATCH}; CARGO_TARGET_DIR=${TARGET}`)
}

function build() {
  return run('npm', ['run', '-s', 'build'], { timeout: 20 * 60_000 })
}

function runSuites(names, all = false) {
  const failures = []
  for (const name of names) {
    const [cmd, baseArgs, env, timeout] = SUITES[name]
    const args = name.startsWith('ava') ? [...baseArgs, ...avaArgs()] : baseArgs
    const r = run(cmd, args, { env, timeout })
    if (!r.ok) {
      const why = r.timedOut ? `hung (killed after ${timeout / 1000} s)` : r.signal ? `died of ${r.signal}` : `exit ${r.status}`
      failures.push({ failedBy: name, why, out: r.out, seconds: r.seconds })
      if (!all) break
      log(`   ${name}: FAILS (${why})`)
      continue
    }
    log(`   ${name}: pass (${r.seconds.toFixed(0)} s)`)
  }
  if (!failures.length) return null
  return { ...failures[0], failedBy: failures.map((f) => f.failedBy).join(', '), out: failures.map((f) => f.out).join('\n') }
}

// ---- main ---------------------------------------------------------------------------------
const mutants = MUTANTS.filter((m) => !only || only.includes(m.id))
if (only && mutants.length !== only.length) {
  console.error(`unknown mutant id(s): ${only.filter((i) => !MUTANTS.some((m) => m.id === i)).join(', ')}`)
  process.exit(2)
}
if (argv.includes('--check')) {
  // Dry run: is every search text in HEAD exactly once?
  let stale = 0
  for (const m of mutants) {
    const text = execFileSync('git', ['-C', ROOT, 'show', `HEAD:${m.file}`], { encoding: 'utf8' })
    const hits = text.split(m.search).length - 1
    if (hits !== 1) stale++
    console.log(`${hits === 1 ? 'ok   ' : 'STALE'} ${m.id} (${hits} matches in ${m.file})`)
  }
  process.exit(stale ? 1 : 0)
}
makeScratch()
const started = new Date().toISOString()
const git = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
const dirty = argv.includes('--worktree') && execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== ''

if (!argv.includes('--no-baseline')) {
  log('mutants: baseline (no mutant): build + every suite any mutant uses')
  const b = build()
  if (!b.ok) {
    console.error(`baseline build failed:\n${tail(b.out, 30)}`)
    process.exit(1)
  }
  const wanted = [...new Set(mutants.flatMap((m) => m.suites ?? JS))]
  const f = runSuites(wanted)
  if (f) {
    console.error(`baseline: suite ${f.failedBy} fails without any mutant (${f.why}); fix that first:\n${tail(f.out, 40)}`)
    process.exit(1)
  }
}

const results = []
for (const m of mutants) {
  const file = path.join(SCRATCH, m.file)
  const original = fs.readFileSync(file, 'utf8')
  const hits = original.split(m.search).length - 1
  if (hits !== 1) {
    results.push({ ...m, verdict: 'STALE', detail: `search text found ${hits} times in ${m.file}` })
    log(`mutant ${m.id}: STALE (${hits} matches)`)
    continue
  }
  log(`mutant ${m.id}: ${m.what}`)
  fs.writeFileSync(file, original.replace(m.search, m.replace))
  try {
    const b = build()
    if (!b.ok) {
      results.push({ ...m, verdict: 'UNVIABLE', detail: tail(b.out, 8) })
      log(`   UNVIABLE (does not build)`)
      continue
    }
    const f = runSuites(m.suites ?? JS, argv.includes('--all-suites'))
    if (f) {
      const failing = [
        ...[...f.out.matchAll(/^\s*✘ (.*)$/gm)].map((x) => x[1].trim()),
        ...[...f.out.matchAll(/^\[electron-spec\] FAILED: .*?(?:\n\s+|: )(.+)$/gm)].map((x) => `electron spec: ${x[1].trim()}`),
        ...[...f.out.matchAll(/^(?:FAIL .*|\s+message: '(.*)')$/gm)].map((x) => (x[1] ?? x[0]).trim()),
      ]
      const detail = failing.length ? failing.slice(0, 4).join(' | ') : tail(f.out, 3).replace(/\n/g, ' | ')
      const logFile = path.join(LOGS, `${m.id}.log`)
      fs.writeFileSync(logFile, f.out)
      results.push({ ...m, verdict: 'KILLED', by: f.failedBy, why: f.why, detail, log: logFile })
      log(`   KILLED by ${f.failedBy} (${f.why}): ${detail}`)
    } else {
      results.push({ ...m, verdict: 'SURVIVED' })
      log(`   SURVIVED`)
    }
  } finally {
    fs.writeFileSync(file, original)
  }
}
// Leave the scratch build unmutated (a later --no-baseline run reuses it).
if (results.some((r) => r.verdict !== 'STALE')) build()

const lines = []
lines.push(`binding mutants — git ${git}${dirty ? ' + uncommitted changes' : ''}, ${started}, node ${process.version}${skipSpecs.length ? `, ava without ${skipSpecs.join(', ')}.spec.ts` : ''}`)
for (const r of results) {
  const verdict = r.verdict === 'KILLED' ? `KILLED by ${r.by}` : r.verdict
  lines.push(`${verdict.padEnd(22)} ${r.id.padEnd(30)} ${r.what}${r.verdict === 'KILLED' ? `\n${' '.repeat(23)}↳ ${r.detail}` : r.detail ? `\n${' '.repeat(23)}↳ ${r.detail}` : ''}`)
}
const count = (v) => results.filter((r) => r.verdict === v).length
lines.push(`${results.length} mutants: ${count('KILLED')} killed, ${count('SURVIVED')} survived, ${count('STALE')} stale, ${count('UNVIABLE')} unviable`)
console.log(lines.join('\n'))
if (opt('json')) fs.writeFileSync(opt('json'), JSON.stringify({ git, dirty, started, results, table: lines }, null, 2) + '\n')
if (!argv.includes('--keep')) fs.rmSync(SCRATCH, { recursive: true, force: true })
process.exitCode = count('KILLED') === results.length ? 0 : 1
