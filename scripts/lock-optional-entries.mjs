#!/usr/bin/env node
// Gives every per-platform optional dependency a package-lock.json entry, so `npm ci` accepts the
// lockfile on any machine.
//
// Why: `npm install` leaves an optional dependency out of the lockfile when the registry cannot
// serve it: our own npm/<target> packages before they are first published (and again for each new
// version until it is published), and, on registries that mirror only some platforms, napi-rs
// tools' platform packages (@napi-rs/lzma-*, @napi-rs/tar-*, @napi-rs/wasm-tools-*). `npm ci` then
// refuses the lockfile ("Missing: … from lock file") on every machine. An entry with `version`,
// `optional`, `os`, `cpu` (and `libc`) is what npm itself would write, minus `resolved`/`integrity`:
// `npm ci` skips it where the platform does not match and fetches `name@version` where it does
// (a failed optional fetch is not an error). `npm install` keeps such entries.
//
// os/cpu/libc come from npm/<target>/package.json for this package's own targets, otherwise from
// the napi-rs platform suffix of the name (e.g. -darwin-arm64, -linux-x64-musl, -win32-ia32-msvc).
// Usage (under the team's npm lock): node scripts/lock-optional-entries.mjs [--check]
//   --check: change nothing, exit 1 if entries are missing (for CI).
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const CHECK = process.argv.includes('--check')
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const lockPath = path.join(ROOT, 'package-lock.json')
const lock = JSON.parse(fs.readFileSync(lockPath, 'utf8'))
const packages = lock.packages

const CPUS = { x64: 'x64', ia32: 'ia32', arm64: 'arm64', arm: 'arm', riscv64: 'riscv64', ppc64: 'ppc64', s390x: 's390x', loong64: 'loong64', wasm32: 'wasm32' }
const OSES = ['android', 'darwin', 'freebsd', 'linux', 'win32', 'openharmony']

/** os/cpu/libc of a napi-rs platform package, from its name's suffix; null if it has none. */
function platformOf(name) {
  if (pkg.optionalDependencies?.[name] && name.startsWith(`${pkg.name}-`)) {
    const dir = path.join(ROOT, 'npm', name.slice(pkg.name.length + 1), 'package.json')
    if (fs.existsSync(dir)) {
      const m = JSON.parse(fs.readFileSync(dir, 'utf8'))
      return { os: m.os, cpu: m.cpu, ...(m.libc ? { libc: m.libc } : {}), license: m.license, engines: m.engines }
    }
  }
  const base = name.split('/').pop()
  if (/-wasm32-wasi(p1)?(-threads)?$/.test(base)) return { cpu: ['wasm32'] }
  const parts = base.split('-')
  for (let i = parts.length - 1; i > 0; i--) {
    if (!OSES.includes(parts[i])) continue
    const cpu = CPUS[parts[i + 1]]
    if (!cpu) return null
    const abi = parts.slice(i + 2).join('-')
    const libc = parts[i] === 'linux' ? (abi.startsWith('musl') ? ['musl'] : abi.startsWith('gnu') ? ['glibc'] : undefined) : undefined
    return { os: [parts[i]], cpu: [cpu], ...(libc ? { libc } : {}) }
  }
  return null
}

/** The lockfile key a dependency `name` of the package at `from` resolves to (node's lookup). */
function resolveKey(from, name) {
  let dir = from
  for (;;) {
    const key = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`
    if (packages[key]) return key
    if (!dir) return null
    const idx = dir.lastIndexOf('/node_modules/')
    dir = idx === -1 ? '' : dir.slice(0, idx)
  }
}

const added = []
const unknown = []
for (const [from, entry] of Object.entries(packages)) {
  if (entry.link) continue
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    if (resolveKey(from, name)) continue
    const platform = platformOf(name)
    if (!platform) {
      unknown.push(`${name}@${version} (optional dependency of ${from || 'the root'})`)
      continue
    }
    const key = packages[`node_modules/${name}`] ? `${from}/node_modules/${name}` : `node_modules/${name}`
    packages[key] = { version, ...(entry.dev ? { dev: true } : {}), optional: true, ...platform }
    added.push(`${key}@${version}`)
  }
}

if (unknown.length) {
  console.error(`[lock-optional] no platform known for:\n  ${unknown.join('\n  ')}`)
  process.exit(1)
}
if (CHECK) {
  if (added.length) {
    console.error(`[lock-optional] ${added.length} optional dependencies lack a lockfile entry (npm ci will refuse the lockfile):\n  ${added.join('\n  ')}\nrun: node scripts/lock-optional-entries.mjs`)
    process.exit(1)
  }
  console.log('[lock-optional] every optional dependency has a lockfile entry')
  process.exit(0)
}
if (added.length) {
  const sorted = {}
  for (const k of Object.keys(packages).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0))) sorted[k] = packages[k]
  lock.packages = sorted
  fs.writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n')
}
console.log(`[lock-optional] added ${added.length} entries${added.length ? ':\n  ' + added.join('\n  ') : ''}`)
