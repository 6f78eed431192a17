import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Etcd3 } from 'etcd3'
import type { IStatusResponse } from 'etcd3'
import { noop } from 'cockatiel'
import { etcdRoleChange, linesFrom, logSize, waitForElection } from './logs.ts'
import type { BenchTarget, ClientEvent, Election, LogMark, RoleChange, WriteRequest } from './target.ts'

/**
 * A 3- or 5-member etcd cluster on loopback (127.0.0.21-25, one port pair for all), data dirs in a
 * temp dir, fsync on (no --unsafe-no-fsync): the same durability nodeledger gives. Logs at info
 * level, so that they carry raft's role changes ("became leader at term 5") for the failover.
 */

export interface EtcdTiming {
  heartbeatIntervalMs: number
  electionTimeoutMs: number
}

/** etcd's own defaults. */
export const ETCD_TIMING_DEFAULT: EtcdTiming = { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }

/** Deadline of a write or read sent to the member believed to lead (etcd's own request timeout is 5 s + 2 elections). */
const REQUEST_TIMEOUT_MS = 5_000
/** Deadline of a status call made to find the leader; short, because a dead member must not hold up the search. */
const STATUS_TIMEOUT_MS = 250
/** Between rounds of the leader search while an election is under way. */
const LEADER_POLL_INTERVAL_MS = 5

export function findEtcdBinary(): string | undefined {
  for (const candidate of [process.env.ETCD_BIN, '/usr/bin/etcd', '/usr/local/bin/etcd']) {
    if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return candidate
  }
  const which = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' })
  const found = which.stdout.trim()
  return which.status === 0 && found !== '' ? found : undefined
}

export function etcdVersion(binary: string): string {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8' })
  return /etcd Version: (\S+)/.exec(result.stdout)?.[1] ?? 'unknown'
}

interface Member {
  id: number
  name: string
  host: string
  clientUrl: string
  peerUrl: string
  dataDir: string
  logPath: string
  child?: ChildProcess
  exited?: Promise<void>
  /** One single-host client per member; the bench picks the member, not the etcd3 pool. */
  client: Etcd3
}

export class EtcdCluster {
  readonly dir: string
  readonly members: Member[]
  readonly timing: EtcdTiming
  private readonly binary: string
  private readonly token: string
  private stopped = false

  private constructor(binary: string, timing: EtcdTiming, clientPort: number, members: 3 | 5) {
    this.binary = binary
    this.timing = timing
    this.dir = mkdtempSync(join(tmpdir(), 'nodeledger-bench-etcd-'))
    this.token = `bench-${process.pid}-${Date.now()}`
    this.members = Array.from({ length: members }, (_, index) => index + 1).map((id) => {
      const host = `127.0.0.${20 + id}`
      const clientUrl = `http://${host}:${clientPort}`
      return {
        id,
        name: `m${id}`,
        host,
        clientUrl,
        peerUrl: `http://${host}:${clientPort + 1}`,
        dataDir: join(this.dir, `m${id}.etcd`),
        logPath: join(this.dir, `m${id}.log`),
        client: new Etcd3({
          hosts: clientUrl,
          dialTimeout: 2_000,
          // No retries or circuit breakers inside the client: the bench retries itself and must
          // see every failure as it happens.
          faultHandling: { host: () => noop, global: noop },
        }),
      }
    })
  }

  static create(binary: string, timing: EtcdTiming, clientPort = 42379, members: 3 | 5 = 3): EtcdCluster {
    return new EtcdCluster(binary, timing, clientPort, members)
  }

  start(id: number): void {
    const member = this.member(id)
    if (member.child !== undefined) throw new Error(`etcd ${member.name} is already running`)
    const initialCluster = this.members.map((m) => `${m.name}=${m.peerUrl}`).join(',')
    const args = [
      '--name',
      member.name,
      '--data-dir',
      member.dataDir,
      '--listen-client-urls',
      member.clientUrl,
      '--advertise-client-urls',
      member.clientUrl,
      '--listen-peer-urls',
      member.peerUrl,
      '--initial-advertise-peer-urls',
      member.peerUrl,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-token',
      this.token,
      '--initial-cluster-state',
      'new',
      '--heartbeat-interval',
      String(this.timing.heartbeatIntervalMs),
      '--election-timeout',
      String(this.timing.electionTimeoutMs),
      '--log-level',
      'info',
      '--logger',
      'zap',
    ]
    const log = createWriteStream(member.logPath, { flags: 'a' })
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout!.pipe(log)
    child.stderr!.pipe(log)
    member.child = child
    member.exited = new Promise((resolve) => child.once('exit', () => resolve()))
  }

  startAll(): void {
    for (const member of this.members) this.start(member.id)
  }

  /** Sends the signal at once (before the returned promise), resolves when the process is gone. */
  kill(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const member = this.member(id)
    const child = member.child
    if (child === undefined) return Promise.resolve()
    child.kill(signal)
    const exited = member.exited!
    return exited.then(() => {
      member.child = undefined
      member.exited = undefined
      // The old channel points at a dead process; a fresh one reconnects without gRPC's backoff.
      member.client.close()
      member.client = new Etcd3({
        hosts: member.clientUrl,
        dialTimeout: 2_000,
        faultHandling: { host: () => noop, global: noop },
      })
    })
  }

  isRunning(id: number): boolean {
    return this.member(id).child !== undefined
  }

  member(id: number): Member {
    const member = this.members.find((m) => m.id === id)
    if (member === undefined) throw new Error(`no etcd member ${id}`)
    return member
  }

  status(id: number, timeoutMs = STATUS_TIMEOUT_MS): Promise<IStatusResponse> {
    return this.member(id).client.maintenance.status({ deadline: Date.now() + timeoutMs })
  }

  tail(id: number, lines = 20): string {
    try {
      return readFileSync(this.member(id).logPath, 'utf8').trim().split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  async stopAll(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await Promise.all(this.members.map((m) => this.kill(m.id)))
    for (const member of this.members) member.client.close()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * The bench's etcd client: the etcd3 npm package, one single-host client per member, and requests
 * sent to the member that leads, the way nodeledger's client sends them to its leader. That is
 * etcd's best case (a follower would forward writes to the leader, one more hop); after an error
 * the target asks every member's status until one says it leads.
 */
export class EtcdTarget implements BenchTarget {
  readonly system = 'etcd' as const
  readonly memberIds: readonly number[]
  readonly cluster: EtcdCluster
  private readonly keys: readonly string[]
  private readonly valueBytes: number
  private leaderId: number | undefined
  private leaderSearch: Promise<number> | undefined
  private readonly events: ClientEvent[] = []

  constructor(cluster: EtcdCluster, peerIds: readonly string[], valueBytes: number) {
    this.cluster = cluster
    this.memberIds = cluster.members.map((m) => m.id)
    this.keys = peerIds.map((peerId) => `/nodeledger-bench/nodes/${peerId}`)
    this.valueBytes = valueBytes
  }

  async write(request: WriteRequest): Promise<void> {
    const value = Buffer.alloc(this.valueBytes, 0x78)
    value.write(`${request.key}:${request.seq}:`, 0, 'latin1')
    const leader = await this.currentLeader()
    try {
      await this.cluster
        .member(leader)
        .client.put(this.keys[request.key]!)
        .value(value)
        .options({ deadline: Date.now() + REQUEST_TIMEOUT_MS })
        .exec()
    } catch (error) {
      this.forget(leader)
      this.note('attempt failed', errorCode(error))
      throw error
    }
  }

  async read(key: number): Promise<void> {
    const leader = await this.currentLeader()
    try {
      await this.cluster
        .member(leader)
        .client.get(this.keys[key]!)
        .serializable(false)
        .options({ deadline: Date.now() + REQUEST_TIMEOUT_MS })
        .buffer()
    } catch (error) {
      this.forget(leader)
      throw error
    }
  }

  async leader(): Promise<number> {
    this.leaderId = undefined
    return this.currentLeader()
  }

  kill(member: number): Promise<void> {
    const exited = this.cluster.kill(member, 'SIGKILL')
    return exited
  }

  async restart(member: number): Promise<void> {
    this.cluster.start(member)
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = 'no answer yet'
    while (Date.now() < deadline) {
      try {
        const statuses = await Promise.all(this.memberIds.map((id) => this.cluster.status(id, 1_000)))
        const leaders = new Set(statuses.map((s) => s.leader))
        const indexes = statuses.map((s) => Number(s.raftIndex))
        const lag = Math.max(...indexes) - Math.min(...indexes)
        const leaderKnown = statuses.some((s) => s.leader !== '0' && s.leader === s.header.member_id)
        if (leaders.size === 1 && leaderKnown && lag <= 5) {
          this.leaderId = undefined
          return
        }
        last = `leaders ${[...leaders].join(',')}, index lag ${lag}`
      } catch (error) {
        last = error instanceof Error ? error.message : String(error)
      }
      await sleep(20)
    }
    throw new Error(
      `etcd not healthy within ${timeoutMs} ms (${last})\n${this.memberIds.map((id) => `m${id}: ${this.cluster.tail(id, 5)}`).join('\n')}`,
    )
  }

  markLogs(): LogMark {
    return new Map(this.memberIds.map((id) => [id, logSize(this.cluster.member(id).logPath)]))
  }

  /** etcd 3.4 has no leader-lost fast path (and PreVote is off): every election waits out a timeout. */
  election(mark: LogMark, killed: number, killedAtMs: number, timeoutMs: number): Promise<Election | undefined> {
    const read = (): RoleChange[] =>
      this.memberIds.flatMap((id) =>
        linesFrom(this.cluster.member(id).logPath, mark.get(id) ?? 0).flatMap((line) => etcdRoleChange(id, line) ?? []),
      )
    return waitForElection(read, killed, killedAtMs, undefined, timeoutMs)
  }

  pids(): ReadonlyMap<number, number> {
    const pids = new Map<number, number>()
    for (const id of this.memberIds) {
      const pid = this.cluster.member(id).child?.pid
      if (pid !== undefined) pids.set(id, pid)
    }
    return pids
  }

  takeClientEvents(): ClientEvent[] {
    return this.events.splice(0, this.events.length)
  }

  async close(): Promise<void> {
    await this.cluster.stopAll()
  }

  private note(what: string, code?: string): void {
    this.events.push({ atMs: Date.now(), what, ...(code === undefined ? {} : { code }) })
    if (this.events.length > 1_000) this.events.splice(0, this.events.length - 1_000)
  }

  private forget(leader: number): void {
    if (this.leaderId === leader) this.leaderId = undefined
  }

  private currentLeader(): Promise<number> {
    if (this.leaderId !== undefined) return Promise.resolve(this.leaderId)
    this.leaderSearch ??= this.searchLeader().finally(() => {
      this.leaderSearch = undefined
    })
    return this.leaderSearch
  }

  /** Ask every running member; the one whose status names itself as leader is it. Bounded by REQUEST_TIMEOUT_MS. */
  private async searchLeader(): Promise<number> {
    const deadline = Date.now() + REQUEST_TIMEOUT_MS
    while (Date.now() < deadline) {
      const running = this.memberIds.filter((id) => this.cluster.isRunning(id))
      const answers = await Promise.allSettled(
        running.map(async (id) => ({ id, status: await this.cluster.status(id) })),
      )
      for (const answer of answers) {
        if (answer.status !== 'fulfilled') continue
        const { id, status } = answer.value
        if (status.leader !== '0' && status.leader === status.header.member_id) {
          this.leaderId = id
          this.note('leader found')
          return id
        }
      }
      await sleep(LEADER_POLL_INTERVAL_MS)
    }
    throw new Error(`no etcd member claims the lead within ${REQUEST_TIMEOUT_MS} ms`)
  }
}

/** etcd3's error classes (GRPCUnavailableError, ...) keep `name` at "Error": their constructor's name says more. */
function errorCode(error: unknown): string {
  if (!(error instanceof Error)) return 'error'
  const name = error.constructor.name
  return name !== '' && name !== 'Error' ? name : error.message.slice(0, 40)
}
