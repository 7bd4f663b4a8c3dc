'use strict'
// Named scenario checks, each run in its own child process by run.js:
//   node reliability/checks.js <check>
// A check prints one @@RESULT record ({ ok, figures, detail }) and exits 0 when it holds.
// Checks named `bug-…` assert the behaviour we want where the addon currently misbehaves.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync, spawnSync } = require('node:child_process')
const { SharedMemory, MemoryAccess } = require('..')
const { ROOT, uniqueName, shmPath, readSeg, writeSeg, report } = require('./lib')

const FORCED = process.env.NODE_SHARED_MEM_FORCE_COPY === '1'
const PEER = path.join(ROOT, '__test__', 'helpers', 'peer.py')
const PY = process.env.PYTHON ?? 'python3'
const peer = (...a) => execFileSync(PY, [PEER, ...a.map(String)], { encoding: 'utf8' }).trim()

function assert(cond, msg) { if (!cond) throw new Error(msg) }
function expectThrow(fn, code, what) {
  try { fn() } catch (e) {
    assert(e && e.code === code, `${what}: expected ${code}, got ${e && e.constructor.name} ${e && e.code}: ${e && e.message}`)
    return e
  }
  throw new Error(`${what}: expected ${code}, but it succeeded`)
}
const cleanup = []
process.on('exit', () => { for (const n of cleanup) try { fs.unlinkSync(shmPath(n)) } catch {} })

const checks = {}

// ---- peers misbehaving ----
checks['peer-unlink-while-mapped'] = () => {
  const data = Buffer.from('still here after the peer unlinked the name')
  const name = uniqueName('pu'); cleanup.push(name)
  peer('create', name, 4096, 100, data.toString('hex'))
  const m = new SharedMemory(name)
  peer('unlink', name)
  assert(!fs.existsSync(shmPath(name)), 'peer unlink did not remove the name')
  if (m.requiresCopy) m.copyFrom()
  assert(Buffer.from(m.buffer, 100, data.length).equals(data), 'data not readable after peer unlink')
  m.atomicStore(0, 1234)
  assert(m.atomicLoad(0) === 1234, 'atomics broken after unlink')
  expectThrow(() => new SharedMemory(name), 'ENOENT', 'reopen after unlink')
  m.close()
  return { mode: FORCED ? 'copy' : 'zero-copy', detail: 'data readable, atomics work, reopen → ENOENT' }
}

checks['peer-shrink-caged'] = () => {
  assert(FORCED, 'run with NODE_SHARED_MEM_FORCE_COPY=1')
  const name = uniqueName('ps'); cleanup.push(name)
  const pattern = Buffer.alloc(65536, 0xab)
  peer('create', name, 65536, 0, pattern.subarray(0, 8192).toString('hex'))
  const m = new SharedMemory(name)
  assert(m.requiresCopy, 'not caged')
  // The peer shrinks the segment to one page.
  execFileSync(PY, ['-c', `import os; os.truncate('/dev/shm/${name}', 4096)`])
  const e1 = expectThrow(() => m.copyFrom(), 'ERR_SHM_SHRUNK', 'copyFrom() of the whole range')
  expectThrow(() => m.copyFrom(8192, 0, 16), 'ERR_SHM_SHRUNK', 'copyFrom past the new end')
  expectThrow(() => m.copyTo(0, 4000, 200), 'ERR_SHM_SHRUNK', 'copyTo straddling the new end')
  m.copyFrom(0, 0, 4096) // inside the new size: fine
  assert(Buffer.from(m.buffer, 0, 4096).equals(pattern.subarray(0, 4096)), 'copyFrom inside the new size copied wrong bytes')
  Buffer.from(m.buffer).fill(0x11, 0, 4096)
  m.copyTo(0, 0, 4096)
  assert(readSeg(name, 0, 4096).equals(Buffer.alloc(4096, 0x11)), 'copyTo inside the new size wrong')
  assert(fs.statSync(shmPath(name)).size === 4096, 'copyTo must not regrow the segment')
  m.close()
  return { detail: `ERR_SHM_SHRUNK (${e1.message.slice(0, 60)}…); in-range copies still work` }
}

// Documented limits: prove the process dies of SIGBUS (run in a grandchild) rather than pretend.
function sigbusChild(body) {
  const name = uniqueName('sb'); cleanup.push(name)
  peer('create', name, 65536)
  const script = `const {SharedMemory}=require(${JSON.stringify(ROOT)});const m=new SharedMemory(${JSON.stringify(name)});` +
    `require('child_process').execFileSync(${JSON.stringify(PY)},['-c',"import os; os.truncate('/dev/shm/${name}', 4096)"]);` +
    `${body};console.log('survived')`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: process.env, timeout: 30000 })
  return r
}
checks['limit-zero-copy-shrink-sigbus'] = () => {
  assert(!FORCED, 'zero-copy only')
  const r = sigbusChild('const v=new Uint8Array(m.buffer); console.log(v[4096+100])')
  assert(r.signal === 'SIGBUS', `expected the zero-copy read past the shrunk end to die of SIGBUS, got signal ${r.signal} status ${r.status}: ${r.stdout}${r.stderr}`)
  return { detail: 'read of buffer past the shrunk end → SIGBUS (documented limit)' }
}
// Caged atomics, wait and notify past a shrunk end: ERR_SHM_SHRUNK, no SIGBUS (the fault guard,
// crates/shm-core/src/fault.rs). In a grandchild, so that a SIGBUS would show as its signal.
checks['caged-atomics-shrink-guarded'] = () => {
  assert(FORCED, 'copy mode only')
  const codes = "const c=(f)=>{try{f();return 'none'}catch(e){return e.code}};" +
    "console.log(JSON.stringify([c(()=>m.atomicLoad(8192)),c(()=>m.atomicStore(8192,1)),c(()=>m.atomicAdd(60000,1))," +
    "c(()=>m.atomicCompareExchange(4096,0,1)),c(()=>m.wait(8192,0,10)),c(()=>m.notify(8192)),m.atomicLoad(4092)]))"
  const r = sigbusChild(codes)
  assert(r.signal === null && r.status === 0, `expected the caged atomics past the shrunk end to throw, got signal ${r.signal} status ${r.status}: ${r.stdout}${r.stderr}`)
  const got = JSON.parse(r.stdout.split('\n')[0])
  const want = ['ERR_SHM_SHRUNK', 'ERR_SHM_SHRUNK', 'ERR_SHM_SHRUNK', 'ERR_SHM_SHRUNK', 'ERR_SHM_SHRUNK', 'ERR_SHM_SHRUNK', 0]
  assert(JSON.stringify(got) === JSON.stringify(want), `expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`)
  assert(r.stdout.includes('survived'), 'the process did not go on after the guarded calls')
  return { detail: 'caged atomicLoad/Store/Add/CompareExchange, wait, notify past the shrunk end → ERR_SHM_SHRUNK ×6; the word before the end still reads; no signal' }
}

// ---- permissions ----
checks['perm-default-mode'] = () => {
  const old = process.umask(0)
  try {
    const rows = []
    for (const [opts, want] of [[undefined, 0o600], [{}, 0o600], [{ mode: 0o644 }, 0o644], [{ mode: 0o666 }, 0o666], [{ mode: 0 }, 0]]) {
      const name = uniqueName('pm'); cleanup.push(name)
      const m = SharedMemory.create(name, 4096, opts)
      const mode = fs.statSync(shmPath(name)).mode & 0o7777
      assert(mode === want, `create(${JSON.stringify(opts)}) gave mode ${mode.toString(8)}, want ${want.toString(8)}`)
      rows.push(`${JSON.stringify(opts) ?? 'default'}→${mode.toString(8).padStart(4, '0')}`)
      m.close(); SharedMemory.unlink(name)
    }
    process.umask(0o077)
    const name = uniqueName('pm'); cleanup.push(name)
    SharedMemory.create(name, 64, { mode: 0o666 }).close()
    const mode = fs.statSync(shmPath(name)).mode & 0o7777
    assert(mode === 0o600, `umask 077 must filter 0666 to 0600, got ${mode.toString(8)}`)
    rows.push(`0666 & umask 077→${mode.toString(8).padStart(4, '0')}`)
    return { detail: rows.join(', ') }
  } finally { process.umask(old) }
}

checks['perm-exclusive-squatter'] = () => {
  const name = uniqueName('sq'); cleanup.push(name)
  const secret = Buffer.from('squatter-bytes')
  // The squatter creates the name first, world-writable, with bait content.
  peer('create', name, 128, 0, secret.toString('hex'))
  fs.chmodSync(shmPath(name), 0o666)
  expectThrow(() => SharedMemory.create(name, 128), 'EEXIST', 'create() default exclusive')
  expectThrow(() => SharedMemory.create(name, 128, { exclusive: true }), 'EEXIST', 'create(exclusive: true)')
  expectThrow(() => SharedMemory.create('/' + name, 64, { exclusive: true, mode: 0o600 }), 'EEXIST', 'create("/"+name)')
  const st = fs.statSync(shmPath(name))
  assert(st.size === 128 && (st.mode & 0o777) === 0o666, 'squatter segment changed')
  assert(readSeg(name, 0, secret.length).equals(secret), 'squatter bytes changed')
  return { detail: 'EEXIST ×3, squatter segment untouched' }
}

checks['perm-read-instance'] = () => {
  const name = uniqueName('ro'); cleanup.push(name)
  const w = SharedMemory.create(name, 8192)
  const init = Buffer.alloc(8192); require('node:crypto').randomFillSync(init); writeSeg(name, 0, init)
  const r = new SharedMemory(name, undefined, MemoryAccess.READ)
  assert(r.access === MemoryAccess.READ, 'access getter')
  if (r.requiresCopy) r.copyFrom()
  const codes = []
  for (const [what, fn] of [
    ['copyTo()', () => r.copyTo()], ['copyTo(0,0,1)', () => r.copyTo(0, 0, 1)], ['copyTo(0,0,0)', () => r.copyTo(0, 0, 0)],
    ['atomicStore', () => r.atomicStore(0, 7)], ['atomicAdd', () => r.atomicAdd(4, 1)], ['atomicCompareExchange', () => r.atomicCompareExchange(0, init.readInt32LE(0), 9)],
  ]) codes.push(expectThrow(fn, 'EACCES', what).code)
  // Writes into `buffer` stay local (copy-on-write view, or the caged copy).
  const v = new Uint8Array(r.buffer)
  v.fill(0x5a, 0, 5000)
  new Int32Array(r.buffer)[1000] = 42
  Atomics.add(new Int32Array(r.buffer), 10, 3)
  // Calls that do not write are allowed and must not write either.
  r.atomicLoad(0); r.notify(0); r.wait(0, init.readInt32LE(0) ^ 1, 0); r.copyFrom(0, 0, 16)
  assert(readSeg(name, 0, 8192).equals(init), 'a READ instance changed the segment')
  if (!w.requiresCopy) assert(Buffer.from(w.buffer).equals(init), 'the writer sees changes made through a READ instance')
  // A READ instance still sees the peers' writes on pages it did not write.
  w.atomicStore(8188, 77)
  assert(r.atomicLoad(8188) === 77, 'READ instance does not see writer updates')
  r.close(); w.close()
  return { detail: `EACCES for ${codes.length} writing calls; buffer writes stayed local`, mode: FORCED ? 'copy' : 'zero-copy' }
}

checks['perm-eacces-unprivileged'] = () => {
  // We run as root, which bypasses permission checks: open as `nobody` from a copy of the addon
  // in a world-readable temp dir (so that user can load it whatever the repo's permissions are).
  const uid = process.getuid()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsm-rel-perm-'))
  fs.chmodSync(dir, 0o755)
  try {
    const nodeFile = fs.readdirSync(ROOT).find((f) => f.endsWith('.node'))
    // The package as `require(dir)` loads it: package.json (main), the facade in dist/, the
    // generated loader and the addon.
    const dist = fs.existsSync(path.join(ROOT, 'dist')) ? fs.readdirSync(path.join(ROOT, 'dist')).filter((f) => f.endsWith('.js')).map((f) => `dist/${f}`) : []
    fs.mkdirSync(path.join(dir, 'dist'), { mode: 0o755 })
    for (const f of ['package.json', 'index.js', nodeFile, ...dist]) { fs.copyFileSync(path.join(ROOT, f), path.join(dir, f)); fs.chmodSync(path.join(dir, f), 0o755) }
    const priv = uniqueName('priv'); cleanup.push(priv)
    const pub = uniqueName('pub'); cleanup.push(pub)
    const oldMask = process.umask(0)
    SharedMemory.create(priv, 64).close()
    SharedMemory.create(pub, 64, { mode: 0o644 }).close()
    process.umask(oldMask)
    const script = `const {SharedMemory}=require(${JSON.stringify(dir)});const out={uid:process.getuid()};
      const t=(k,f)=>{try{const m=f();out[k]='ok';m.close()}catch(e){out[k]=[e.code,e.errno,e.syscall,e.path].join('|')}};
      t('privWrite',()=>new SharedMemory(${JSON.stringify(priv)}));
      t('privRead',()=>new SharedMemory(${JSON.stringify(priv)},undefined,0));
      t('pubRead',()=>new SharedMemory(${JSON.stringify(pub)},undefined,0));
      t('pubWrite',()=>new SharedMemory(${JSON.stringify(pub)}));
      try{out.unlink=String(SharedMemory.unlink(${JSON.stringify(priv)}))}catch(e){out.unlink=e.code}
      console.log(JSON.stringify(out))`
    // Switching users needs root: as root, setpriv directly; otherwise through passwordless
    // sudo (GitHub's runners). Without either the check fails, saying so.
    const setpriv = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script]
    const asUser = uid === 0 ? [setpriv[0], setpriv.slice(1)] : ['sudo', ['-n', ...setpriv]]
    const r = spawnSync(asUser[0], asUser[1], { encoding: 'utf8', cwd: dir, timeout: 30000 })
    assert(r.status === 0, `opener (as nobody; needs root or passwordless sudo) failed: ${r.signal ?? r.status} ${r.stderr}`)
    const out = JSON.parse(r.stdout)
    assert(out.uid !== 0, 'opener still runs as root')
    assert(out.privWrite === 'EACCES|-13|shm_open|' + priv, `privWrite: ${out.privWrite}`)
    assert(out.privRead === 'EACCES|-13|shm_open|' + priv, `privRead: ${out.privRead}`)
    assert(out.pubRead === 'ok', `pubRead: ${out.pubRead}`)
    assert(out.pubWrite.startsWith('EACCES|-13|shm_open'), `pubWrite: ${out.pubWrite}`)
    assert(out.unlink === 'EACCES' || out.unlink === 'EPERM', `unlink by another user must fail, got ${out.unlink}`)
    assert(fs.existsSync(shmPath(priv)), 'segment removed by another user')
    return { detail: `as uid ${out.uid}: 0600 → ${out.privWrite.split('|')[0]} (write) / ${out.privRead.split('|')[0]} (read); 0644 → read ok, write ${out.pubWrite.split('|')[0]}; unlink → ${out.unlink}` }
  } finally { fs.rmSync(dir, { recursive: true, force: true }) }
}

// ---- bugs found by this suite (assert the behaviour we want) ----
checks['bug-caged-huge-length-aborts'] = () => {
  // In caged mode, a valid but huge length (1 TiB: tmpfs creates it sparse) must throw a coded
  // error, not abort the process in v8::ArrayBuffer::New. Run in a grandchild to see the signal.
  const name = uniqueName('huge'); cleanup.push(name)
  const script = `const {SharedMemory}=require(${JSON.stringify(ROOT)});
    try{SharedMemory.create(${JSON.stringify(name)},2**40);console.log('created')}catch(e){console.log('threw '+e.code)}`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, NODE_SHARED_MEM_FORCE_COPY: '1' }, timeout: 60000 })
  assert(!r.signal && r.status === 0 && /^threw [A-Z_]+/.test(r.stdout.trim()),
    `SharedMemory.create(name, 2**40) in caged mode: ${r.signal ? 'process killed by ' + r.signal : 'status ' + r.status}; ` +
    `stdout ${JSON.stringify(r.stdout.trim())}; stderr ${JSON.stringify(r.stderr.split('\n').find((l) => l.includes('FATAL')) ?? r.stderr.slice(0, 200))}`)
  return { detail: r.stdout.trim() }
}
checks['bug-failed-create-leaves-segment'] = () => {
  // A create that fails after the OS made the segment (mmap ENOMEM, ArrayBuffer too large)
  // must remove it again, as it already does when ftruncate fails; else a retry gets EEXIST.
  const found = []
  for (const len of [2 ** 53 - 1, 2 ** 32 + 1]) {
    if (FORCED && len < 2 ** 40) continue // caged 4 GiB really allocates and copies 4 GiB
    const name = uniqueName('fc'); cleanup.push(name)
    let code = 'none'
    try { SharedMemory.create(name, len).close(); code = 'created' } catch (e) { code = e.code }
    if (code !== 'created' && fs.existsSync(shmPath(name))) found.push(`create(name, ${len}) threw ${code} but left the segment behind`)
  }
  assert(found.length === 0, found.join('; '))
  return { detail: 'no segment left behind' }
}

const which = process.argv[2]
if (!checks[which]) { console.error('unknown check; known: ' + Object.keys(checks).join(' ')); process.exit(2) }
try {
  const out = checks[which]() ?? {}
  report({ kind: 'check', check: which, ok: true, ...out })
} catch (e) {
  report({ kind: 'check', check: which, ok: false, detail: String(e.message) })
  process.exitCode = 1
}
