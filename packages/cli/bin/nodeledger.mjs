#!/usr/bin/env node
// The installed `nodeledger`. Plain JavaScript, so that nothing is type-stripped before it runs:
// it turns on V8's compile cache (Node >= 22.1; the cache lives in the OS temp dir unless
// NODE_COMPILE_CACHE says otherwise) and runs the bundle the install built (build.ts, dist/), or
// src/main.ts when there is none, when one of the sources it was built from is newer (an edit
// since the install: `node packages/cli/build.ts` rebuilds), or when NODELEDGER_FROM_SOURCE=1.
import { readFileSync, statSync } from 'node:fs'
import module from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

module.enableCompileCache?.()
const cli = join(dirname(fileURLToPath(import.meta.url)), '..')

function bundleIsFresh() {
  if (process.env.NODELEDGER_FROM_SOURCE === '1') return false
  try {
    const builtMs = statSync(join(cli, 'dist/main.mjs')).mtimeMs
    const { inputs } = JSON.parse(readFileSync(join(cli, 'dist/inputs.json'), 'utf8'))
    return inputs.every((input) => statSync(join(cli, input)).mtimeMs <= builtMs)
  } catch {
    return false
  }
}

if (bundleIsFresh()) {
  await import('../dist/main.mjs')
} else {
  await import('../src/main.ts')
}
