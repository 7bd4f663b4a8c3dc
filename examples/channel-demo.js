// node-shared-mem channel demo: a Python process (examples/channel.py, pure Python: mmap + ctypes
// futex) produces JSON messages into a Channel; this Node process consumes them with
// `for await`, which ends when Python calls end(). No socket, no polling: the consumer sleeps in
// the kernel (futex) while the channel is empty.
//
//   npm run demo:channel
//   NODE_SHARED_MEM_FORCE_COPY=1 npm run demo:channel    the caged (Electron-style) copy path
'use strict'
const { spawn } = require('node:child_process')
const path = require('node:path')
const { Channel } = require('..')

const python = process.env.PYTHON || 'python3'
const name = `nsm-channel-demo-${process.pid}`

async function main() {
  const ch = Channel.create(name, { capacity: 64 * 1024 })
  console.log(`Node created channel "${name}" (${ch.capacity} bytes, ${ch.mode}, ` +
    `${ch.requiresCopy ? 'CAGED: payloads go through copyFrom' : 'ZERO-COPY: JS Atomics on the mapping'}); layout: docs/channel.md`)
  const producer = spawn(python, [path.join(__dirname, 'channel.py'), 'demo', name], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => producer.on('exit', (code, signal) => resolve(code ?? signal)))
  producer.on('error', (e) => {
    console.error(`could not start ${python} (set PYTHON=…): ${e.message}`)
    ch.close()
  })
  producer.stdout.once('data', () => console.log(`python (pid ${producer.pid}) attached and sends a message every 50 ms`))
  let n = 0
  const t0 = Date.now()
  try {
    for await (const bytes of ch) {
      const msg = JSON.parse(Buffer.from(bytes).toString())
      console.log(`  +${String(Date.now() - t0).padStart(4)} ms  received #${++n}: ${JSON.stringify(msg)}`)
    }
    console.log(`the Python producer ended the channel; ${n} messages received, none lost`)
  } finally {
    ch.close()
    Channel.unlink(name)
  }
  const code = await exited
  if (code !== 0 || n !== 10) {
    console.error(`demo failed: python exited with ${code}, ${n} of 10 messages`)
    process.exitCode = 1
  }
}

main().catch((e) => {
  console.error(e)
  Channel.unlink(name)
  process.exitCode = 1
})
