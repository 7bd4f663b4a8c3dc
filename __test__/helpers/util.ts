// Shared helpers for the ava specs.
import { execFileSync, spawn, ChildProcess } from 'node:child_process'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'

export const ROOT = path.resolve(__dirname, '..', '..')
export const PEER = path.join(__dirname, 'peer.py')
export const PYTHON = process.env.PYTHON ?? 'python3'

/** True when this run forces the caged (copy) path. */
export const FORCED_COPY = process.env.NODE_SHARED_MEM_FORCE_COPY === '1'

/** A segment name no other test (or run) uses. */
export function uniqueName(tag: string): string {
  return `nsm-test-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`
}

/** Runs a peer.py command synchronously and returns its stdout, trimmed. */
export function peer(...args: (string | number)[]): string {
  return execFileSync(PYTHON, [PEER, ...args.map(String)], { encoding: 'utf8' }).trim()
}

/** Creates a segment from Python (a foreign process) and returns its name. */
export function foreignCreate(tag: string, size: number, offset = 0, bytes?: Buffer): string {
  const name = uniqueName(tag)
  if (bytes) peer('create', name, size, offset, bytes.toString('hex'))
  else peer('create', name, size)
  return name
}

/** Reads bytes of a segment from Python. */
export function foreignRead(name: string, offset: number, length: number): Buffer {
  return Buffer.from(peer('read', name, offset, length), 'hex')
}

/** Removes a segment from Python; false if it did not exist. */
export function foreignUnlink(name: string): boolean {
  try {
    peer('unlink', name)
    return true
  } catch {
    return false
  }
}

/** Starts a long-lived child and resolves once it prints a line containing `ready`. */
export function startChild(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } })
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
      if (out.includes('ready')) resolve(child)
    })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (!out.includes('ready')) reject(new Error(`child exited early (${code ?? signal}): ${out}`))
    })
  })
}

/** Runs a Node script in a child process; resolves with its exit code, signal and output. */
export function runNode(
  script: string,
  args: string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script, '--', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
      cwd: ROOT,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}
