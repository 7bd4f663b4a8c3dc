#!/usr/bin/env node
// npm run test:provision — runs scripts/provision-ci.sh against stub dpkg-query, apt-cache,
// apt-get, id and sudo placed first on PATH, and checks its plan and its apt-get calls exactly.
// Changes nothing on the system and needs no root: the stubs record what would have happened.
//
// The stubs play the machines the script meets: a never-provisioned one (dpkg-query knows none of
// the packages and exits 1), a partly provisioned one (one package removed with its config files
// left, "deinstall ok config-files"), a package apt has no candidate for, one apt has never heard
// of (empty policy output), and apt-cache output far larger than a pipe buffer after the
// `Candidate:` line (a `| grep -q` would close the pipe early and fail under pipefail). Also: dpkg
// statuses other than installed/config-files and arch-qualified names, a German locale (apt-cache
// translates "Candidate:"), apt lists never fetched (dry-run), a mirror apt-get update cannot
// reach, and a non-root user with passwordless sudo (every apt-get call must go through sudo).
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const script = join(root, 'scripts', 'provision-ci.sh')

/** The PKGS array of provision-ci.sh, in order. */
function packages() {
  const src = readFileSync(script, 'utf8')
  const m = /^PKGS=\(\n([\s\S]*?)\n\)/m.exec(src)
  if (!m) throw new Error('PKGS=( … ) not found in provision-ci.sh')
  return m[1].split(/\s+/).filter(Boolean)
}

const STUBS = {
  // dpkg-query -W -f=FMT pkg… : "pkg <status>" for the ones in STUB_DPKG (pkg=status;…); the
  // rest are unknown: an error line each on stderr and exit 1, as the real one does.
  'dpkg-query': `#!/usr/bin/env bash
shift 2
rc=0
for p in "$@"; do
  st=""
  IFS=';' read -ra entries <<<"\${STUB_DPKG:-}"
  for e in "\${entries[@]}"; do n="\${e%%=*}"; [ "\${n%%:*}" = "$p" ] && { st="\${e#*=}"; name="$n"; }; done
  if [ -n "$st" ]; then printf '%s %s\\n' "$name" "$st"; else echo "dpkg-query: no packages found matching $p" >&2; rc=1; fi
done
exit $rc
`,
  // apt-cache policy PKG : a candidate, then ~200 KB of version table (more than a pipe holds);
  // "(none)" for names in STUB_NOCAND; nothing at all for names in STUB_UNKNOWN.
  'apt-cache': `#!/usr/bin/env bash
[ "$1" = policy ] || exit 2
# gettext: a non-C locale with German messages translates the field names
loc="\${LC_ALL:-\${LC_MESSAGES:-\${LANG:-C}}}"
I="Installed:"; C="Candidate:"
case "$loc" in C|C.*|POSIX) ;; *) case "\${LANGUAGE:-$loc}" in de*) I="Installiert:"; C="Installationskandidat:" ;; esac ;; esac
if [ $# = 1 ]; then
  echo "Package files:"; echo " 100 /var/lib/dpkg/status"; echo "     release a=now"
  [ -n "\${STUB_NOLISTS:-}" ] || echo " 500 http://deb.example/debian bookworm/main amd64 Packages"
  echo "Pinned packages:"; exit 0
fi
p="$2"
case " \${STUB_UNKNOWN:-} " in *" $p "*) exit 0 ;; esac
[ -n "\${STUB_NOLISTS:-}" ] && STUB_NOCAND="\${STUB_NOCAND:-} $p"
echo "$p:"
echo "  $I (none)"
case " \${STUB_NOCAND:-} " in *" $p "*) echo "  $C (none)"; echo "  Version table:"; exit 0 ;; esac
echo "  $C 1.2.3-4"
echo "  Version table:"
for i in $(seq 1 4000); do echo "     1.2.3-$i 500        500 http://deb.example/debian bookworm/main amd64 Packages"; done
`,
  'apt-get': `#!/usr/bin/env bash
echo "$*" >>"$STUB_LOG"
[ "$1" = update ] && [ -n "\${STUB_UPDATE_FAIL:-}" ] && { echo "E: Failed to fetch http://deb.example/debian/dists/bookworm/InRelease" >&2; exit 100; }
exit 0
`,
  id: `#!/usr/bin/env bash
[ "$1" = -u ] && { echo "\${STUB_UID:-0}"; exit 0; }
exit 1
`,
  // passwordless sudo when STUB_SUDO_OK is set: runs the command (after -n) as given
  sudo: `#!/usr/bin/env bash
echo "sudo $*" >>"$STUB_LOG"
[ -n "\${STUB_SUDO_OK:-}" ] || exit 1
[ "$1" = -n ] && shift
exec "$@"
`,
}

const dir = mkdtempSync(join(tmpdir(), 'nsm-provision-'))
const bin = join(dir, 'bin')
spawnSync('mkdir', ['-p', bin])
for (const [name, body] of Object.entries(STUBS)) {
  writeFileSync(join(bin, name), body)
  chmodSync(join(bin, name), 0o755)
}

function run(args, env) {
  const log = join(dir, `apt-${Math.random().toString(36).slice(2)}.log`)
  const r = spawnSync('bash', [script, ...args], {
    encoding: 'utf8',
    env: { PATH: `${bin}:${process.env.PATH}`, HOME: dir, STUB_LOG: log, ...env },
    timeout: 60_000,
  })
  const calls = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr, calls }
}

const PKGS = packages()
const ok = 'install ok installed'
const dpkg = (except, extra = {}) =>
  PKGS.filter((p) => !except.includes(p))
    .map((p) => `${p}=${extra[p] ?? ok}`)
    .concat(Object.entries(extra).filter(([p]) => except.includes(p)).map(([p, s]) => `${p}=${s}`))
    .join(';')

const UPDATE = 'update -qq -o APT::Update::Error-Mode=any'
let passed = 0
let failed = 0
function check(title, fn) {
  try {
    fn()
    passed++
    console.log(`ok ${title}`)
  } catch (e) {
    failed++
    console.log(`not ok ${title}\n  ${String(e.message).replace(/\n/g, '\n  ')}`)
  }
}
function eq(actual, expected, what) {
  const a = JSON.stringify(actual)
  const b = JSON.stringify(expected)
  if (a !== b) throw new Error(`${what}:\n    expected ${b}\n    actual   ${a}`)
}
function lines(text, prefix) {
  return text.split('\n').filter((l) => l.startsWith(prefix))
}
const inOrder = (names) => PKGS.filter((p) => names.includes(p))

// A partly provisioned machine: two packages absent, one removed (config files left), one of the
// absent ones has no candidate, one is unknown to apt altogether.
const absent = ['wine64', 'shellcheck', 'libunwind-14-dev', 'qemu-user']
const removed = { 'musl-tools': 'deinstall ok config-files' }
const partial = {
  STUB_DPKG: dpkg(absent, removed),
  STUB_NOCAND: 'libunwind-14-dev',
  STUB_UNKNOWN: 'qemu-user',
}
const partialPlan = inOrder(['wine64', 'shellcheck', 'musl-tools'])

check('--dry-run names exactly the missing packages apt can install, calls no apt-get, needs no root', () => {
  const r = run(['--dry-run'], { ...partial, STUB_UID: '1000' })
  eq(r.status, 0, 'exit status')
  eq(lines(r.out, '[provision-ci] would install: '), [`[provision-ci] would install: ${partialPlan.join(' ')}`], 'plan')
  eq(lines(r.out, '[provision-ci] missing: '), [`[provision-ci] missing: ${inOrder([...absent, 'musl-tools']).join(' ')}`], 'missing')
  eq(
    lines(r.err, '[provision-ci] not available from apt here: ').sort(),
    ['[provision-ci] not available from apt here: libunwind-14-dev', '[provision-ci] not available from apt here: qemu-user'],
    'unavailable',
  )
  eq(r.calls, [], 'apt-get/sudo calls')
})

check('as root: apt-get update, then one install of exactly the plan', () => {
  const r = run([], { ...partial, STUB_UID: '0' })
  eq(r.status, 0, `exit status (stderr: ${r.err.trim()})`)
  eq(r.calls, [UPDATE, `install -y -qq --no-install-recommends ${partialPlan.join(' ')}`], 'apt-get calls')
})

check('a never-provisioned machine (dpkg-query knows nothing, exits 1): every available package installed', () => {
  const r = run([], { STUB_DPKG: '', STUB_UID: '0', STUB_NOCAND: 'rustc-web' })
  eq(r.status, 0, `exit status (stderr: ${r.err.trim()})`)
  eq(r.calls, [UPDATE, `install -y -qq --no-install-recommends ${PKGS.filter((p) => p !== 'rustc-web').join(' ')}`], 'apt-get calls')
})

check('everything installed: no apt call at all', () => {
  const r = run([], { STUB_DPKG: dpkg([]), STUB_UID: '1000' })
  eq(r.status, 0, 'exit status')
  eq(lines(r.out, '[provision-ci] '), [`[provision-ci] all ${PKGS.length} packages present`], 'output')
  eq(r.calls, [], 'apt-get calls')
})

check('nothing installable: apt-get update only, exit 0, each package reported', () => {
  const r = run([], { STUB_DPKG: dpkg(['wine64', 'shellcheck']), STUB_UID: '0', STUB_NOCAND: 'wine64 shellcheck' })
  eq(r.status, 0, 'exit status')
  eq(r.calls, [UPDATE], 'apt-get calls')
  eq(lines(r.err, '[provision-ci] not available').length, 2, 'reported')
})

check('not root and no passwordless sudo: exit 1 naming the packages, nothing installed', () => {
  const r = run([], { ...partial, STUB_UID: '1000' })
  eq(r.status, 1, 'exit status')
  if (!r.err.includes('need root')) throw new Error(`stderr lacks "need root": ${r.err}`)
  eq(r.calls.filter((c) => !c.startsWith('sudo -n true')), [], 'apt-get calls')
})

check('an apt-get failure fails the script with apt-get\'s output', () => {
  writeFileSync(join(bin, 'apt-get'), '#!/usr/bin/env bash\necho "$*" >>"$STUB_LOG"\n[ "$1" = install ] && { echo "E: Unable to locate package" >&2; exit 100; }\nexit 0\n')
  const r = run([], { ...partial, STUB_UID: '0' })
  writeFileSync(join(bin, 'apt-get'), STUBS['apt-get'])
  eq(r.status, 1, 'exit status')
  if (!r.err.includes('Unable to locate')) throw new Error(`stderr lacks apt-get's output: ${r.err}`)
})

check('a German locale (LANG=de_DE.UTF-8, LANGUAGE=de): the same plan as in C', () => {
  const r = run(['--dry-run'], { ...partial, STUB_UID: '1000', LANG: 'de_DE.UTF-8', LANGUAGE: 'de' })
  eq(r.status, 0, 'exit status')
  eq(lines(r.out, '[provision-ci] would install: '), [`[provision-ci] would install: ${partialPlan.join(' ')}`], 'plan')
})

check('dpkg statuses: half-configured, unpacked, not-installed are missing; an arch-qualified installed one is not', () => {
  const odd = {
    valgrind: 'install ok half-configured',
    python3: 'install ok unpacked',
    binutils: 'unknown ok not-installed',
  }
  const STUB_DPKG = `${dpkg([...Object.keys(odd), 'libatomic1'], odd)};libatomic1:amd64=${ok}`
  const r = run(['--dry-run'], { STUB_DPKG, STUB_UID: '1000' })
  eq(r.status, 0, 'exit status')
  eq(lines(r.out, '[provision-ci] missing: '), [`[provision-ci] missing: ${inOrder(Object.keys(odd)).join(' ')}`], 'missing')
})

check('not root, passwordless sudo: every apt-get call goes through sudo -n', () => {
  const r = run([], { ...partial, STUB_UID: '1000', STUB_SUDO_OK: '1' })
  eq(r.status, 0, `exit status (stderr: ${r.err.trim()})`)
  const install = `install -y -qq --no-install-recommends ${partialPlan.join(' ')}`
  eq(
    r.calls,
    ['sudo -n true', `sudo -n apt-get ${UPDATE}`, UPDATE, `sudo -n env DEBIAN_FRONTEND=noninteractive apt-get ${install}`, install],
    'calls',
  )
})

check('apt-get update fails (mirror unreachable): exit 1 with its output, nothing installed', () => {
  const r = run([], { ...partial, STUB_UID: '0', STUB_UPDATE_FAIL: '1' })
  eq(r.status, 1, 'exit status')
  if (!r.err.includes('Failed to fetch')) throw new Error(`stderr lacks apt-get's output: ${r.err}`)
  eq(r.calls, [UPDATE], 'apt-get calls')
})

check('--dry-run on a machine whose apt lists were never fetched: says so, reports nothing unavailable', () => {
  const r = run(['--dry-run'], { STUB_DPKG: '', STUB_UID: '1000', STUB_NOLISTS: '1' })
  eq(r.status, 0, 'exit status')
  if (!r.out.includes('no package lists')) throw new Error(`stdout lacks "no package lists": ${r.out}`)
  eq(lines(r.err, '[provision-ci] not available'), [], 'packages reported unavailable')
  eq(r.calls, [], 'apt-get/sudo calls')
})

check('no apt at all (PATH without apt-get/apt-cache): exit 1 naming the packages, also with --dry-run', () => {
  // a PATH with bash, the tools the script uses and the dpkg-query/id stubs, and nothing else
  const bare = join(dir, 'bare')
  spawnSync('mkdir', ['-p', bare])
  for (const t of ['bash', 'env', 'date', 'mktemp', 'rm', 'cat', 'sed']) {
    const p = spawnSync('bash', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim()
    if (p) spawnSync('ln', ['-sf', p, join(bare, t)])
  }
  for (const t of ['dpkg-query', 'id']) spawnSync('ln', ['-sf', join(bin, t), join(bare, t)])
  for (const args of [['--dry-run'], []]) {
    const r = spawnSync(join(bare, 'bash'), [script, ...args], {
      encoding: 'utf8',
      env: { PATH: bare, HOME: dir, STUB_DPKG: '', STUB_UID: '0' },
      timeout: 60_000,
    })
    eq(r.status, 1, `exit status ${args.join(' ')} (stdout: ${r.stdout.trim()})`)
    if (!r.stderr.includes('install by hand')) throw new Error(`stderr lacks "install by hand": ${r.stderr}`)
  }
})

rmSync(dir, { recursive: true, force: true })
console.log(`provision: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
