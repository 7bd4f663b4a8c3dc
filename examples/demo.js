// node-shared-mem demo: a Python process creates a named shared-memory segment and keeps
// writing into it; this Node process opens it by name and reads it live.
//
//   npm run demo           zero-copy where the runtime allows it
//   NODE_SHARED_MEM_FORCE_COPY=1 npm run demo   the caged (Electron-style) copy path
'use strict'
const { spawn } = require('node:child_process')
const path = require('node:path')
const { SharedMemory, MemoryAccess } = require('..')

const name = `nsm-demo-${process.pid}`
const size = 4096
const python = process.env.PYTHON || (process.platform === 'win32' ? 'python' : 'python3')

function startWriter() {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [path.join(__dirname, 'writer.py'), name, String(size)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    child.on('error', (e) => reject(new Error(`could not start ${python} (set PYTHON=…): ${e.message}`)))
    child.stdout.once('data', (d) => (String(d).includes('ready') ? resolve(child) : reject(new Error(String(d)))))
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function main() {
  const writer = await startWriter()
  console.log(`python (pid ${writer.pid}) created shared memory "${name}" and writes to it every 50 ms`)
  const mem = new SharedMemory(name, undefined, MemoryAccess.READ)
  try {
    console.log(`opened it from Node ${process.version}: ${mem.length} bytes, ` +
      (mem.requiresCopy
        ? 'CAGED mode (buffer is a copy; copyFrom() refreshes it)'
        : 'ZERO-COPY mode (buffer is the shared memory itself)'))
    const counter = new Uint32Array(mem.buffer, 0, 1)
    const text = new Uint8Array(mem.buffer, 8, 48)
    for (let i = 0; i < 8; i++) {
      if (mem.requiresCopy) mem.copyFrom(0, 0, 56) // only the bytes we read
      console.log(`  read #${i + 1}: counter=${String(counter[0]).padStart(3)}  "${Buffer.from(text).toString().trim()}"`)
      await sleep(120)
    }
    console.log(`atomicLoad(0) reads the segment itself in either mode: ${mem.atomicLoad(0)}`)
  } finally {
    mem.close()
    writer.stdin.end() // the writer stops and unlinks the segment
    await new Promise((r) => writer.once('exit', r))
  }
  let gone = false
  try {
    new SharedMemory(name)
  } catch (e) {
    gone = e.code === 'ENOENT'
  }
  console.log(`closed; the writer removed the segment (open now fails with ENOENT: ${gone})`)
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
