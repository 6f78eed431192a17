import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

/**
 * scripts/cluster.sh as an operator found it: `kill N; start N` restarted nothing ("already
 * running"), `snapshot 9` printed `kill: '': not a pid`, `up` waited minutes for replicas that had
 * died (EADDRINUSE), and `--log-level` could not be passed. Each on a real local cluster.
 */

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '../scripts/cluster.sh')

function clusterSh(runDir: string, ...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODELEDGER_RUN_DIR: runDir },
    })
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.once('exit', (code) => resolve({ code, out }))
  })
}

describe('scripts/cluster.sh', () => {
  const first = mkdtempSync(join(tmpdir(), 'nodeledger-cluster-sh-'))
  const second = mkdtempSync(join(tmpdir(), 'nodeledger-cluster-sh-'))
  const port = String(20000 + Math.floor(Math.random() * 20000))

  afterAll(async () => {
    await clusterSh(first, 'down')
    await clusterSh(second, 'down')
    rmSync(first, { recursive: true, force: true })
    rmSync(second, { recursive: true, force: true })
  })

  it('up --port --log-level; kill N then start N restarts it; an unknown id is exit 3', async () => {
    const up = await clusterSh(first, 'up', '--port', port, '--log-level', 'warn', '--wait-s', '150')
    expect(up.code, up.out).toBe(0)
    expect(up.out).toMatch(/leader/)
    // --log-level reached the replicas: a warn-level log has none of the info lines.
    expect(readFileSync(join(first, 'logs', 'replica-1.log'), 'utf8')).not.toContain('"level":30')
    const killed = await clusterSh(first, 'kill', '2')
    expect(killed.code, killed.out).toBe(0)
    const started = await clusterSh(first, 'start', '2')
    expect(started.code, started.out).toBe(0)
    expect(started.out).toContain('replica 2 started')
    expect(started.out).not.toContain('already running')
    const snapshot = await clusterSh(first, 'snapshot', '9')
    expect(snapshot.code).toBe(3)
    expect(snapshot.out).toContain('there is no replica 9 here (replicas: 1 2 3)')
    expect(snapshot.out).not.toContain('not a pid')
    expect((await clusterSh(first, 'kill', '9')).code).toBe(3)
  }, 240_000)

  it('up notices a replica that died (EADDRINUSE): its log tail, the others stopped, its exit code', async () => {
    const up = await clusterSh(second, 'up', '--port', port, '--wait-s', '150')
    expect(up.code, up.out).toBe(15)
    expect(up.out).toMatch(/replica \d exited with code 15 while starting; the end of .*replica-\d\.log:/)
    expect(up.out).toContain('cannot listen on /ip4/127.0.0.1')
    expect(up.out).toContain('stopped the others')
  }, 240_000)
})
