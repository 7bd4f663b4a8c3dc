#!/usr/bin/env node
// Packaging test (npm script `test:pkg`): proves the install story of the published packages.
//
//   1. builds the release binary (`npm run build`),
//   2. `npm pack`s the main package and this platform's `npm/<platform>` package (the `.node`
//      copied into a temporary staging copy of that directory, as `napi artifacts` would),
//   3. installs both tarballs into a fresh temporary project with `npm install --offline` and an
//      empty npm cache (so nothing can come from the registry), with a `PATH` holding no
//      `cargo`/`rustc`,
//   4. there, `require`s AND `import`s `node-shared-mem`, checks the binding was loaded from the
//      installed per-platform package, and runs a smoke check against a segment held by a foreign
//      process (the Python peer): read its bytes, write bytes, read them back from Python, plus the
//      caged (forced-copy) sub-range path and a TypeScript compile against the installed typings.
//
// Any failure throws: the script exits 1 with the reason. Temp dirs and the segment are removed.
// Flags: --skip-build (use the .node already in the checkout), --keep (keep the temp dir).
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const PEER = path.join(ROOT, '__test__', 'helpers', 'peer.py')
const args = new Set(process.argv.slice(2))
const IS_WIN = process.platform === 'win32'

function log(msg) {
  console.log(`[test:pkg] ${msg}`)
}

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg)
}

/** Runs a command synchronously; throws with its output when it fails. */
function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts })
  if (r.error) throw new Failure(`${cmd} ${argv.join(' ')}: ${r.error.message}`)
  if (r.status !== 0) {
    throw new Failure(
      `${path.basename(cmd)} ${argv.join(' ')} exited ${r.status ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`,
    )
  }
  return r.stdout
}

/** npm's own CLI script, run with this node (so npm needs nothing from PATH). */
function npmCli() {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ]
  for (const c of candidates) if (c && /npm-cli\.js$/.test(c) && fs.existsSync(c)) return c
  throw new Failure(`cannot find npm-cli.js (tried ${candidates.filter(Boolean).join(', ')})`)
}
const NPM = npmCli()
const npm = (argv, opts) => run(process.execPath, [NPM, ...argv], opts)

/** First executable named `name` on the current PATH (absolute), or null. */
function which(name, pathVar = process.env.PATH ?? '') {
  const exts = IS_WIN ? ['.exe', '.cmd', '.bat', ''] : ['']
  for (const dir of pathVar.split(path.delimiter).filter(Boolean)) {
    for (const ext of exts) {
      const p = path.join(dir, name + ext)
      try {
        if (fs.statSync(p).isFile()) return p
      } catch {}
    }
  }
  return null
}

const PYTHON = process.env.PYTHON ?? which(IS_WIN ? 'python' : 'python3')
check(PYTHON, 'python3 not found (needed for the foreign peer); set PYTHON')

/** The napi platform suffix of this machine, as in npm/<suffix> and the .node file name. */
function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report?.getReport?.()
    const glibc = report?.header?.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'darwin') return `darwin-${arch}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  throw new Failure(`no npm/ package for ${platform}-${arch}`)
}

const mainPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const SUFFIX = platformSuffix()
const PLATFORM_PKG = `${mainPkg.name}-${SUFFIX}`
const BINARY = `${mainPkg.napi.binaryName}.${SUFFIX}.node`
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsm-pack-'))
let holder = null
let holderStderr = ''

/** Starts `peer.py hold NAME SIZE OFFSET HEX` and waits until it prints "ready". */
function holdSegment(name, size, offset, hex) {
  return new Promise((resolve, reject) => {
    // stderr is kept and shown only on failure: Python's resource tracker prints a harmless
    // KeyError traceback when the peer unlinks a segment it had unregistered.
    const child = spawn(PYTHON, [PEER, 'hold', name, String(size), String(offset), hex], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    child.stderr.on('data', (d) => (holderStderr += d))
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('ready')) resolve(child)
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (!out.includes('ready')) reject(new Failure(`peer hold exited early (${code}): ${out}`))
    })
  })
}

const peer = (...a) => run(PYTHON, [PEER, ...a.map(String)]).trim()

async function main() {
  log(`node ${process.version}, ${process.platform}-${process.arch}, platform package ${PLATFORM_PKG}`)

  // 1. Release build.
  if (!args.has('--skip-build')) {
    log('npm run build')
    npm(['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
  }
  const builtBinary = path.join(ROOT, BINARY)
  check(fs.existsSync(builtBinary), `${BINARY} was not built in ${ROOT}`)

  // 2. Pack the main package and the staged platform package.
  const packs = path.join(tmp, 'packs')
  fs.mkdirSync(packs)
  const packJson = (dir) => JSON.parse(npm(['pack', '--json', '--pack-destination', packs], { cwd: dir }))[0]

  const mainPack = packJson(ROOT)
  const mainFiles = mainPack.files.map((f) => f.path)
  log(`main tarball ${mainPack.filename}: ${mainPack.size} B, files: ${mainFiles.join(', ')}`)
  for (const f of ['package.json', 'index.js', 'index.d.ts', 'dist/index.js', 'dist/index.d.ts', 'dist/shared-memory.js', 'dist/native.js', ...(mainPkg.exports ? ['index.mjs'] : [])]) {
    check(mainFiles.includes(f), `main tarball lacks ${f}`)
  }
  if (fs.existsSync(path.join(ROOT, 'README.md'))) check(mainFiles.includes('README.md'), 'main tarball lacks README.md')
  else log('warning: no README.md in the checkout yet, so the main tarball has none')
  check(!mainFiles.some((f) => f.endsWith('.node')), 'main tarball must not ship a .node binary')
  check(!mainFiles.some((f) => /^(crates|target|node_modules|__test__|npm)\//.test(f)), 'main tarball ships sources/tests')

  const stage = path.join(tmp, 'stage', SUFFIX)
  fs.cpSync(path.join(ROOT, 'npm', SUFFIX), stage, { recursive: true })
  fs.copyFileSync(builtBinary, path.join(stage, BINARY))
  const platPack = packJson(stage)
  const platFiles = platPack.files.map((f) => f.path).sort()
  log(`platform tarball ${platPack.filename}: ${platPack.size} B, files: ${platFiles.join(', ')}`)
  check(platFiles.includes(BINARY), `platform tarball lacks ${BINARY}`)
  check(platPack.version === mainPkg.version, `npm/${SUFFIX} version ${platPack.version} != ${mainPkg.version}`)

  // 3. Fresh consumer project, offline install with an empty cache and no Rust toolchain on PATH.
  const proj = path.join(tmp, 'consumer')
  fs.mkdirSync(proj)
  fs.writeFileSync(
    path.join(proj, 'package.json'),
    JSON.stringify({ name: 'nsm-consumer', version: '1.0.0', private: true }, null, 2),
  )
  const bin = path.join(tmp, 'bin')
  fs.mkdirSync(bin)
  let cleanPath
  if (IS_WIN) {
    cleanPath = [path.dirname(process.execPath), path.join(process.env.SystemRoot ?? 'C:\\Windows', 'System32')].join(
      path.delimiter,
    )
  } else {
    fs.symlinkSync(process.execPath, path.join(bin, 'node'))
    cleanPath = bin
  }
  for (const tool of ['cargo', 'rustc', 'rustup', 'cc', 'gcc']) {
    const found = which(tool, cleanPath)
    check(!found, `sanitized PATH still finds ${tool} at ${found}`)
  }
  const env = { ...process.env, PATH: cleanPath, Path: cleanPath }
  for (const k of Object.keys(env)) {
    if (/^(npm_|NODE_PATH$|NAPI_RS_|CARGO|RUSTUP)/i.test(k)) delete env[k]
  }
  env.npm_config_cache = path.join(tmp, 'npm-cache')
  env.npm_config_userconfig = path.join(tmp, 'npmrc') // the machine's ~/.npmrc must not matter
  fs.writeFileSync(env.npm_config_userconfig, '')
  delete env.NODE_SHARED_MEM_FORCE_COPY

  log('npm install --offline (empty cache) of both tarballs')
  npm(
    [
      'install',
      '--offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      path.join(packs, mainPack.filename),
      path.join(packs, platPack.filename),
    ],
    { cwd: proj, env },
  )
  const lock = JSON.parse(fs.readFileSync(path.join(proj, 'package-lock.json'), 'utf8'))
  const platEntry = lock.packages[`node_modules/${PLATFORM_PKG}`]
  check(platEntry, `${PLATFORM_PKG} is not installed in the consumer`)
  check(
    String(platEntry.resolved).startsWith('file:') && platEntry.resolved.endsWith(platPack.filename),
    `${PLATFORM_PKG} resolved to ${platEntry.resolved}, not the local tarball`,
  )
  const installedMain = path.join(proj, 'node_modules', mainPkg.name)
  const packedMain = JSON.parse(fs.readFileSync(path.join(installedMain, 'package.json'), 'utf8'))
  check(
    packedMain.optionalDependencies?.[PLATFORM_PKG] === mainPkg.version,
    `packed package.json must list optionalDependencies["${PLATFORM_PKG}"] = "${mainPkg.version}", has ${JSON.stringify(packedMain.optionalDependencies)}`,
  )
  check(
    !fs.readdirSync(installedMain).some((f) => f.endsWith('.node')),
    'installed main package contains a .node (the loader must use the platform package)',
  )
  const otherPlatforms = Object.keys(lock.packages).filter(
    (k) => k.includes(`${mainPkg.name}-`) && !k.endsWith(PLATFORM_PKG),
  )
  check(otherPlatforms.length === 0, `unexpected platform packages installed: ${otherPlatforms.join(', ')}`)

  // 4. Smoke checks in the consumer against a segment held by the Python peer.
  const name = `nsm-pack-${process.pid}-${randomBytes(4).toString('hex')}`
  const size = 8192
  const seed = randomBytes(32)
  holder = await holdSegment(name, size, 64, seed.toString('hex'))
  const cjsBytes = randomBytes(16)
  const esmBytes = randomBytes(16)
  const cagedBytes = randomBytes(8)
  const expectedBinary = path.join(proj, 'node_modules', PLATFORM_PKG, BINARY)

  const nodeRun = (file, source, extraEnv = {}) => {
    fs.writeFileSync(path.join(proj, file), source)
    return run(process.execPath, [file], { cwd: proj, env: { ...env, ...extraEnv } })
  }

  const cjs = `
const assert = require('node:assert/strict')
const fs = require('node:fs')
const nsm = require('node-shared-mem')
const { SharedMemory, MemoryAccess } = nsm
assert.equal(require.resolve('node-shared-mem'), ${JSON.stringify(path.join(installedMain, 'dist', 'index.js'))})
const loaded = Object.keys(require.cache).filter((k) => k.endsWith('.node')).map((k) => fs.realpathSync(k))
assert.deepEqual(loaded, [fs.realpathSync(${JSON.stringify(expectedBinary)})], 'binding not loaded from the platform package')
assert.equal(require('node-shared-mem/index.js').__napiBindingTarget, 'native')
assert.equal(typeof SharedMemory, 'function')
assert.deepEqual({ ...MemoryAccess }, { READ: 0, WRITE: 1 })
const mem = new SharedMemory(${JSON.stringify(name)})
assert.equal(mem.length, ${size})
assert.equal(mem.requiresCopy, false)
const u8 = new Uint8Array(mem.buffer)
assert.equal(Buffer.from(u8.subarray(64, 96)).toString('hex'), ${JSON.stringify(seed.toString('hex'))})
u8.set(Buffer.from(${JSON.stringify(cjsBytes.toString('hex'))}, 'hex'), 1000)
mem.close()
assert.equal(mem.closed, true)
assert.throws(() => new SharedMemory(${JSON.stringify('nsm-none-' + randomBytes(6).toString('hex'))}), { code: 'ENOENT' })
assert.throws(() => new SharedMemory(42), { code: 'ERR_INVALID_ARG_TYPE' })
console.log('cjs ok')
`
  log(`CJS: ${nodeRun('smoke.cjs', cjs).trim()}`)
  check(peer('read', name, 1000, 16) === cjsBytes.toString('hex'), 'Python does not see the bytes written via require()')

  const esm = `
import assert from 'node:assert/strict'
import { SharedMemory, MemoryAccess } from 'node-shared-mem'
import * as ns from 'node-shared-mem'
assert.ok(Object.keys(ns).includes('SharedMemory') && Object.keys(ns).includes('MemoryAccess'), 'named exports missing: ' + Object.keys(ns))
assert.equal(ns.default.SharedMemory, SharedMemory)
{
  using mem = new SharedMemory(${JSON.stringify(name)}, 4096, MemoryAccess.WRITE)
  const u8 = new Uint8Array(mem.buffer)
  assert.equal(Buffer.from(u8.subarray(1000, 1016)).toString('hex'), ${JSON.stringify(cjsBytes.toString('hex'))})
  u8.set(Buffer.from(${JSON.stringify(esmBytes.toString('hex'))}, 'hex'), 2000)
  const ro = new SharedMemory(${JSON.stringify(name)}, 4096, MemoryAccess.READ)
  assert.equal(ro.access, MemoryAccess.READ)
  assert.throws(() => ro.atomicStore(8, 1), { code: 'EACCES' })
  ro.close()
}
console.log('esm ok')
`
  // `using` needs Node >= 24 (or a transpiler); on older Node the block scope is replaced by try/finally.
  const nodeMajor = Number(process.versions.node.split('.')[0])
  const esmSource =
    nodeMajor >= 24
      ? esm
      : esm
          .replace(`{\n  using mem =`, `{\n  const mem =`)
          .replace(`  ro.close()\n}`, `  ro.close()\n  mem[Symbol.dispose]()\n  assert.equal(mem.closed, true)\n}`)
  log(`ESM: ${nodeRun('smoke.mjs', esmSource).trim()}`)
  check(peer('read', name, 2000, 16) === esmBytes.toString('hex'), 'Python does not see the bytes written via import')

  const caged = `
import assert from 'node:assert/strict'
import { SharedMemory } from 'node-shared-mem'
const mem = new SharedMemory(${JSON.stringify(name)})
assert.equal(mem.requiresCopy, true)
const u8 = new Uint8Array(mem.buffer)
assert.equal(Buffer.from(u8.subarray(64, 96)).toString('hex'), ${JSON.stringify(seed.toString('hex'))})
u8.set(Buffer.from(${JSON.stringify(cagedBytes.toString('hex'))}, 'hex'), 3000)
u8[3008] = 0xee
mem.copyTo(3000, 3000, 8)
mem.close()
console.log('caged ok')
`
  log(`caged: ${nodeRun('caged.mjs', caged, { NODE_SHARED_MEM_FORCE_COPY: '1' }).trim()}`)
  const after = peer('read', name, 3000, 9)
  check(after === cagedBytes.toString('hex') + '00', `caged copyTo sub-range wrote ${after}`)

  // TypeScript: the installed typings resolve through the package's "types".
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  if (fs.existsSync(tsc)) {
    fs.writeFileSync(
      path.join(proj, 'types.ts'),
      `import { SharedMemory, MemoryAccess } from 'node-shared-mem'
const mem: SharedMemory = new SharedMemory('x', 16, MemoryAccess.READ)
const n: number | undefined = mem.length
const r: 'ok' | 'not-equal' | 'timed-out' = mem.wait(0, 0, 1)
// @ts-expect-error: access is a MemoryAccess, not a string
mem.access = 'rw'
export { n, r }
`,
    )
    run(
      process.execPath,
      [tsc, '--strict', '--noEmit', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext',
        '--target', 'es2022', '--lib', 'es2022,esnext.disposable', 'types.ts'],
      { cwd: proj, env },
    )
    log('TypeScript: consumer typings resolve from the installed package (tsc --strict ok)')
  } else {
    log('TypeScript: skipped (typescript not installed in the checkout)')
  }
}

let failed = false
try {
  await main()
} catch (e) {
  failed = true
  console.error(`[test:pkg] FAILED: ${e instanceof Failure ? e.message : e?.stack ?? e}`)
} finally {
  if (holder) {
    holder.stdin.end() // the peer unlinks the segment when stdin closes
    const code = await new Promise((r) => holder.once('exit', r))
    if (code !== 0 || failed) console.error(`[test:pkg] peer hold exited ${code}; its stderr:\n${holderStderr}`)
  }
  if (args.has('--keep')) log(`kept ${tmp}`)
  else fs.rmSync(tmp, { recursive: true, force: true })
}
if (failed) process.exit(1)
log('PASS')
