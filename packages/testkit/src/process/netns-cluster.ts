import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { StatusResult } from '@nodeledger/protocol'
import type { RegisterValue } from '../linearizability/index.ts'
import { Netns, faketimeEnv } from './netns.ts'
import { ProcessCluster, waitUntil } from './process-cluster.ts'

const WORKLOAD = join(dirname(fileURLToPath(import.meta.url)), '../chaos/workload.ts')
/** How long one request to the workload agent may take before the harness gives up on it. */
const AGENT_REQUEST_TIMEOUT_MS = 60_000

export interface NetnsClusterOptions {
  readonly replicas: 3 | 5
  readonly snapshotEveryEntries?: number
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
}

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

  async request(cmd: string): Promise<Record<string, unknown>> {
    if (this.#exited) throw new Error('workload agent has exited')
    const id = this.#nextId++
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => this.#pending.set(id, { resolve, reject }))
    this.#child.stdin!.write(`${JSON.stringify({ id, cmd })}\n`)
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

  /** Every replica's status, asked from inside the namespace; a dead, paused or cut-off one gives an error. */
  async observe(): Promise<ReplicaObservation[]> {
    const answer = await this.agent.request('status')
    const statuses = answer.statuses as Array<{ multiaddr: string; status?: StatusResult; error?: string }>
    return statuses.map((entry, i) => {
      const id = this.ids[i]!
      return entry.status !== undefined ? { id, status: entry.status } : { id, error: entry.error ?? 'UNAVAILABLE' }
    })
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
