/**
 * The `cli` workload: how long an operator waits for the command line. Each of `--help`, `status`,
 * `get` and `put` is run N times as a new process against a running 3-replica cluster, and timed
 * from spawn to exit (the whole thing a person waits for: process start, module loading, connect,
 * the request, the exit). nodeledger runs as installed (node_modules/.bin/nodeledger: pnpm's shim,
 * the Node 24 wrapper, bin/nodeledger.mjs and its bundle); etcd's counterparts are etcdctl's
 * (`--help`, `endpoint status`, `get`, `put`) against a 3-member etcd.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Progress } from './progress.ts'
import { summarize } from './stats.ts'
import type { LatencySummary } from './stats.ts'
import type { Cleanup } from './target.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..')
export const CLI_RUNS_DEFAULT = 20
export const CLI_COMMANDS = ['help', 'status', 'get', 'put'] as const
export type CliCommand = (typeof CLI_COMMANDS)[number]
/** A command that takes longer than this is stuck: it is killed and counted as failed. */
const COMMAND_TIMEOUT_MS = 30_000
const HEALTHY_TIMEOUT_MS = 60_000

export interface CliResult extends LatencySummary {
  /** The command line measured, for the JSON (paths shortened). */
  command: string
  runs: number
  failures: number
  firstError?: string
}

/** How a system's commands are spelled; `put` gets the run number so that each writes anew. */
export interface CliTarget {
  readonly commands: Record<Exclude<CliCommand, 'put'>, readonly string[]> & { put: (run: number) => string[] }
  readonly env?: Readonly<Record<string, string>>
  close(): Promise<void>
}

export function findEtcdctl(): string | undefined {
  for (const candidate of [process.env.ETCDCTL_BIN, '/usr/bin/etcdctl', '/usr/local/bin/etcdctl']) {
    if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return candidate
  }
  const which = spawnSync('sh', ['-c', 'command -v etcdctl'], { encoding: 'utf8' })
  const found = which.stdout.trim()
  return which.status === 0 && found !== '' ? found : undefined
}

/** One run: spawn to exit, ms; throws on a non-zero exit or a timeout. */
function timeOnce(argv: readonly string[], env: Readonly<Record<string, string>> | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: env === undefined ? process.env : { ...process.env, ...env },
    })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 2_000) stderr += chunk.toString()
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      if (code === 0) resolve(ms)
      else reject(new Error(`exit ${code ?? signal}: ${stderr.trim().split('\n').slice(-2).join(' ').slice(0, 160)}`))
    })
  })
}

/** Every command `runs` times, one after the other (a person types one at a time). */
export async function runCli(
  system: string,
  target: CliTarget,
  runs: number,
  progress: Progress,
): Promise<Record<CliCommand, CliResult>> {
  const results = {} as Record<CliCommand, CliResult>
  for (const command of CLI_COMMANDS) {
    const bar = progress.phase(`${system} cli ${command}`, runs, 'runs')
    const samples: number[] = []
    let failures = 0
    let firstError: string | undefined
    for (let run = 0; run < runs; run++) {
      const argv = command === 'put' ? target.commands.put(run) : target.commands[command]
      try {
        samples.push(await timeOnce(argv, target.env))
      } catch (error) {
        failures++
        firstError ??= (error as Error).message
      }
      bar.update(run + 1, samples.length === 0 ? '' : `last ${Math.round(samples.at(-1)!)} ms`)
    }
    const summary = summarize(samples)
    bar.done(`p50 ${summary.p50Ms} ms${failures > 0 ? `, ${failures} failed` : ''}`)
    const shown = command === 'put' ? target.commands.put(0) : target.commands[command]
    results[command] = {
      ...summary,
      command: shown.map((part) => part.replace(`${ROOT}/`, '')).join(' '),
      runs,
      failures,
      ...(firstError === undefined ? {} : { firstError }),
    }
  }
  return results
}

/** The installed command, as an operator runs it (falls back to the launcher if the install did not link it). */
function nodeledgerArgv(): string[] {
  const installed = join(ROOT, 'node_modules/.bin/nodeledger')
  return existsSync(installed) ? [installed] : [process.execPath, join(ROOT, 'packages/cli/bin/nodeledger.mjs')]
}

/**
 * How nodeledger's commands run: `agent` as installed (the first command starts the CLI agent, a
 * warm-up run the bench does not time; each timed command is then a Node start and a question to
 * the agent), `cold` with NODELEDGER_AGENT=off (each command its own client: load libp2p, dial,
 * handshake), `src` cold and from source (no bundle).
 */
export type NodeledgerCliVariant = 'agent' | 'cold' | 'src'

/** A 3-replica nodeledger cluster (ProcessCluster) and its commands; one record written first for `get`. */
export async function openNodeledgerCli(cleanups: Set<Cleanup>, variant: NodeledgerCliVariant): Promise<CliTarget> {
  const { ProcessCluster } = await import('@nodeledger/testkit')
  const cluster = ProcessCluster.create({ replicas: 3 })
  const stop: Cleanup = () => cluster.stopAll()
  cleanups.add(stop)
  cluster.startAll()
  const cli = nodeledgerArgv()
  const file = cluster.clusterPath
  const operator = (JSON.parse(readFileSync(file, 'utf8')) as { operators: Array<{ peerId: string }> }).operators[0]!
    .peerId
  // The bench's own agent dir: no agent of the person running it is used or stopped.
  const agentDir = mkdtempSync(join(tmpdir(), 'nodeledger-bench-agents-'))
  const env: Record<string, string> = {
    NODELEDGER_AGENT_DIR: agentDir,
    NODELEDGER_AGENT: variant === 'agent' ? 'on' : 'off',
    ...(variant === 'src' ? { NODELEDGER_FROM_SOURCE: '1' } : {}),
  }
  const spawnEnv = { ...process.env, ...env }
  const deadline = Date.now() + HEALTHY_TIMEOUT_MS
  for (;;) {
    const put = spawnSync(cli[0]!, [...cli.slice(1), 'put', operator, 'version=bench-0', '--cluster', file], {
      encoding: 'utf8',
      env: spawnEnv,
    })
    if (put.status === 0) break
    if (Date.now() > deadline)
      throw new Error(`nodeledger cluster not writable within ${HEALTHY_TIMEOUT_MS} ms: ${put.stderr.trim()}`)
    await sleep(200)
  }
  const stopAgents = (): void => {
    spawnSync(cli[0]!, [...cli.slice(1), 'agent', 'stop'], { env: spawnEnv })
    rmSync(agentDir, { recursive: true, force: true })
  }
  if (variant === 'agent') {
    // The put above started the agent: wait until it serves (its start is not what is timed).
    for (;;) {
      const listed = spawnSync(cli[0]!, [...cli.slice(1), 'agent', 'status', '--json'], {
        encoding: 'utf8',
        env: spawnEnv,
      })
      const agents =
        listed.status === 0 ? (JSON.parse(listed.stdout) as { agents: Array<{ pid?: number }> }).agents : []
      if (agents.some((agent) => agent.pid !== undefined)) break
      if (Date.now() > deadline) throw new Error(`the CLI agent did not start within ${HEALTHY_TIMEOUT_MS} ms`)
      await sleep(200)
    }
  }
  return {
    commands: {
      help: [...cli, '--help'],
      status: [...cli, 'status', '--cluster', file],
      get: [...cli, 'get', operator, '--cluster', file],
      put: (run) => [...cli, 'put', operator, `version=bench-${run + 1}`, '--cluster', file],
    },
    env,
    close: async () => {
      cleanups.delete(stop)
      stopAgents()
      await cluster.stopAll()
    },
  }
}

/** A 3-member etcd and etcdctl's counterparts of the four commands. */
export async function openEtcdCli(
  etcdBinary: string,
  etcdctl: string,
  port: number,
  cleanups: Set<Cleanup>,
): Promise<CliTarget> {
  const { EtcdCluster, EtcdTarget, ETCD_TIMING_DEFAULT } = await import('./etcd.ts')
  const cluster = EtcdCluster.create(etcdBinary, ETCD_TIMING_DEFAULT, port, 3)
  const stop: Cleanup = () => cluster.stopAll()
  cleanups.add(stop)
  cluster.startAll()
  await new EtcdTarget(cluster, ['key'], 16).waitHealthy(HEALTHY_TIMEOUT_MS)
  const endpoints = `--endpoints=${cluster.members.map((member) => member.clientUrl).join(',')}`
  const env = { ETCDCTL_API: '3' }
  const put = spawnSync(etcdctl, [endpoints, 'put', 'bench-key', 'bench-0'], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  })
  if (put.status !== 0) throw new Error(`etcdctl put failed: ${put.stderr.trim()}`)
  return {
    commands: {
      help: [etcdctl, '--help'],
      status: [etcdctl, endpoints, 'endpoint', 'status', '-w', 'table'],
      get: [etcdctl, endpoints, 'get', 'bench-key'],
      put: (run) => [etcdctl, endpoints, 'put', 'bench-key', `bench-${run + 1}`],
    },
    env,
    close: async () => {
      cleanups.delete(stop)
      await cluster.stopAll()
    },
  }
}
