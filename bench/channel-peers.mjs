// Installs what the channel benchmark compares against, on demand, into git-ignored .bench/:
// shared-memory-disruptor (npm, a node-gyp build) and the Rust peer (crates/shm-channel). A peer
// that fails to build is returned with its reason, and the table says so: never skipped silently.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createRequire } from 'node:module'
import { ROOT } from './lib.mjs'

const DISRUPTOR_DIR = path.join(ROOT, '.bench', 'channel-disruptor')
const DISRUPTOR_VERSION = '4.2.1'
export const RUST_TARGET = path.join(ROOT, 'target', 'channel')
export const RUST_PEER = path.join(RUST_TARGET, 'release', 'shm-channel')

/** `{ Disruptor }` of shared-memory-disruptor, or `{ error }`. */
export function loadDisruptor(log = () => {}) {
  const req = createRequire(path.join(DISRUPTOR_DIR, 'package.json'))
  const tryLoad = () => {
    try {
      return { Disruptor: req('shared-memory-disruptor').Disruptor, version: req('shared-memory-disruptor/package.json').version }
    } catch (e) {
      return { error: String(e.message).split('\n')[0] }
    }
  }
  let got = tryLoad()
  if (!got.error) return got
  log(`bench: installing shared-memory-disruptor@${DISRUPTOR_VERSION} into .bench/channel-disruptor (node-gyp build) ...`)
  fs.mkdirSync(DISRUPTOR_DIR, { recursive: true })
  if (!fs.existsSync(path.join(DISRUPTOR_DIR, 'package.json'))) {
    fs.writeFileSync(path.join(DISRUPTOR_DIR, 'package.json'), '{ "name": "channel-bench-peers", "private": true }\n')
  }
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const r = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--foreground-scripts', `shared-memory-disruptor@${DISRUPTOR_VERSION}`], { cwd: DISRUPTOR_DIR, encoding: 'utf8' })
  if (r.status !== 0) return { error: `npm install failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}` }
  got = tryLoad()
  if (got.error) {
    // npm ≥ 11 may not run install scripts: build the addon explicitly.
    const gyp = spawnSync(npm, ['exec', '--yes', '--', 'node-gyp', 'rebuild'], { cwd: path.join(DISRUPTOR_DIR, 'node_modules', 'shared-memory-disruptor'), encoding: 'utf8' })
    if (gyp.status !== 0) return { error: `node-gyp rebuild failed: ${(gyp.stderr || '').trim().split('\n').slice(-3).join(' | ')}` }
    got = tryLoad()
  }
  return got
}

/** Builds the Rust peer (crates/shm-channel) in its own target dir: `{ bin }` or `{ error }`. */
export function buildRustPeer(log = () => {}) {
  log('bench: cargo build --release -p shm-channel ...')
  const r = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'shm-channel'], { cwd: ROOT, env: { ...process.env, CARGO_TARGET_DIR: RUST_TARGET }, encoding: 'utf8' })
  if (r.error) return { error: `cargo missing: ${r.error.message}` }
  if (r.status !== 0) return { error: `cargo build failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` }
  return { bin: RUST_PEER }
}
