import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { appendFileSync, createWriteStream, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitUntil } from '@nodeledger/testkit'
import { BIN, nodeledger } from './cli-support.ts'

/**
 * The CLI agent on a real cluster: the first get/put/ls/status runs on its own and starts the
 * agent; later ones are run by it (its command count grows) with the same output and exit codes
 * as without it; it follows a leader failover; it exits on `agent stop`, when idle, and when its
 * cluster file changes; a killed agent's stale socket is taken over by the next one.
 */

interface AgentJson {
  agents: Array<{ socket: string; pid?: number; commandsRun?: number; cluster?: string; stale?: boolean }>
}

describe('the CLI agent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeledger-cli-agent-'))
  const agentDir = join(dir, 'agents')
  const port = 20000 + Math.floor(Math.random() * 20000)
  const children = new Map<number, ChildProcess>()
  let file: string
  const operatorPeer = '12D3KooWKv4T8bavaR6mSf1MZCH85R4pVeJTFWAdXLAeu2zjD1H2'

  const envWith = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
    ...process.env,
    NODELEDGER_AGENT: 'on',
    NODELEDGER_AGENT_DIR: agentDir,
    ...extra,
  })
  const agentOn = envWith({})
  const agentOff = envWith({ NODELEDGER_AGENT: 'off' })
  const run = (env: NodeJS.ProcessEnv, ...args: string[]) =>
    nodeledger([...args, '--cluster', file], { timeoutMs: 60_000, env })
  const agents = async (): Promise<AgentJson['agents']> => {
    const listed = await nodeledger(['agent', 'status', '--json'], { env: agentOn })
    expect(listed.code, listed.stderr).toBe(0)
    return (JSON.parse(listed.stdout) as AgentJson).agents
  }
  const serving = async (): Promise<AgentJson['agents']> => (await agents()).filter((agent) => agent.pid !== undefined)
  const commandsRun = async (): Promise<number> => (await serving())[0]?.commandsRun ?? -1

  const start = (id: number): void => {
    const child = spawn(
      process.execPath,
      [BIN, 'authority', '--cluster', file, '--id', String(id), '--initial-cluster-state', 'new'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const log = createWriteStream(join(dir, `replica-${id}.log`), { flags: 'a' })
    child.stdout!.pipe(log)
    child.stderr!.pipe(log)
    children.set(id, child)
  }

  beforeAll(async () => {
    const made = await nodeledger([
      'cluster',
      'init',
      '--hosts',
      '127.0.0.41,127.0.0.42,127.0.0.43',
      '--port',
      String(port),
      '--dir',
      dir,
      '--json',
    ])
    expect(made.code, made.stderr).toBe(0)
    file = (JSON.parse(made.stdout) as { clusterFile: string }).clusterFile
    for (const id of [1, 2, 3]) start(id)
    await waitUntil('a leader', async () => (await run(agentOff, 'status', '--json')).code === 0, 150_000, 250)
  }, 180_000)

  afterAll(async () => {
    await nodeledger(['agent', 'stop'], { env: agentOn }).catch(() => {})
    for (const child of children.values()) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })

  it('starts with the first command, then runs get, put, ls and status with the same answers', async () => {
    expect(await serving()).toEqual([])
    const first = await run(agentOn, 'put', operatorPeer, 'version=one')
    expect(first.code, first.stderr).toBe(0)
    await waitUntil('the agent serves', async () => (await serving()).length === 1, 60_000, 100)
    const [agent] = await serving()
    expect(agent!.cluster).toBe(file)

    const before = await commandsRun()
    const viaAgent = await run(agentOn, 'get', operatorPeer, '--json')
    const direct = await run(agentOff, 'get', operatorPeer, '--json')
    expect([viaAgent.code, direct.code]).toEqual([0, 0])
    expect(JSON.parse(viaAgent.stdout)).toEqual(JSON.parse(direct.stdout))
    expect(JSON.parse(viaAgent.stdout).record.version).toBe('one')
    expect(await commandsRun()).toBe(before + 1)

    const put = await run(agentOn, 'put', operatorPeer, 'version=two', '--json')
    expect(put.code, put.stderr).toBe(0)
    expect(JSON.parse(put.stdout)).toMatchObject({ peerId: operatorPeer, seq: 2 })
    const seen = await run(agentOff, 'get', operatorPeer, '--json')
    expect(JSON.parse(seen.stdout).record.version).toBe('two')

    const [lsAgent, lsDirect] = [await run(agentOn, 'ls', '--json'), await run(agentOff, 'ls', '--json')]
    expect(JSON.parse(lsAgent.stdout)).toEqual(JSON.parse(lsDirect.stdout))
    const statusAgent = JSON.parse((await run(agentOn, 'status', '--json')).stdout)
    const statusDirect = JSON.parse((await run(agentOff, 'status', '--json')).stdout)
    expect(statusAgent.leader).toBe(statusDirect.leader)
    expect(statusAgent.replicas.map((row: { id: number }) => row.id)).toEqual([1, 2, 3])
    expect(statusAgent.mismatches).toEqual([])
    expect(await commandsRun()).toBe(before + 4) // get, put, ls, status
  })

  it('keeps exit codes and messages: bad input 2, not found 3', async () => {
    const bad = await run(agentOn, 'get', 'not-a-peer-id')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('INVALID')
    expect(bad.stderr).toContain('is not a libp2p peer id')
    const missing = await run(agentOn, 'get', '12D3KooWBZGLQrob668a5hxiagSEy9d1BeSJppcNYuHgPVD9DwW9')
    expect(missing.code).toBe(3)
    expect(missing.stderr).toContain('not in the registry')
  })

  it('follows a leader failover', async () => {
    const leader = JSON.parse((await run(agentOff, 'status', '--json')).stdout).leader as number
    const before = await commandsRun()
    children.get(leader)!.kill('SIGKILL')
    await waitUntil(
      'a new leader, through the agent',
      async () => {
        const status = await run(agentOn, 'status', '--json')
        return status.code === 0 && JSON.parse(status.stdout).leader !== leader
      },
      120_000,
      250,
    )
    const put = await run(agentOn, 'put', operatorPeer, 'version=three')
    expect(put.code, put.stderr).toBe(0)
    expect(JSON.parse((await run(agentOff, 'get', operatorPeer, '--json')).stdout).record.version).toBe('three')
    expect(await commandsRun()).toBeGreaterThan(before)
  })

  it('a killed agent leaves a stale socket that the next agent takes over', async () => {
    const [agent] = await serving()
    process.kill(agent!.pid!, 'SIGKILL')
    await waitUntil('the socket is stale', async () => (await agents()).some((listed) => listed.stale === true))
    const answered = await run(agentOn, 'get', operatorPeer)
    expect(answered.code, answered.stderr).toBe(0) // ran on its own, and started a new agent
    await waitUntil('a new agent', async () => (await serving()).some((listed) => listed.pid !== agent!.pid), 60_000)
    expect(await agents()).toHaveLength(1)
  })

  it('exits on agent stop, when its cluster file changes, and when idle', async () => {
    expect((await serving()).length).toBe(1)
    const stopped = await nodeledger(['agent', 'stop'], { env: agentOn })
    expect(stopped.stdout).toContain('stopped 1')
    expect(readdirSync(agentDir).filter((name) => name.endsWith('.sock'))).toEqual([])

    await run(agentOn, 'get', operatorPeer)
    await waitUntil('an agent', async () => (await serving()).length === 1, 60_000)
    appendFileSync(file, '\n') // the same cluster, another file: a new agent serves it
    await waitUntil('the old agent exits', async () => (await agents()).length === 0, 30_000)

    // Watched on the file system, not with `agent status`: on a loaded machine one CLI run can take
    // longer than the whole idle time, and the poll would miss the agent.
    const sockets = (): string[] => readdirSync(agentDir).filter((name) => name.endsWith('.sock'))
    const idle = envWith({ NODELEDGER_AGENT_IDLE_S: '2' })
    await run(idle, 'get', operatorPeer)
    await waitUntil('an agent listens', async () => sockets().length === 1, 60_000, 20)
    await waitUntil('the idle agent exits and removes its socket', async () => sockets().length === 0, 30_000, 20)
    expect(existsSync(agentDir)).toBe(true)
  })

  it('is not used when turned off (NODELEDGER_AGENT=off)', async () => {
    const off = await run(agentOff, 'get', operatorPeer)
    expect(off.code).toBe(0)
    expect(await agents()).toEqual([])
  })
})
