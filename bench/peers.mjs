// Installs the npm peers the benchmark compares against into .bench/peers (git-ignored), on
// demand, so that a fresh clone needs nothing by hand. A peer that fails to build is returned
// with status 'failed' and the reason, and the table shows it as such.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createRequire } from 'node:module'
import { ROOT } from './lib.mjs'

const DIR = path.join(ROOT, '.bench', 'peers')
const STATUS = path.join(DIR, 'status.json')

/** The peers: npm name, pinned version, and a smoke check of the loaded module. */
export const PEERS = [
  {
    name: 'mmap-io',
    version: '1.1.7',
    check: (m) => typeof m.map === 'function',
    why: "its binding.gyp forces -std=c++11, but Node >= 18's node.h/v8 headers need C++17",
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
  const errs = lines.filter((l) => /error:|not found|ERR!.*(?:not ok|Error)|ENOTFOUND|EAI_AGAIN/.test(l))
  const picked = [...new Set((errs.length ? errs : lines.filter((l) => l.trim())).map((l) => l.trim().slice(0, 160)))]
  return picked[0] ?? 'no output'
}

function tryLoad(peer) {
  const req = createRequire(path.join(DIR, 'package.json'))
  const resolved = req.resolve(peer.name)
  delete req.cache[resolved]
  const m = req(peer.name)
  if (!peer.check(m)) throw new Error(`${peer.name} loaded but its API is not the expected one`)
  return m
}

function npmInstall(spec, extraEnv) {
  const env = { ...process.env, ...extraEnv }
  const nodedir = localNodedir()
  if (nodedir && !env.npm_config_nodedir) env.npm_config_nodedir = nodedir
  const r = spawnSync(
    'npm',
    ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', spec],
    { cwd: DIR, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  )
  return { ok: r.status === 0, log: `${r.stdout ?? ''}\n${r.stderr ?? ''}${r.error ? `\n${r.error}` : ''}`, nodedir: env.npm_config_nodedir }
}

/**
 * Ensures every peer is installed (or known to fail); returns
 * { [name]: { module?, info: { name, version, status, attempts: [...], note } } }.
 */
export function ensurePeers({ log = (s) => process.stderr.write(s + '\n') } = {}) {
  fs.mkdirSync(DIR, { recursive: true })
  if (!fs.existsSync(path.join(DIR, 'package.json'))) {
    fs.writeFileSync(path.join(DIR, 'package.json'), JSON.stringify({ name: 'nsm-bench-peers', private: true }) + '\n')
  }
  let cached = {}
  try {
    cached = JSON.parse(fs.readFileSync(STATUS, 'utf8'))
  } catch {}
  const out = {}
  for (const peer of PEERS) {
    const spec = `${peer.name}@${peer.version}`
    const prev = cached[peer.name]
    if (prev && prev.version === peer.version && prev.status === 'ok') {
      try {
        out[peer.name] = { module: tryLoad(peer), info: { ...prev, cached: true } }
        continue
      } catch {}
    }
    log(`bench: installing ${spec} into .bench/peers (node-gyp build) ...`)
    // Start clean, so that attempt 1 really is what a user's fresh install does.
    fs.rmSync(path.join(DIR, 'node_modules', peer.name), { recursive: true, force: true })
    const attempts = []
    // 1. As any user would: plain `npm install`.
    let r = npmInstall(spec, {})
    attempts.push({ how: 'npm install', ok: r.ok, nodedir: r.nodedir ?? null, reason: r.ok ? null : reason(r.log) })
    // 2. mmap-io 1.1.7's binding.gyp forces -std=c++11, but Node >= 18's node.h needs C++17:
    //    retry once with the C++ standard raised, and say so.
    if (!r.ok) {
      r = npmInstall(spec, { CXXFLAGS: `${process.env.CXXFLAGS ?? ''} -std=gnu++17`.trim() })
      attempts.push({ how: 'npm install with CXXFLAGS=-std=gnu++17', ok: r.ok, nodedir: r.nodedir ?? null, reason: r.ok ? null : reason(r.log) })
    }
    let info = { name: peer.name, version: peer.version, attempts }
    let module
    if (r.ok) {
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
    info.note =
      info.status === 'ok'
        ? attempts.length > 1
          ? `plain \`npm install\` FAILS to build here (${attempts[0].reason}): ${peer.why ?? 'see .bench/peers/status.json'}; built with ${attempts[attempts.length - 1].how}`
          : 'built with plain npm install'
        : `FAILED TO BUILD: ${info.error}`
    cached[peer.name] = info
    out[peer.name] = { module, info }
  }
  fs.writeFileSync(STATUS, JSON.stringify(cached, null, 2) + '\n')
  return out
}

// `node bench/peers.mjs`: install and print the status only.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const res = ensurePeers()
  for (const [name, { info }] of Object.entries(res)) console.log(`${name}@${info.version}: ${info.status} — ${info.note}`)
}
