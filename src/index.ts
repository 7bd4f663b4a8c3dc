// node-shared-mem: named OS shared memory as a zero-copy ArrayBuffer, with a caged-copy mode for
// Electron, create/unlink and cross-process wait/notify. See README.md.

import { constructCallRequired } from './errors'
import { SharedMemory as SharedMemoryClass } from './shared-memory'

export { MemoryAccess } from './shared-memory'
export type { CreateOptions, WaitResult } from './shared-memory'

/**
 * A named OS shared-memory segment mapped into this process (see the class's members).
 * Calling it without `new` throws `TypeError` `ERR_CONSTRUCT_CALL_REQUIRED` before any work.
 */
export const SharedMemory: typeof SharedMemoryClass = new Proxy(SharedMemoryClass, {
  apply() {
    throw constructCallRequired()
  },
  // `new SharedMemory()` would otherwise make the proxy `new.target`, and V8 then gives every
  // instance a hidden class of its own (code touching several instances goes megamorphic).
  construct(target, args, newTarget) {
    return Reflect.construct(target, args, newTarget === SharedMemory ? target : newTarget)
  },
})
// `mem.constructor === SharedMemory`, as for any class.
Object.defineProperty(SharedMemoryClass.prototype, 'constructor', { value: SharedMemory, writable: true, configurable: true })
/** An open (or closed) shared-memory segment: see {@link SharedMemoryClass}. */
export type SharedMemory = SharedMemoryClass
export { Channel, type ChannelCreateOptions, type ChannelData, type ChannelMode, type ChannelWaitOptions } from './channel'
