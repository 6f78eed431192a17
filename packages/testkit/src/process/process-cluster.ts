import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadOrCreateKey } from '@nodeledger/authority'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../..')
const CLI = join(ROOT, 'packages/cli/src/main.ts')
/**
 * Member ids stay below this: replica N listens on the loopback address 10 + N past 127.0.0.0
 * (127.0.0.11 for replica 1, as `cluster init` writes; 127.0.1.0 for replica 246), and the whole
 * of 127.0.0.0/16 is more than any run adds. Ids are never reused, so a long run that replaces
 * replicas again and again walks up this range.
 */
export const MEMBER_ID_MAX = 60_000

export interface ProcessClusterOptions {
  replicas: 3 | 5
  /** Override cluster-file settings (snapshotEveryEntries, timing). */
  snapshotEveryEntries?: number
  /** The cluster file's `timing.leaseReads`: the leader serves `lease` reads from its lease. Default off. */
  leaseReads?: boolean
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

/** Where a replica added after creation listens, its key and its data dir (`--multiaddr --key --data`). */
export interface MemberSelf {
  multiaddr: string
  keyFile: string
  dataDir: string
}

export interface StartOptions {
  /** Extra environment for this start only (e.g. libfaketime's, to skew its clock). */
  env?: Readonly<Record<string, string>>
  /** Default: `new` when the replica's data dir does not exist yet, else `existing`. */
  initialClusterState?: 'new' | 'existing'
  /**
   * A member added after creation (not in the cluster file): where it listens, its key, its data
   * dir. Default for a member made by `prepareMember`: its own.
   */
  self?: MemberSelf
}

export interface ClusterFileShape {
  replicas: Array<{ id: number; multiaddr: string; dataDir: string; keyFile: string; http?: string }>
  operators: Array<{ peerId: string; keyFile: string }>
  snapshotEveryEntries: number
  timing: { tickIntervalMs: number; heartbeatTicks: number; electionTimeoutTicks: number; leaseReads: boolean }
}

/** A replica the harness knows of: a founder of the cluster file, or a member added since. */
interface KnownReplica extends MemberSelf {
  readonly id: number
  readonly peerId: string
  /** Added after creation: started with its own --multiaddr, --key and --data. */
  readonly added: boolean
}

interface Running {
  readonly child: ChildProcess
  readonly exit: Promise<number | null>
}

/**
 * Real replica processes for integration and fault tests: `nodeledger authority` children, each
 * logging to its own file in a temporary run dir, killed and restarted at will. Everything listens
 * on loopback (127.0.0.11 upwards).
 *
 * The membership can change: `prepareMember` makes the key, data dir and address of a new member
 * (the next id never used), `admit` and `retire` move ids in and out of `ids` (the members as the
 * harness knows them), and `writeBootstrapList` rewrites the cluster file's replicas to the current
 * members, as an operator keeps the bootstrap list current after replacing a replica. The
 * membership of record is the replicas' log's; the API changes it (PROTOCOL.md "Membership").
 */
export class ProcessCluster {
  readonly dir: string
  readonly clusterPath: string
  readonly port: number
  #file: ClusterFileShape
  readonly #known = new Map<number, KnownReplica>()
  readonly #members = new Set<number>()
  readonly #children = new Map<number, Running>()
  /** Exit code of each replica's last process, once it ended (kept for waitExit after the fact). */
  readonly #lastExit = new Map<number, number | null>()
  /** Size of each replica's log when its current process started: what it logged since is its own. */
  readonly #logOffset = new Map<number, number>()
  private readonly prefix: readonly string[]

  private constructor(dir: string, prefix: readonly string[] = []) {
    this.dir = dir
    this.prefix = prefix
    this.clusterPath = join(dir, 'cluster.json')
    this.#file = this.#readFile()
    for (const replica of this.#file.replicas) {
      this.#known.set(replica.id, { ...replica, peerId: peerIdOf(replica.multiaddr), added: false })
      this.#members.add(replica.id)
    }
    this.port = Number(/\/tcp\/(\d+)/.exec(this.#file.replicas[0]!.multiaddr)![1])
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
    if (options.snapshotEveryEntries !== undefined || options.leaseReads !== undefined || options.http === true) {
      const file = JSON.parse(readFileSync(clusterPath, 'utf8')) as ClusterFileShape
      if (options.snapshotEveryEntries !== undefined) file.snapshotEveryEntries = options.snapshotEveryEntries
      if (options.leaseReads !== undefined) file.timing.leaseReads = options.leaseReads
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

  /** The cluster file as last written, paths made absolute. */
  get file(): ClusterFileShape {
    return this.#file
  }

  /** The members as the harness knows them (founders, plus members admitted, minus members retired), ascending. */
  get ids(): number[] {
    return [...this.#members].sort((a, b) => a - b)
  }

  /** The current members' multiaddrs, in id order: the bootstrap list a client needs. */
  get multiaddrs(): string[] {
    return this.ids.map((id) => this.multiaddrOf(id))
  }

  multiaddrOf(id: number): string {
    return this.#replica(id).multiaddr
  }

  peerIdOf(id: number): string {
    return this.#replica(id).peerId
  }

  dataDirOf(id: number): string {
    return this.#replica(id).dataDir
  }

  /** Every replica id this cluster ever had, retired ones included. */
  get knownIds(): number[] {
    return [...this.#known.keys()].sort((a, b) => a - b)
  }

  /** The id a new member gets: one above every id this cluster ever had (ids are never reused). */
  nextMemberId(): number {
    return Math.max(0, ...this.#known.keys()) + 1
  }

  /**
   * Make a new member's key, data dir path and address under the next unused id, as an operator
   * does before `member add`: `replica-N/peer.key`, `replica-N/data`, 127.0.0.(10+N) on the
   * cluster's port. It is known (startable) but not yet a member: `admit` it once added.
   */
  async prepareMember(): Promise<KnownReplica> {
    const id = this.nextMemberId()
    if (id > MEMBER_ID_MAX) throw new Error(`no member id left: ids are never reused and ${MEMBER_ID_MAX} is the last`)
    const replicaDir = join(this.dir, `replica-${id}`)
    mkdirSync(replicaDir, { recursive: true })
    const keyFile = join(replicaDir, 'peer.key')
    const peerId = (await loadOrCreateKey(keyFile)).publicKey.toString()
    const replica: KnownReplica = {
      id,
      peerId,
      multiaddr: `/ip4/${loopbackAddressOf(id)}/tcp/${this.port}/p2p/${peerId}`,
      keyFile,
      dataDir: join(replicaDir, 'data'),
      added: true,
    }
    this.#known.set(id, replica)
    return replica
  }

  /** `id` counts as a member from now on (in `ids`, restarted by whoever makes the cluster whole). */
  admit(id: number): void {
    this.#replica(id)
    this.#members.add(id)
  }

  /** `id` is a member no more: out of `ids`, never started again by the harness. Its process must be stopped. */
  retire(id: number): void {
    this.#members.delete(id)
  }

  /**
   * Rewrite the cluster file's replicas to the current members (the file is the bootstrap list: a
   * member joining later asks the replicas listed there, and clients start from it). Atomic: a
   * replica starting meanwhile reads the old file or the new, never half of one.
   */
  writeBootstrapList(): void {
    const raw = JSON.parse(readFileSync(this.clusterPath, 'utf8')) as ClusterFileShape
    raw.replicas = this.ids.map((id) => {
      const replica = this.#replica(id)
      return {
        id,
        multiaddr: replica.multiaddr,
        dataDir: relative(this.dir, replica.dataDir),
        keyFile: relative(this.dir, replica.keyFile),
      }
    })
    const temporary = `${this.clusterPath}.tmp`
    writeFileSync(temporary, `${JSON.stringify(raw, null, 2)}\n`)
    renameSync(temporary, this.clusterPath)
    this.#file = this.#readFile()
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
    if (this.#children.has(id)) throw new Error(`replica ${id} is already running`)
    const known = this.#known.get(id)
    // A member added after creation is started with its own address, key and data dir, always.
    const self = options.self ?? (known?.added === true ? known : undefined)
    if (options.self !== undefined && known === undefined) {
      // A caller that made the member itself (test/authority-membership.test.ts): know it from now on.
      this.#known.set(id, { id, ...options.self, peerId: peerIdOf(options.self.multiaddr), added: true })
      this.#members.add(id)
    }
    this.#logOffset.set(id, existsSync(this.logPath(id)) ? statSync(this.logPath(id)).size : 0)
    const log = createWriteStream(this.logPath(id), { flags: 'a' })
    // As scripts/cluster.sh does: a founder that never got past deciding how to start (no
    // replica.json in its data dir, which the replica writes once it joined or created the cluster;
    // a founder killed while waiting for the others has a data dir without one) takes part in
    // creating the cluster (`new`); any other start is `existing`. A wiped founder under `new` is
    // refused by its peers, who know it ran.
    const dataDir = known?.dataDir
    const founderNeverRan = self === undefined && dataDir !== undefined && !existsSync(join(dataDir, 'replica.json'))
    const state = options.initialClusterState ?? (founderNeverRan ? 'new' : 'existing')
    const selfArgs =
      self === undefined ? [] : ['--multiaddr', self.multiaddr, '--key', self.keyFile, '--data', self.dataDir]
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
      ...selfArgs,
    ]
    const env = options.env === undefined ? process.env : { ...process.env, ...options.env }
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env })
    child.stdout!.pipe(log)
    child.stderr!.pipe(log)
    this.#lastExit.delete(id)
    const running: Running = {
      child,
      exit: new Promise((resolve) =>
        child.once('exit', (code) => {
          // A replica that ends on its own (a refusal to start, a fatal error) is not running any more.
          if (this.#children.get(id) === running) this.#children.delete(id)
          this.#lastExit.set(id, code)
          resolve(code)
        }),
      ),
    }
    this.#children.set(id, running)
  }

  startAll(): void {
    for (const id of this.ids) this.start(id)
  }

  /** The replica's pid while it runs (the node process itself: the prefix must exec, not fork). */
  pidOf(id: number): number | undefined {
    return this.#children.get(id)?.child.pid
  }

  isRunning(id: number): boolean {
    return this.#children.has(id)
  }

  /** Wait (at most `timeoutMs`) for replica `id` to exit on its own; returns its exit code (also when it already has). */
  async waitExit(id: number, timeoutMs: number): Promise<number | null> {
    const running = this.#children.get(id)
    if (running === undefined) {
      if (this.#lastExit.has(id)) return this.#lastExit.get(id)!
      throw new Error(`replica ${id} is not running`)
    }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`replica ${id} did not exit within ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      return await Promise.race([running.exit, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Send a signal and wait for the process to end. */
  async kill(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const running = this.#children.get(id)
    if (running === undefined) return null
    running.child.kill(signal)
    return await running.exit
  }

  signal(id: number, signal: NodeJS.Signals): void {
    this.#children.get(id)?.child.kill(signal)
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

  /** What the replica's latest process logged (the log file is appended to across restarts). */
  logOfLastStart(id: number): string {
    try {
      return readFileSync(this.logPath(id))
        .subarray(this.#logOffset.get(id) ?? 0)
        .toString('utf8')
    } catch {
      return ''
    }
  }

  async stopAll(options: { keepDir?: boolean } = {}): Promise<void> {
    await Promise.all([...this.#children.keys()].map((id) => this.kill(id, 'SIGKILL')))
    if (options.keepDir !== true) rmSync(this.dir, { recursive: true, force: true })
  }

  #replica(id: number): KnownReplica {
    const replica = this.#known.get(id)
    if (replica === undefined) throw new Error(`replica ${id} is unknown to this cluster`)
    return replica
  }

  #readFile(): ClusterFileShape {
    const raw = JSON.parse(readFileSync(this.clusterPath, 'utf8')) as ClusterFileShape
    // Paths in the file are relative to it; callers get them absolute.
    const absolute = (path: string): string => (isAbsolute(path) ? path : join(this.dir, path))
    return {
      ...raw,
      replicas: raw.replicas.map((replica) => ({
        ...replica,
        dataDir: absolute(replica.dataDir),
        keyFile: absolute(replica.keyFile),
      })),
      operators: raw.operators.map((operator) => ({ ...operator, keyFile: absolute(operator.keyFile) })),
    }
  }
}

/** Replica N's loopback address: 10 + N past 127.0.0.0 (127.0.0.11 for 1, as `cluster init` writes). */
export function loopbackAddressOf(id: number): string {
  if (!Number.isSafeInteger(id) || id < 1 || id > MEMBER_ID_MAX) throw new RangeError(`member id ${id} out of range`)
  const offset = 10 + id
  return `127.0.${offset >> 8}.${offset & 255}`
}

function peerIdOf(multiaddr: string): string {
  const match = /\/p2p\/([^/]+)$/.exec(multiaddr)
  if (match === null) throw new Error(`${multiaddr} does not end in /p2p/<peerId>`)
  return match[1]!
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
