// What this process holds of a segment, read from /proc (Linux).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** File descriptors and mappings of this process that refer to /dev/shm/<name>. */
export function count(name: string): { fds: number; maps: number } {
  const path = `/dev/shm/${name.replace(/^\//, '')}`
  let fds = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (target === path || target === `${path} (deleted)`) fds++
    } catch {
      // the fd used by readdir itself is gone by now
    }
  }
  const maps = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.endsWith(path) || l.endsWith(`${path} (deleted)`)).length
  return { fds, maps }
}

/** All fds and all mappings of this process. */
export function totals(): { fds: number; maps: number } {
  return {
    fds: readdirSync('/proc/self/fd').length,
    maps: readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean).length,
  }
}
