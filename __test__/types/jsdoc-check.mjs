#!/usr/bin/env node
// JSDoc coverage of the public API (part of npm run test:types): every exported declaration of
// the package's public declarations (dist/*.d.ts, compiled from src/), and every member of exported classes/enums/interfaces, must carry a
// JSDoc comment. Exits 1 listing the undocumented items. Parameters that no `@param` tag names are
// listed as notes (not failures): many are self-explanatory.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
// The public declarations: dist/*.d.ts (compiled from src/) but the internal native.d.ts,
// errors.d.ts and channel-*.d.ts (the channel's layout/protocol/words modules, not exported from
// index); or the files named on the command line.
const DIST = path.join(ROOT, 'dist')
const files = process.argv.length > 2
  ? process.argv.slice(2).map((f) => path.resolve(f))
  : fs.readdirSync(DIST).filter((f) => f.endsWith('.d.ts') && !['native.d.ts', 'errors.d.ts'].includes(f) && !f.startsWith('channel-')).map((f) => path.join(DIST, f))
let sf

const missing = []
const notes = []
let checked = 0

const docsOf = (node) => (node.jsDoc ?? []).filter((d) => (d.comment ?? '').toString().trim() || d.tags?.length)
const nameOf = (node) => {
  if (ts.isConstructorDeclaration(node)) return 'constructor'
  if (node.name) return node.name.getText(sf)
  if (ts.isVariableStatement(node)) return node.declarationList.declarations.map((d) => d.name.getText(sf)).join(', ')
  return ts.SyntaxKind[node.kind]
}
const isExported = (node) =>
  node.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) ?? false

function require_(node, label) {
  checked++
  const docs = docsOf(node)
  if (docs.length === 0) {
    missing.push(label)
    return
  }
  if (node.parameters) {
    const tagged = new Set(
      docs.flatMap((d) => d.tags ?? []).filter(ts.isJSDocParameterTag).map((t) => t.name.getText(sf).split('.')[0]),
    )
    const undocumented = node.parameters.map((p) => p.name.getText(sf)).filter((p) => !tagged.has(p))
    if (undocumented.length) notes.push(`${label}: no @param for ${undocumented.join(', ')}`)
  }
}

for (const file of files) {
sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
for (const stmt of sf.statements) {
  if (!isExported(stmt)) continue
  if (ts.isExportDeclaration(stmt)) continue // re-exports: checked where they are declared
  const label = nameOf(stmt)
  require_(stmt, label)
  if (ts.isClassDeclaration(stmt) || ts.isInterfaceDeclaration(stmt)) {
    for (const m of stmt.members) {
      if (m.modifiers?.some((x) => x.kind === ts.SyntaxKind.PrivateKeyword)) continue
      if (m.name && ts.isPrivateIdentifier(m.name)) continue // `#private;`
      require_(m, `${label}.${nameOf(m)}`)
    }
  } else if (ts.isEnumDeclaration(stmt)) {
    for (const m of stmt.members) require_(m, `${label}.${nameOf(m)}`)
  }
}

}

console.log(`[jsdoc] ${files.map((f) => path.relative(ROOT, f)).join(', ')}: ${checked} public items, ${missing.length} without JSDoc`)
for (const n of notes) console.log(`[jsdoc] note: ${n}`)
if (checked === 0) {
  console.error('[jsdoc] FAILED: found no exported declarations')
  process.exit(1)
}
if (missing.length) {
  console.error(`[jsdoc] FAILED: undocumented public items:\n  ${missing.join('\n  ')}`)
  process.exit(1)
}
