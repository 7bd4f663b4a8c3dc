// ESM twin of scripts/skip.cjs (one implementation): skip(what, tool) prints
// `SKIPPED <what>: <tool> missing (see scripts/provision-ci.sh)` and returns true locally, false
// (and sets process.exitCode = 1) when CI=true.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const impl = require('./skip.cjs')

export const { skip, strict, hasTool, runs, isRoot, SEE } = impl
