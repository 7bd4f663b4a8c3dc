// Node-style errors for the checks the class makes in JS (the same classes, codes and messages
// as the native checks and as Node's own `validateInteger` & co.).

/** An `Error` subclass instance carrying Node's `code`. */
export type CodedError<E extends Error = Error> = E & { code: string }

function coded<E extends Error>(error: E, code: string): CodedError<E> {
  return Object.assign(error, { code })
}

/** How Node's messages describe a received value ("type string ('x')", "undefined", …). */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'undefined'
    case 'boolean':
      return `type boolean (${value})`
    case 'number':
      return `type number (${Object.is(value, -0) ? '-0' : String(value)})`
    case 'string': {
      const shown = [...value].slice(0, 28).join('')
      return `type string ('${shown}'${shown.length < value.length ? '...' : ''})`
    }
    case 'bigint':
      return 'type bigint'
    case 'symbol':
      return 'type symbol'
    case 'function':
      return 'function'
    default:
      return value === null ? 'null' : 'an object'
  }
}

/** `TypeError [ERR_INVALID_ARG_TYPE]`. */
export function invalidType(what: string, expected: string, value: unknown): CodedError<TypeError> {
  return coded(new TypeError(`The "${what}" argument must be ${expected}. Received ${describe(value)}`), 'ERR_INVALID_ARG_TYPE')
}

/** `RangeError [ERR_OUT_OF_RANGE]`. */
export function outOfRange(what: string, rule: string, received: string): CodedError<RangeError> {
  return coded(new RangeError(`The value of "${what}" is out of range. It must be ${rule}. Received ${received}`), 'ERR_OUT_OF_RANGE')
}

/** `TypeError [ERR_INVALID_THIS]`, as Node's own classes throw it. */
export function invalidThis(): CodedError<TypeError> {
  return coded(new TypeError('Value of "this" must be of type SharedMemory'), 'ERR_INVALID_THIS')
}

/** `TypeError [ERR_CONSTRUCT_CALL_REQUIRED]`. */
export function constructCallRequired(): CodedError<TypeError> {
  return coded(new TypeError('Class constructor SharedMemory cannot be invoked without `new`'), 'ERR_CONSTRUCT_CALL_REQUIRED')
}

/** The error every method throws after `close()`. */
export function closed(method: string): CodedError {
  return coded(new Error(`Cannot call ${method}(): the shared memory is closed`), 'ERR_SHM_CLOSED')
}

/** A write on a `MemoryAccess.READ` instance: shaped like the OS's EACCES (13 everywhere). */
export function readOnly(method: string, name: string): CodedError {
  return Object.assign(
    coded(new Error(`EACCES: permission denied, ${method}() would change shared memory '${name}', which was opened with MemoryAccess.READ`), 'EACCES'),
    { errno: -13, syscall: method, path: name },
  )
}

function num(n: number): string {
  return Object.is(n, -0) ? '-0' : String(n)
}

/** An integer in `0..=max` (the caller handles `undefined`), else the error Node would throw. */
export function checkIndex(value: unknown, what: string, max: number): number {
  // The error paths are out of line so that this always inlines into the hot methods.
  if (typeof value === 'number' && value >= 0 && value <= max && Number.isInteger(value)) return value + 0 // -0 is 0
  return badIndex(value, what, max)
}

function badIndex(value: unknown, what: string, max: number): never {
  if (typeof value !== 'number') throw invalidType(what, 'of type number', value)
  throw outOfRange(what, Number.isFinite(value) && !Number.isInteger(value) ? 'an integer' : `an integer >= 0 and <= ${max}`, num(value))
}

/** An Int32 value (required). */
export function checkInt32(value: unknown, what: string): number {
  if (typeof value === 'number' && (value | 0) === value) return value | 0
  return badInt32(value, what)
}

function badInt32(value: unknown, what: string): never {
  if (typeof value !== 'number') throw invalidType(what, 'of type number', value)
  throw outOfRange(what, Number.isFinite(value) && !Number.isInteger(value) ? 'an integer' : 'an integer >= -2147483648 and <= 2147483647', num(value))
}

/** A timeout in ms: `undefined`/`Infinity` wait forever; else a number `>= 0`. */
export function checkTimeout(value: unknown): number {
  if (value === undefined) return Infinity
  if (typeof value !== 'number') throw invalidType('timeout', 'of type number', value)
  if (!(value >= 0)) throw outOfRange('timeout', 'a number of milliseconds >= 0 (Infinity waits forever)', num(value))
  return value
}

/** A count of waiters: `undefined`/`Infinity` → all; else an integer `>= 0`. */
export function checkCount(value: unknown): number {
  if (value === undefined) return Infinity
  if (typeof value !== 'number') throw invalidType('count', 'of type number', value)
  if (value !== Infinity && (!Number.isInteger(value) || value < 0)) throw outOfRange('count', 'an integer >= 0 or Infinity', num(value))
  return value
}
