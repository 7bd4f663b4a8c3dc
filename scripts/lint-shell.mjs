#!/usr/bin/env node
// npm run lint:shell — shellcheck on every shell script the repository ships: tracked files named
// *.sh, and tracked files whose first line is a sh/bash shebang (.ci/run). Warnings and errors
// fail; `info`/`style` notes are printed but pass. shellcheck missing → the one SKIPPED line
// (a failure under CI=true; scripts/provision-ci.sh installs Debian's shellcheck).
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { skip, hasTool } from './skip.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Every tracked shell script, as repository-relative paths. */
export function shellScripts() {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
    .split('\0')
    .filter(Boolean)
  return files.filter((f) => {
    if (f.endsWith('.sh')) return true
    if (/\.(m?js|cjs|ts|json|md|py|rs|c|h|toml|yml|yaml|txt|lock)$/.test(f)) return false
    try {
      const head = readFileSync(join(root, f), { encoding: 'utf8', flag: 'r' }).slice(0, 80)
      return /^#!\s*\S*\/(env\s+)?(ba)?sh\b/.test(head)
    } catch {
      return false
    }
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const scripts = shellScripts()
  if (scripts.length === 0) {
    console.error('lint:shell: no shell scripts found (git ls-files failed?)')
    process.exit(1)
  }
  if (!hasTool('shellcheck')) {
    skip(`shellcheck of ${scripts.length} shell scripts`, 'shellcheck')
  } else {
    const r = spawnSync('shellcheck', ['-x', '--severity=warning', ...scripts], { cwd: root, stdio: 'inherit' })
    if (r.status !== 0) {
      console.error(`lint:shell: shellcheck found problems (exit ${r.status})`)
      process.exit(1)
    }
    console.log(`lint:shell: ${scripts.length} shell scripts clean (${scripts.join(', ')})`)
  }
}
