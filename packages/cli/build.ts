/**
 * Bundles the CLI (src/main.ts and the client commands it imports on demand) into dist/, which
 * bin/nodeledger.mjs runs. The root package's postinstall runs this, so the README's install
 * builds it and dist/ is never committed.
 *
 * Why a bundle: `nodeledger status` spent ~1.4 s of CPU in Node's ESM loader before sending a byte
 * (≈700 modules of libp2p, noble, multiformats, our sources type-stripped one by one); one file
 * per command, with V8's compile cache, leaves the work itself. Code splitting keeps `--help` to
 * commander alone: each command is its own chunk, loaded by its dynamic import.
 *
 * Not bundled: `authority`, `worker`, `workers` and `ui`, long-running servers whose startup does not
 * matter and whose dependencies do not bundle (LevelDB's native addon, pino's worker-thread
 * transports; the page's files, read beside their module); dist/ imports them from src/ as they are.
 *
 *   node packages/cli/build.ts          # writes packages/cli/dist/
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import type { Plugin } from 'esbuild'

const CLI_DIR = dirname(fileURLToPath(import.meta.url))
const DIST = join(CLI_DIR, 'dist')
const REPO = resolve(CLI_DIR, '../..')
/** Commands left out of the bundle (src/commands/<name>.ts), imported from src/ at run time. */
const FROM_SOURCE = new Set(['authority.ts', 'worker.ts', 'snapshot.ts', 'ui.ts'])
const COMMANDS_DIR = join(CLI_DIR, 'src/commands')

const fromSource: Plugin = {
  name: 'server-commands-from-source',
  setup(builder) {
    builder.onResolve({ filter: /^\.\.?\/.*\.ts$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path)
      if (dirname(target) !== COMMANDS_DIR || !FROM_SOURCE.has(basename(target))) return undefined
      // dist/ and src/ are siblings, so dist/<chunk>.mjs reaches src/commands/x.ts as ../src/commands/x.ts.
      return { path: `../${relative(CLI_DIR, target)}`, external: true }
    })
  },
}

/**
 * What the client commands' bundle must never carry: the servers' dependencies (an HTTP server and
 * Prometheus client, LevelDB, the replica). Each one is a cost every `status` or `get` pays at
 * start (Fastify and prom-client came in once through the cluster file's address parser: +120 ms a
 * command); the build fails, naming it, rather than ship it.
 */
const NOT_IN_BUNDLE = [
  /\/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?(fastify|prom-client|classic-level|level|pino)\//,
  /\/packages\/authority\/src\/(replica|storage|api|http)\//,
  /\/packages\/metrics\/src\/(ops-server|prometheus)\.ts$/,
  // The HTTP gateway is the worker's and the replica's (Fastify routes), never a client command's.
  /\/packages\/gateway\//,
]

export async function buildCli(outdir: string = DIST): Promise<{ outputs: string[]; inputs: string[]; ms: number }> {
  const started = Date.now()
  rmSync(outdir, { recursive: true, force: true })
  mkdirSync(outdir, { recursive: true })
  const result = await build({
    entryPoints: { main: join(CLI_DIR, 'src/main.ts') },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunk-[hash]',
    // Bundled CommonJS dependencies (a few) may call require() for Node's built-ins.
    banner: {
      js: "import { createRequire as __nlRequire } from 'node:module'; const require = __nlRequire(import.meta.url);",
    },
    legalComments: 'none',
    // Whitespace and syntax only: a third less to read and decode at every start; names stay for stack traces.
    minifyWhitespace: true,
    minifySyntax: true,
    metafile: true,
    logLevel: 'warning',
    plugins: [fromSource],
  })
  const carried = Object.keys(result.metafile.inputs)
    .map((path) => resolve(REPO, path))
    .filter((path) => NOT_IN_BUNDLE.some((pattern) => pattern.test(path)))
  if (carried.length > 0) {
    rmSync(outdir, { recursive: true, force: true })
    throw new Error(
      `the client commands' bundle would carry server code: ${carried
        .slice(0, 5)
        .map((path) => relative(REPO, path))
        .join(
          ', ',
        )}${carried.length > 5 ? ` and ${carried.length - 5} more` : ''}; import a lighter module (a subpath export) instead`,
    )
  }
  const outputs = Object.keys(result.metafile.outputs).map((path) => resolve(REPO, path))
  // Our own sources (not node_modules, which only an install changes, and an install rebuilds):
  // the launcher compares their mtimes with the bundle's and runs src/ when one is newer.
  const inputs = Object.keys(result.metafile.inputs)
    .map((path) => resolve(REPO, path))
    .filter((path) => !path.includes('/node_modules/'))
    .map((path) => relative(CLI_DIR, path))
  writeFileSync(
    join(outdir, 'inputs.json'),
    `${JSON.stringify({ builtAt: new Date().toISOString(), inputs: inputs.sort() }, null, 1)}\n`,
  )
  return { outputs, inputs, ms: Date.now() - started }
}

if (import.meta.main) {
  try {
    const { outputs, inputs, ms } = await buildCli()
    process.stdout.write(
      `nodeledger CLI bundled in ${ms} ms: ${outputs.length} files in ${relative(process.cwd(), DIST) || '.'}/ from ${inputs.length} workspace sources\n`,
    )
  } catch (error) {
    // The CLI still runs from src/ without the bundle (slower): an install must not fail for it.
    process.stderr.write(`nodeledger CLI bundle not built (the CLI runs from source): ${(error as Error).message}\n`)
    process.exitCode = process.env.NODELEDGER_BUILD_STRICT === '1' ? 1 : 0
  }
}
