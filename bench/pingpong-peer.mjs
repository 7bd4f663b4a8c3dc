// The other process of the ping-pong row. Prints "ready" once it can answer.
//   node bench/pingpong-peer.mjs shm NAME   — answers 1 with 2 on the Int32 at offset 0 (wait/notify); 3 = quit
//   node bench/pingpong-peer.mjs shm-spin NAME — the same, spinning on Atomics.load before each wait
//   node bench/pingpong-peer.mjs uds PATH   — echoes every byte back over a Unix-domain socket
import * as net from 'node:net'
import { loadAddon } from './lib.mjs'

const [kind, arg] = process.argv.slice(2)
if (kind === 'shm' || kind === 'shm-spin') {
  const { SharedMemory } = loadAddon()
  const mem = new SharedMemory(arg)
  const i32 = new Int32Array(mem.buffer)
  const spin = kind === 'shm-spin' ? Number(process.env.BENCH_SPIN ?? 20000) : 0
  process.stdout.write('ready\n')
  for (;;) {
    let v = Atomics.load(i32, 0)
    for (let k = 0; k < spin && v !== 1 && v !== 3; k++) v = Atomics.load(i32, 0)
    while (v !== 1 && v !== 3) {
      mem.wait(0, v)
      v = Atomics.load(i32, 0)
    }
    if (v === 3) break
    Atomics.store(i32, 0, 2)
    mem.notify(0)
  }
  mem.close()
} else if (kind === 'uds') {
  const sock = net.connect(arg, () => process.stdout.write('ready\n'))
  sock.on('data', (d) => sock.write(d))
  sock.on('end', () => sock.end())
  sock.on('error', () => process.exit(0))
} else {
  throw new Error(`unknown peer kind ${kind}`)
}
