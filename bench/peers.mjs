// Installs the npm peers the benchmark compares against into .bench/peers/<peer>/ (git-ignored,
// one directory and package.json per peer, so installing one never prunes another), on demand,
// so that a fresh clone needs nothing by hand. A peer that fails to build is returned with
// status 'failed' and the reason, and the table shows it as such: never silently skipped.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createRequire } from 'node:module'
import { ROOT } from './lib.mjs'

const DIR = path.join(ROOT, '.bench', 'peers')
const SRC = path.join(ROOT, '.bench', 'src')
const STATUS = path.join(DIR, 'status.json')
const FORCE_CAGED_H = path.join(ROOT, 'bench', 'peer-src', 'force-caged.h')

// node-shared-mem 2.1: the package this one replaces. Taken from npm if the registry has it,
// else built from its git tag (BENCH_NSM21_GIT: a URL or a local clone; the default is the
// upstream repository).
const NSM21_GIT = process.env.BENCH_NSM21_GIT ?? 'https://github.com/aardvark-platform/node-shared-mem.git'
const NSM21_TAG = 'v2.1.0'
const NSM21_WHY = "its node-shared-mem.cc uses std::string::starts_with (C++20); node-gyp compiles Node 20 addons as C++17"

/**
 * The peers: key (also the directory), npm name, version, a smoke check of the loaded module,
 * C++ standards to retry with when a plain install fails, and extra flags for every attempt.
 */
export const PEERS = [
  {
    key: 'mmap-io',
    name: 'mmap-io',
    version: '1.1.7',
    check: (m) => typeof m.map === 'function',
    retryStd: ['-std=gnu++17'],
    why: "its binding.gyp forces -std=c++11, but Node >= 18's node.h/v8 headers need C++17",
  },
  {
    key: 'node-shared-mem-2.1',
    name: 'node-shared-mem',
    version: '2.1.0',
    range: '~2.1.0',
    git: { url: NSM21_GIT, tag: NSM21_TAG },
    check: (m) => typeof m.SharedMemory === 'function' && m.MemoryAccess?.WRITE === 1,
    retryStd: ['-std=gnu++20'],
    why: NSM21_WHY,
  },
  {
    // The same source, compiled with bench/peer-src/force-caged.h: Node-API refuses external
    // ArrayBuffers as in Electron's cage, so 2.1 runs its caged path (requiresCopy, memcpy).
    key: 'node-shared-mem-2.1-caged',
    name: 'node-shared-mem',
    version: '2.1.0',
    range: '~2.1.0',
    git: { url: NSM21_GIT, tag: NSM21_TAG },
    extraCxx: `-include ${FORCE_CAGED_H}`,
    check: (m) => typeof m.SharedMemory === 'function',
    retryStd: ['-std=gnu++20'],
    why: NSM21_WHY,
  },
  {
    key: 'shm-typed-array',
    name: 'shm-typed-array',
    version: '0.1.1',
    check: (m) => typeof m.get === 'function' && typeof m.detach === 'function',
    retryStd: ['-std=gnu++17'],
  },
  {
    key: 'shared-memory-disruptor',
    name: 'shared-memory-disruptor',
    version: '4.2.1',
    check: (m) => typeof m.Disruptor === 'function',
    retryStd: ['-std=gnu++17'],
  },
]

/** Node's own headers next to this node binary, so node-gyp never needs to download them. */
function localNodedir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..')
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node.h')) ? prefix : undefined
}

/** The compiler's error lines (or the tail of the log), enough to tell why a build failed. */
function reason(log) {
  const lines = log.split('\n').map((l) => l.replace(/^npm error\s?/, ''))
  const errs = lines.filter((l) => /error:|not found|ERR!.*(?:not ok|Error)|ENOTFOUND|EAI_AGAIN|E404|404 Not Found|fatal:/.test(l))
  const picked = [...new Set((errs.length ? errs : lines.filter((l) => l.trim())).map((l) => l.trim().slice(0, 160)))]
  return picked[0] ?? 'no output'
}

/** A fingerprint of how a peer is built: a cached build is reused only if it matches. */
function buildId(peer) {
  const extra = peer.extraCxx ? `${peer.extraCxx}#${fs.readFileSync(FORCE_CAGED_H, 'utf8').length}` : ''
  return `${peer.name}@${peer.version}${extra ? ` ${extra}` : ''}`
}

function peerDir(peer) {
  return path.join(DIR, peer.key)
}

function tryLoad(peer) {
  const req = createRequire(path.join(peerDir(peer), 'package.json'))
  const resolved = req.resolve(peer.name)
  delete req.cache[resolved]
  const m = req(peer.name)
  if (!peer.check(m)) throw new Error(`${peer.name} loaded but its API is not the expected one`)
  return m
}

function npmInstall(peer, spec, cxxflags) {
  const env = { ...process.env }
  const flags = [process.env.CXXFLAGS ?? '', cxxflags, peer.extraCxx ?? ''].join(' ').trim()
  if (flags) env.CXXFLAGS = flags
  const nodedir = localNodedir()
  if (nodedir && !env.npm_config_nodedir) env.npm_config_nodedir = nodedir
  const r = spawnSync(
    'npm',
    ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', spec],
    { cwd: peerDir(peer), env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  )
  return { ok: r.status === 0, log: `${r.stdout ?? ''}\n${r.stderr ?? ''}${r.error ? `\n${r.error}` : ''}`, nodedir: env.npm_config_nodedir, cxxflags: flags || null }
}

/** `npm pack` of the peer's git tag (cloned once into .bench/src): a tarball to install. */
function packFromGit(peer) {
  const dir = path.join(SRC, `${peer.name}-${peer.git.tag}`)
  const tgz = path.join(SRC, `${peer.name}-${peer.version}.tgz`)
  if (fs.existsSync(tgz)) return { tgz }
  fs.mkdirSync(SRC, { recursive: true })
  fs.rmSync(dir, { recursive: true, force: true })
  const clone = spawnSync('git', ['clone', '--quiet', '--depth', '1', '--branch', peer.git.tag, peer.git.url, dir], { encoding: 'utf8' })
  if (clone.status !== 0) return { error: `git clone ${peer.git.url} ${peer.git.tag}: ${reason(`${clone.stderr ?? ''}${clone.error ?? ''}`)}` }
  const pack = spawnSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', SRC], { cwd: dir, encoding: 'utf8' })
  if (pack.status !== 0 || !fs.existsSync(tgz)) return { error: `npm pack of ${peer.git.tag}: ${reason(`${pack.stdout}\n${pack.stderr}`)}` }
  return { tgz }
}

/**
 * Ensures every peer is installed (or known to fail); returns
 * { [key]: { module?, info: { name, version, status, attempts: [...], note } } }.
 */
export function ensurePeers({ log = (s) => process.stderr.write(s + '\n') } = {}) {
  fs.mkdirSync(DIR, { recursive: true })
  let cached = {}
  try {
    cached = JSON.parse(fs.readFileSync(STATUS, 'utf8'))
  } catch {}
  const out = {}
  for (const peer of PEERS) {
    const id = buildId(peer)
    const prev = cached[peer.key]
    if (prev && prev.build === id && prev.status === 'ok') {
      try {
        out[peer.key] = { module: tryLoad(peer), info: { ...prev, cached: true } }
        continue
      } catch {}
    }
    log(`bench: installing ${id} into .bench/peers/${peer.key} (node-gyp build) ...`)
    // Start clean, so that attempt 1 really is what a user's fresh install does.
    fs.rmSync(peerDir(peer), { recursive: true, force: true })
    fs.mkdirSync(peerDir(peer), { recursive: true })
    fs.writeFileSync(path.join(peerDir(peer), 'package.json'), JSON.stringify({ name: `nsm-bench-peer-${peer.key}`, private: true }) + '\n')
    const attempts = []
    const attempt = (how, spec, std) => {
      const r = npmInstall(peer, spec, std)
      attempts.push({ how, ok: r.ok, nodedir: r.nodedir ?? null, cxxflags: r.cxxflags, reason: r.ok ? null : reason(r.log) })
      return r.ok
    }
    // 1. As any user would: plain `npm install` from the registry.
    const registrySpec = `${peer.name}@${peer.range ?? peer.version}`
    let ok = attempt('npm install', registrySpec, '')
    // 2. Retry with the C++ standard the peer's source needs (its binding.gyp does not say).
    const notThere = !ok && /E404|ETARGET|ENOTFOUND|EAI_AGAIN/.test(attempts[0].reason)
    for (const std of ok || notThere ? [] : (peer.retryStd ?? [])) {
      if ((ok = attempt(`npm install with CXXFLAGS=${std}`, registrySpec, std))) break
    }
    // 3. Not on the registry (or not buildable from it): the tagged source, packed.
    if (!ok && peer.git) {
      const p = packFromGit(peer)
      if (p.error) attempts.push({ how: `source ${peer.git.tag}`, ok: false, reason: p.error })
      else {
        ok = attempt(`npm install ${path.relative(ROOT, p.tgz)} (git ${peer.git.tag})`, p.tgz, '')
        for (const std of ok ? [] : (peer.retryStd ?? [])) {
          if ((ok = attempt(`npm install ${path.relative(ROOT, p.tgz)} (git ${peer.git.tag}) with CXXFLAGS=${std}`, p.tgz, std))) break
        }
      }
    }
    const info = { key: peer.key, name: peer.name, version: peer.version, build: id, attempts }
    let module
    if (ok) {
      try {
        module = tryLoad(peer)
        info.status = 'ok'
      } catch (e) {
        info.status = 'failed'
        info.error = `installed but does not load: ${e.message}`
      }
    } else {
      info.status = 'failed'
      info.error = attempts.map((a) => `${a.how}: ${a.reason}`).join(' || ')
    }
    const last = attempts[attempts.length - 1]
    const extra = peer.extraCxx ? ` (every attempt with CXXFLAGS ${peer.extraCxx.replace(ROOT + '/', '')})` : ''
    const failed = attempts.filter((x) => !x.ok).map((x) => `${x.how}: ${x.reason}`)
    info.note =
      info.status === 'ok'
        ? attempts.length > 1
          ? `plain \`npm install\` FAILS here; ${failed.join('; ')}${peer.why ? ` (${peer.why})` : ''}; built with ${last.how}${extra}`
          : `built with plain npm install${extra}`
        : `FAILED TO BUILD: ${info.error}`
    cached[peer.key] = info
    out[peer.key] = { module, info }
  }
  fs.writeFileSync(STATUS, JSON.stringify(cached, null, 2) + '\n')
  return out
}

// `node bench/peers.mjs`: install and print the status only.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const res = ensurePeers()
  for (const [key, { info }] of Object.entries(res)) console.log(`${key} (${info.name}@${info.version}): ${info.status} — ${info.note}`)
}
