#!/usr/bin/env node
// npm run lint:shell — shellcheck on every shell script the repository ships: tracked files named
// *.sh, and tracked files whose first line is a sh/bash/dash/ksh shebang (.ci/run, `env -S bash`);
// untracked files git does not ignore too, so a new script is checked before `git add`. Every
// finding fails, `info` and `style` included (SC2086, unquoted expansions, is `info`).
// shellcheck missing → the one SKIPPED line (a failure under CI=true; scripts/provision-ci.sh
// installs Debian's shellcheck).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { skip, hasTool } from './skip.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Every shell script in the work tree that git tracks or does not ignore, repository-relative. */
export function shellScripts() {
  let files
  try {
    files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: root,
      encoding: 'utf8',
    })
      .split('\0')
      .filter(Boolean)
  } catch {
    return [] // git's own message is on stderr (not a checkout, "dubious ownership", no git)
  }
  return [...new Set(files)].sort().filter((f) => {
    if (!existsSync(join(root, f))) return false // tracked, deleted in the work tree
    if (f.endsWith('.sh')) return true
    if (/\.(m?js|cjs|ts|json|md|py|rs|c|h|toml|yml|yaml|txt|lock)$/.test(f)) return false
    try {
      const head = readFileSync(join(root, f), { encoding: 'utf8', flag: 'r' }).slice(0, 80)
      return /^#!\s*\S*\/(env\s+(-S\s*)?)?(ba|da|k)?sh\b/.test(head)
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
    const r = spawnSync('shellcheck', ['-x', ...scripts], { cwd: root, stdio: 'inherit' })
    if (r.status !== 0) {
      console.error(`lint:shell: shellcheck found problems (exit ${r.status})`)
      process.exit(1)
    }
    console.log(`lint:shell: ${scripts.length} shell scripts clean (${scripts.join(', ')})`)
  }
}
