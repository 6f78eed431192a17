import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createWriteStream, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { MemberResult, StatusResult } from '@nodeledger/protocol'
import type { WorkloadClientInfo } from '../chaos/workload.ts'
import type { RegisterValue } from '../linearizability/index.ts'
import { Netns, faketimeEnv } from './netns.ts'
import { ProcessCluster, waitUntil } from './process-cluster.ts'

const WORKLOAD = join(dirname(fileURLToPath(import.meta.url)), '../chaos/workload.ts')
/** How long one request to the workload agent may take before the harness gives up on it. */
const AGENT_REQUEST_TIMEOUT_MS = 60_000

export interface NetnsClusterOptions {
  readonly replicas: 3 | 5
  readonly snapshotEveryEntries?: number
  /** The cluster file's `timing.leaseReads`: the leader serves `lease` reads from its lease. */
  readonly leaseReads?: boolean
}

/** One replica's answer to a status ask made from inside the namespace. */
export interface ReplicaObservation {
  readonly id: number
  readonly status?: StatusResult
  readonly error?: string
}

export interface WorkloadOptions {
  readonly historyPath: string
  readonly clients: number
  readonly keys: number
  /** Mean pause between one client's operations (uniform in [0, 2 × thinkMs]). */
  readonly thinkMs: number
  /** Consistency of the clients' reads; anything but linearizable is for the negative control. */
  readonly readConsistency?: 'linearizable' | 'lease' | 'stale'
  /** Consistency of the sticky readers' reads (default: readConsistency): `lease` with leaseReads. */
  readonly readerConsistency?: 'linearizable' | 'lease' | 'stale'
}

/** A membership change's answer, as the workload agent relays it (it holds the operator key). */
export type MemberAnswer =
  | { readonly ok: true; readonly result: MemberResult }
  | { readonly ok: false; readonly code: string; readonly message: string }

export interface WorkloadCounts {
  readonly ok: number
  readonly fail: number
  readonly info: number
}

/**
 * The workload process inside the namespace, driven over its stdin/stdout (see chaos/workload.ts).
 * It is also the harness's eyes: the test process is outside the namespace and cannot reach a
 * replica, so every status ask goes through it.
 */
export class WorkloadAgent {
  readonly #child: ChildProcess
  readonly #pending = new Map<
    number,
    { resolve: (value: Record<string, unknown>) => void; reject: (error: Error) => void }
  >()
  #nextId = 1
  #exited = false
  /** Wall-clock ms of the agent's performance.now() zero: history time + this = Date.now() time. */
  timeOriginMs = 0
  keys: string[] = []
  /** What each client is: role, implementation, read consistency, history process. */
  clients: WorkloadClientInfo[] = []

  private constructor(child: ChildProcess) {
    this.#child = child
  }

  static async spawn(
    netns: Netns,
    clusterPath: string,
    options: WorkloadOptions,
    logPath: string,
  ): Promise<WorkloadAgent> {
    const argv = [
      ...netns.execPrefix,
      process.execPath,
      WORKLOAD,
      '--cluster',
      clusterPath,
      '--out',
      options.historyPath,
      '--clients',
      String(options.clients),
      '--keys',
      String(options.keys),
      '--think-ms',
      String(options.thinkMs),
      '--consistency',
      options.readConsistency ?? 'linearizable',
      '--reader-consistency',
      options.readerConsistency ?? options.readConsistency ?? 'linearizable',
    ]
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
    child.stderr!.pipe(createWriteStream(logPath, { flags: 'a' }))
    const agent = new WorkloadAgent(child)
    const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
      agent.#pending.set(0, { resolve, reject })
    })
    createInterface({ input: child.stdout! }).on('line', (line) => agent.#onLine(line))
    child.once('exit', (code) => {
      agent.#exited = true
      for (const { reject } of agent.#pending.values())
        reject(new Error(`workload agent exited (code ${code}); see ${logPath}`))
      agent.#pending.clear()
    })
    const first = await withTimeout(ready, AGENT_REQUEST_TIMEOUT_MS, 'the workload agent to start')
    agent.timeOriginMs = first.timeOriginMs as number
    agent.keys = first.keys as string[]
    agent.clients = first.clients as WorkloadClientInfo[]
    return agent
  }

  #onLine(line: string): void {
    let message: Record<string, unknown>
    try {
      message = JSON.parse(line) as Record<string, unknown>
    } catch {
      return
    }
    const id = message.event === 'ready' ? 0 : (message.id as number)
    const waiter = this.#pending.get(id)
    if (waiter === undefined) return
    this.#pending.delete(id)
    if (typeof message.error === 'string') waiter.reject(new Error(`workload agent: ${message.error}`))
    else waiter.resolve(message)
  }

  async request(cmd: string, args?: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.#exited) throw new Error('workload agent has exited')
    const id = this.#nextId++
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => this.#pending.set(id, { resolve, reject }))
    this.#child.stdin!.write(`${JSON.stringify(args === undefined ? { id, cmd } : { id, cmd, args })}\n`)
    return await withTimeout(answer, AGENT_REQUEST_TIMEOUT_MS, `the workload agent's answer to ${cmd}`)
  }

  /** Closes stdin (the agent flushes and exits), then waits; kills it if it lingers. */
  async close(): Promise<void> {
    if (this.#exited) return
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()))
    this.#child.stdin!.end()
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
}

/**
 * Replicas as real processes in a network namespace of their own, each on its own 127.0.0.x
 * address (replica N on 127.0.0.(10+N)), with the faults of issue 6 at hand: kill, pause,
 * restart with a skewed clock, and iptables partitions between replica addresses. The workload
 * agent runs in the namespace too and answers status asks for the harness.
 *
 * The membership may change (the wipe-a-replica nemesis replaces a replica): `ids` are the
 * current members as the harness knows them, never 1..n after a replacement, and every fault
 * (partitions included) is cut between current members. A new member's address needs nothing of
 * the namespace: its loopback is 127.0.0.0/8, every address of which is local.
 *
 * @example
 * ```ts
 * const cluster = await NetnsCluster.start({ replicas: 3 })
 * try {
 *   const agent = await cluster.startAgent({ historyPath, clients: 5, keys: 5, thinkMs: 10 })
 *   const leader = await cluster.waitForLeader()
 *   cluster.isolate(leader.id)          // symmetric DROP between the leader and the rest
 *   cluster.heal()
 * } finally {
 *   await cluster.teardown()            // processes killed, namespace deleted
 * }
 * ```
 */
export class NetnsCluster {
  readonly netns: Netns
  readonly processes: ProcessCluster
  #agent: WorkloadAgent | undefined
  readonly #paused = new Set<number>()
  readonly #skewMs = new Map<number, number>()

  private constructor(netns: Netns, processes: ProcessCluster) {
    this.netns = netns
    this.processes = processes
  }

  /** Create the namespace and the cluster files, start every replica. Throws NetnsUnavailableError when the machine cannot. */
  static start(options: NetnsClusterOptions): NetnsCluster {
    const netns = Netns.create()
    let processes: ProcessCluster
    try {
      processes = ProcessCluster.create({
        replicas: options.replicas,
        prefix: netns.execPrefix,
        port: 7000,
        ...(options.snapshotEveryEntries === undefined ? {} : { snapshotEveryEntries: options.snapshotEveryEntries }),
        ...(options.leaseReads === undefined ? {} : { leaseReads: options.leaseReads }),
      })
    } catch (error) {
      netns.delete()
      throw error
    }
    const cluster = new NetnsCluster(netns, processes)
    processes.startAll()
    return cluster
  }

  get ids(): number[] {
    return this.processes.ids
  }

  get dir(): string {
    return this.processes.dir
  }

  get agent(): WorkloadAgent {
    if (this.#agent === undefined) throw new Error('no workload agent: call startAgent first')
    return this.#agent
  }

  /** The replica's IPv4 address, taken from its multiaddr. */
  addressOf(id: number): string {
    const match = /^\/ip4\/([^/]+)\//.exec(this.processes.multiaddrOf(id))
    if (match === null) throw new Error(`replica ${id} does not listen on an IPv4 address`)
    return match[1]!
  }

  async startAgent(options: WorkloadOptions): Promise<WorkloadAgent> {
    this.#agent = await WorkloadAgent.spawn(
      this.netns,
      this.processes.clusterPath,
      options,
      join(this.dir, 'workload.log'),
    )
    return this.#agent
  }

  /**
   * Every member's status (or those of `ids`, retired ones allowed), asked from inside the
   * namespace; a dead, paused or cut-off one gives an error.
   */
  async observe(ids: readonly number[] = this.ids): Promise<ReplicaObservation[]> {
    const answer = await this.observeWithCounts(ids)
    return answer.observations
  }

  /** `observe`, with the workload's operation counts of the same moment. */
  async observeWithCounts(
    ids: readonly number[] = this.ids,
  ): Promise<{ observations: ReplicaObservation[]; counts: WorkloadCounts & { writeOk: number } }> {
    const targets = ids.map((id) => ({ id, multiaddr: this.processes.multiaddrOf(id) }))
    const answer = await this.agent.request('status', { targets })
    const statuses = answer.statuses as Array<{ id: number; status?: StatusResult; error?: string }>
    return {
      observations: statuses.map((entry) =>
        entry.status !== undefined
          ? { id: entry.id, status: entry.status }
          : { id: entry.id, error: entry.error ?? 'UNAVAILABLE' },
      ),
      counts: answer.counts as WorkloadCounts & { writeOk: number },
    }
  }

  /** The leader with the highest term among those that answer (a cut-off old leader may still think it leads). */
  async leader(): Promise<StatusResult | undefined> {
    const leaders = (await this.observe()).flatMap((entry) => (entry.status?.role === 'leader' ? [entry.status] : []))
    return leaders.sort((a, b) => b.term - a.term)[0]
  }

  async waitForLeader(timeoutMs = 20_000): Promise<StatusResult> {
    return await waitUntil('a leader', () => this.leader(), timeoutMs, 100)
  }

  /**
   * Wait until a leader exists and every replica answers with the leader's commit applied and the
   * same registry digest: the cluster has healed and agrees.
   */
  async waitConverged(timeoutMs = 30_000): Promise<StatusResult[]> {
    return await waitUntil(
      'every replica to apply the leader commit and agree',
      async () => {
        const all = await this.observe()
        const statuses = all.flatMap((entry) => (entry.status === undefined ? [] : [entry.status]))
        if (statuses.length !== all.length) return undefined
        const leader = statuses.filter((status) => status.role === 'leader').sort((a, b) => b.term - a.term)[0]
        if (leader === undefined || statuses.some((status) => status.applied < leader.commit)) return undefined
        if (new Set(statuses.map((status) => status.registryDigest)).size !== 1) return undefined
        return statuses
      },
      timeoutMs,
      200,
    )
  }

  isRunning(id: number): boolean {
    return this.processes.isRunning(id)
  }

  async kill(id: number): Promise<void> {
    await this.processes.kill(id, 'SIGKILL')
    this.#paused.delete(id)
  }

  /** SIGTERM: a leader hands over before it exits. */
  async terminate(id: number): Promise<void> {
    if (this.#paused.has(id)) this.resume(id)
    await this.processes.kill(id, 'SIGTERM')
  }

  /** Start a stopped replica; with `skewMs`, its wall clock runs that far from the machine's (libfaketime). */
  restart(id: number, options: { skewMs?: number } = {}): void {
    const skewMs = options.skewMs ?? 0
    if (skewMs !== 0) this.#skewMs.set(id, skewMs)
    else this.#skewMs.delete(id)
    this.processes.start(id, skewMs === 0 ? {} : { env: faketimeEnv(skewMs) })
  }

  skewOf(id: number): number {
    return this.#skewMs.get(id) ?? 0
  }

  pause(id: number): void {
    this.processes.signal(id, 'SIGSTOP')
    this.#paused.add(id)
  }

  resume(id: number): void {
    this.processes.signal(id, 'SIGCONT')
    this.#paused.delete(id)
  }

  isPaused(id: number): boolean {
    return this.#paused.has(id)
  }

  /** Symmetric partition: no packet between any replica of `a` and any of `b`. */
  partition(a: readonly number[], b: readonly number[]): void {
    this.netns.partition(
      a.map((id) => this.addressOf(id)),
      b.map((id) => this.addressOf(id)),
    )
  }

  /** Cut `id` off from every other replica, both ways. */
  isolate(id: number): void {
    this.partition(
      [id],
      this.ids.filter((other) => other !== id),
    )
  }

  /** One-way: packets from `sources` to `targets` are dropped, the other direction flows. */
  dropOneWay(sources: readonly number[], targets: readonly number[]): void {
    for (const source of sources)
      for (const target of targets) this.netns.drop(this.addressOf(source), this.addressOf(target))
  }

  heal(): void {
    this.netns.heal()
  }

  // -------------------------------------------------------------------------------------------
  // Membership (the operator's `member replace`, step by step)

  /** Delete the replica's data dir (it must be stopped): its disk is lost. */
  wipe(id: number): void {
    if (this.isRunning(id)) throw new Error(`replica ${id} runs: stop it before wiping its data dir`)
    rmSync(this.processes.dataDirOf(id), { recursive: true, force: true })
  }

  /** A membership change through the API as the operator (the workload agent holds the operator key). */
  async member(request: {
    action: 'add' | 'promote' | 'remove'
    memberId: number
    peerId?: string
    multiaddr?: string
  }): Promise<MemberAnswer> {
    return (await this.agent.request('member', { ...request })) as unknown as MemberAnswer
  }

  /** The key, data dir and address of a new member under the next id never used (not yet added or started). */
  async prepareMember(): Promise<{ id: number; peerId: string; multiaddr: string }> {
    const member = await this.processes.prepareMember()
    return { id: member.id, peerId: member.peerId, multiaddr: member.multiaddr }
  }

  /** Start a member added through the API (`--multiaddr --key --data --initial-cluster-state existing`); it is a member from now on. */
  startMember(id: number): void {
    this.processes.admit(id)
    this.processes.start(id, { initialClusterState: 'existing' })
  }

  /**
   * `id` is no member any more, as far as the harness goes: out of `ids`, never restarted, its data
   * dir deleted (its log stays). It must not be running.
   */
  retire(id: number): void {
    if (this.isRunning(id)) throw new Error(`replica ${id} runs: stop it before retiring it`)
    this.processes.retire(id)
    this.#paused.delete(id)
    this.#skewMs.delete(id)
    rmSync(this.processes.dataDirOf(id), { recursive: true, force: true })
  }

  /**
   * After a replacement: the cluster file's replicas become the current members, and the workload's
   * clients start over from them. The file is the bootstrap list: a member joining later asks the
   * replicas listed there whether it was added (no founder may be left), and until its snapshot
   * arrives they are the only peers whose raft and snapshot streams it accepts (the leader must be
   * one of them).
   */
  async publishMembership(): Promise<void> {
    this.processes.writeBootstrapList()
    await this.agent.request('members', { multiaddrs: this.processes.multiaddrs })
  }

  /** Make the cluster whole: no rules, nothing paused, every replica running (skewed ones left as they are). */
  ensureWhole(): void {
    this.heal()
    for (const id of [...this.#paused]) this.resume(id)
    for (const id of this.ids) if (!this.isRunning(id)) this.restart(id)
  }

  /**
   * The wall-clock time stamped on the last line the replica's current process logged (pino's
   * `time`), to confirm that a skewed clock really is skewed; undefined until it has logged.
   */
  lastLoggedTimeMs(id: number): number | undefined {
    const pid = this.processes.pidOf(id)
    if (pid === undefined) return undefined
    const lines = this.processes.logText(id).trim().split('\n').reverse()
    for (const line of lines) {
      if (!line.includes(`"pid":${pid},`)) continue
      const match = /"time":(\d+)/.exec(line)
      if (match !== null) return Number(match[1])
    }
    return undefined
  }

  /** Kill everything, delete the namespace; keeps the run dir (logs, cluster file) when `keepDir`. */
  async teardown(options: { keepDir?: boolean } = {}): Promise<void> {
    try {
      await this.#agent?.close()
    } catch {
      // A dead agent is fine here.
    }
    for (const id of [...this.#paused]) this.resume(id)
    await this.processes.stopAll(options)
    this.netns.delete()
  }
}

export type FinalReads = Record<string, RegisterValue | null | 'unreadable'>

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(
            () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
            timeoutMs,
          )),
      ),
    ])
  } finally {
    clearTimeout(timer)
  }
}
