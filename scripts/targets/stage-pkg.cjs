'use strict'
// Stages the package for a foreign target the way npm would install it: package.json, its
// "main", every entry of "files" that exists (so the lead's dist/ facade comes along), and the
// foreign addon under the name the generated loader (index.js) looks for on that platform.
//   node stage-pkg.cjs DEST ADDON_FILE LOADER_NAME     e.g. … node-shared-mem.win32-x64-msvc.node
const fs = require('node:fs')
const path = require('node:path')

const [dest, addon, loaderName] = process.argv.slice(2)
const ROOT = path.resolve(__dirname, '..', '..')
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
fs.rmSync(dest, { recursive: true, force: true })
fs.mkdirSync(dest, { recursive: true })
const main = (pkg.main || 'index.js').replace(/^\.\//, '')
// A main in a folder (dist/index.js) brings its folder: the facade's other compiled modules.
const mainDir = main.includes('/') ? main.split('/')[0] : main
const entries = new Set(['package.json', mainDir, 'index.js', ...(pkg.files || [])])
for (const e of entries) {
  if (e.includes('*')) continue // globs: the generated *.node files are never wanted here
  const src = path.join(ROOT, e)
  if (!fs.existsSync(src)) continue
  fs.cpSync(src, path.join(dest, e), { recursive: true })
}
fs.copyFileSync(addon, path.join(dest, loaderName))
console.log(`staged ${[...entries].filter((e) => fs.existsSync(path.join(dest, e))).join(', ')} + ${loaderName}`)
