import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync, createWriteStream, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../..')
const CLI = join(ROOT, 'packages/cli/src/main.ts')

export interface ProcessClusterOptions {
  replicas: 3 | 5
  /** Override cluster-file settings (snapshotEveryEntries, timing). */
  snapshotEveryEntries?: number
  /** TCP port every replica listens on (each has its own 127.0.0.x); default: random in 20000-39999. */
  port?: number
  /**
   * An argv prefix every replica runs under, e.g. `['ip', 'netns', 'exec', NS]` to start it inside
   * a network namespace. It must exec (not fork) the command, so signals reach the replica.
   */
  prefix?: readonly string[]
  /**
   * Give every replica an ops HTTP listener (cluster file `http`): on its own 127.0.0.x address,
   * at the replica port + 1. `httpUrl(id)` is where to reach it.
   */
  http?: boolean
}

export interface StartOptions {
  /** Extra environment for this start only (e.g. libfaketime's, to skew its clock). */
  env?: Readonly<Record<string, string>>
  /** Default: `new` when the replica's data dir does not exist yet, else `existing`. */
  initialClusterState?: 'new' | 'existing'
  /** A member added after creation (not in the cluster file): where it listens, its key, its data dir. */
  self?: { multiaddr: string; keyFile: string; dataDir: string }
}

export interface ClusterFileShape {
  replicas: Array<{ id: number; multiaddr: string; dataDir: string; keyFile: string; http?: string }>
  operators: Array<{ peerId: string; keyFile: string }>
  snapshotEveryEntries: number
  timing: { tickIntervalMs: number; heartbeatTicks: number; electionTimeoutTicks: number; leaseReads: boolean }
}

/**
 * Real replica processes for integration and fault tests: `nodeledger authority` children, each
 * logging to its own file in a temporary run dir, killed and restarted at will. Everything listens
 * on loopback (127.0.0.11 upwards).
 */
export class ProcessCluster {
  readonly dir: string
  readonly clusterPath: string
  readonly file: ClusterFileShape
  private readonly children = new Map<number, ChildProcess>()
  private readonly exits = new Map<number, Promise<number | null>>()
  private readonly prefix: readonly string[]

  private constructor(dir: string, prefix: readonly string[] = []) {
    this.dir = dir
    this.prefix = prefix
    this.clusterPath = join(dir, 'cluster.json')
    const raw = JSON.parse(readFileSync(this.clusterPath, 'utf8')) as ClusterFileShape
    // Paths in the file are relative to it; callers get them absolute.
    const absolute = (path: string): string => (isAbsolute(path) ? path : join(dir, path))
    this.file = {
      ...raw,
      replicas: raw.replicas.map((replica) => ({
        ...replica,
        dataDir: absolute(replica.dataDir),
        keyFile: absolute(replica.keyFile),
      })),
      operators: raw.operators.map((operator) => ({ ...operator, keyFile: absolute(operator.keyFile) })),
    }
  }

  static create(options: ProcessClusterOptions): ProcessCluster {
    const dir = mkdtempSync(join(tmpdir(), 'nodeledger-cluster-'))
    const port = options.port ?? 20000 + Math.floor(Math.random() * 20000)
    const init = spawnSync(
      process.execPath,
      [CLI, 'cluster', 'init', '--replicas', String(options.replicas), '--dir', dir, '--port', String(port), '--json'],
      { encoding: 'utf8' },
    )
    if (init.status !== 0) throw new Error(`cluster init failed (${init.status}): ${init.stderr}`)
    const clusterPath = join(dir, 'cluster.json')
    if (options.snapshotEveryEntries !== undefined || options.http === true) {
      const file = JSON.parse(readFileSync(clusterPath, 'utf8')) as ClusterFileShape
      if (options.snapshotEveryEntries !== undefined) file.snapshotEveryEntries = options.snapshotEveryEntries
      if (options.http === true) {
        for (const replica of file.replicas) {
          const ip = /^\/ip4\/([^/]+)\//.exec(replica.multiaddr)?.[1] ?? '127.0.0.1'
          replica.http = `${ip}:${port + 1}`
        }
      }
      writeFileSync(clusterPath, JSON.stringify(file, null, 2))
    }
    return new ProcessCluster(dir, options.prefix)
  }

  get ids(): number[] {
    return this.file.replicas.map((replica) => replica.id)
  }

  get multiaddrs(): string[] {
    return this.file.replicas.map((replica) => replica.multiaddr)
  }

  multiaddrOf(id: number): string {
    return this.file.replicas.find((replica) => replica.id === id)!.multiaddr
  }

  /** The base URL of replica `id`'s ops HTTP listener (created with `http: true`). */
  httpUrl(id: number): string {
    const http = this.file.replicas.find((replica) => replica.id === id)?.http
    if (http === undefined) throw new Error(`replica ${id} has no http listener (create the cluster with http: true)`)
    return `http://${http}`
  }

  logPath(id: number): string {
    return join(this.dir, `replica-${id}.log`)
  }

  start(id: number, options: StartOptions = {}): void {
    if (this.children.has(id)) throw new Error(`replica ${id} is already running`)
    const log = createWriteStream(this.logPath(id), { flags: 'a' })
    // As scripts/cluster.sh does: a founder whose data dir was never created takes part in creating
    // the cluster (`new`); any other start is `existing`. A wiped founder under `new` is refused by
    // its peers, who know it ran.
    const dataDir = this.file.replicas.find((replica) => replica.id === id)?.dataDir
    const founderNeverRan = options.self === undefined && dataDir !== undefined && !existsSync(dataDir)
    const state = options.initialClusterState ?? (founderNeverRan ? 'new' : 'existing')
    const self =
      options.self === undefined
        ? []
        : ['--multiaddr', options.self.multiaddr, '--key', options.self.keyFile, '--data', options.self.dataDir]
    const argv = [
      ...this.prefix,
      process.execPath,
      CLI,
      'authority',
      '--cluster',
      this.clusterPath,
      '--id',
      String(id),
      '--initial-cluster-state',
      state,
      ...self,
    ]
    const env = options.env === undefined ? process.env : { ...process.env, ...options.env }
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env })
    child.stdout!.pipe(log)
    child.stderr!.pipe(log)
    this.children.set(id, child)
    this.exits.set(id, new Promise((resolve) => child.once('exit', (code) => resolve(code))))
  }

  startAll(): void {
    for (const id of this.ids) this.start(id)
  }

  /** The replica's pid while it runs (the node process itself: the prefix must exec, not fork). */
  pidOf(id: number): number | undefined {
    return this.children.get(id)?.pid
  }

  isRunning(id: number): boolean {
    return this.children.has(id)
  }

  /** Wait (at most `timeoutMs`) for replica `id` to exit on its own; returns its exit code. */
  async waitExit(id: number, timeoutMs: number): Promise<number | null> {
    const exit = this.exits.get(id)
    if (exit === undefined) throw new Error(`replica ${id} is not running`)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`replica ${id} did not exit within ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      const code = await Promise.race([exit, timeout])
      this.children.delete(id)
      this.exits.delete(id)
      return code
    } finally {
      clearTimeout(timer)
    }
  }

  /** Send a signal and wait for the process to end. */
  async kill(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const child = this.children.get(id)
    if (child === undefined) return null
    child.kill(signal)
    const code = await this.exits.get(id)!
    this.children.delete(id)
    this.exits.delete(id)
    return code
  }

  signal(id: number, signal: NodeJS.Signals): void {
    this.children.get(id)?.kill(signal)
  }

  /** The last lines of a replica's log, for a failing test's message. */
  tail(id: number, lines = 30): string {
    try {
      return readFileSync(this.logPath(id), 'utf8').trim().split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  logText(id: number): string {
    try {
      return readFileSync(this.logPath(id), 'utf8')
    } catch {
      return ''
    }
  }

  async stopAll(options: { keepDir?: boolean } = {}): Promise<void> {
    await Promise.all([...this.children.keys()].map((id) => this.kill(id, 'SIGKILL')))
    if (options.keepDir !== true) rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Poll `condition` every `intervalMs` until it holds or `timeoutMs` passes (then throw with `what`). */
export async function waitUntil<T>(
  what: string,
  condition: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await condition()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      lastError = error
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError !== undefined ? ` (last error: ${(lastError as Error).message})` : ''}`,
  )
}
