import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { buildCli } from '../build.ts'

/**
 * The install bundles the client commands (build.ts) so that `status`, `get` and `put` start in a
 * few hundred ms; the build refuses server code in the bundle (it once carried Fastify and
 * prom-client through the cluster file's address parser, +120 ms a command). Built into a temp
 * dir: the installed dist/ stays as it is while other tests run the CLI.
 */
describe('the CLI bundle', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'nodeledger-cli-bundle-'))
  afterAll(() => rmSync(outdir, { recursive: true, force: true }))

  it('builds without server code: the replica, LevelDB, Fastify and prom-client stay out', async () => {
    const { inputs } = await buildCli(outdir)
    expect(inputs).toContain('src/main.ts')
    expect(inputs).toContain('src/commands/status.ts')
    expect(inputs.some((input) => /authority\/src\/(replica|storage|api|http)\//.test(input))).toBe(false)
    expect(inputs.some((input) => /metrics\/src\/(ops-server|prometheus)\.ts$/.test(input))).toBe(false)
    // The servers and the snapshot commands (which open data dirs) are imported from src/ at run time.
    expect(inputs).not.toContain('src/commands/authority.ts')
    expect(inputs).not.toContain('src/commands/snapshot.ts')
    // `ui` is a server too (Fastify, the page's files): its module is imported only when it runs.
    expect(inputs).not.toContain('src/commands/ui.ts')
    expect(inputs.some((input) => input.includes('cluster-ui') || input.includes('cluster-page'))).toBe(false)
  }, 60_000)
})
