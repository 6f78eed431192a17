/**
 * The chaos workload: several concurrent clients writing and reading a few keys of one cluster,
 * recording every operation as a history for the linearizability checker. It runs inside the
 * test's network namespace (the test process is outside it and cannot reach the replicas), and all
 * its clients share this one process, so every event is stamped by one monotonic clock.
 *
 *   node workload.ts --cluster FILE --clients 5 --keys 5 --out history.jsonl [--duration-ms N] [--think-ms 10]
 *                    [--write-fraction 0.5] [--readers 2]   (the first `readers` clients only read)
 *                    [--consistency linearizable]          (every client's reads; stale: the negative control)
 *                    [--reader-consistency lease]          (the readers' reads only; default: --consistency)
 *                    [--independent 2]   (1: the last writer, 2: and the last reader run on IndependentClient)
 *
 * With --duration-ms it runs that long, reads every key a last time, and exits. Without it, it is
 * driven by JSON lines on stdin, answering each on stdout with the same `id`:
 *   {"id":1,"cmd":"status","args":{"targets":[{"id":1,"multiaddr":"…"}]}}
 *                             each target's status (or the error it gave), one attempt each
 *   {"id":2,"cmd":"start"}    the clients begin
 *   {"id":3,"cmd":"finish"}   the clients stop; every key is read once more (patiently); the history is flushed
 *   {"id":4,"cmd":"members","args":{"multiaddrs":[…]}}
 *                             the bootstrap list changed (a replica was replaced): clients start over from it
 *   {"id":5,"cmd":"member","args":{"action":"add","memberId":4,…}}
 *                             a membership change as the operator (this process holds the operator key);
 *                             answered {ok:true,result} or {ok:false,code,message}
 *   {"id":6,"cmd":"acknowledged"}   the highest acknowledged seq of each key so far
 *   {"id":7,"cmd":"verify"}   every key read linearizably (patiently, outside the history)
 *   {"id":8,"cmd":"readers","args":{"consistency":"stale"}}   the readers' consistency from now on (null: back to
 *                             the configured one); only the negative checks use it
 *   {"id":9,"cmd":"inflight"} each reader's read in flight, if any: since when, at what consistency, asking whom
 * The first stdout line is {"event":"ready","timeOriginMs":…,"clients":[…]}: history times plus
 * timeOriginMs are wall-clock milliseconds, so a caller can put its own observations on the same
 * axis; `clients` says what each client is (role, implementation, read consistency, history process).
 *
 * Outcomes (Jepsen's rule: `info` when the effect is unknown, and the process is then retired):
 * submit ok (applied or duplicate) is ok; any submit error is info (a timeout may have been
 * applied, and a retried submit whose first attempt was applied is answered STALE); a read's
 * answer is ok with (originSeq, version), or null for no record; a read's error is fail.
 *
 * Clients: AuthorityClient (@nodeledger/client), except `--independent` of them (by default the last
 * reader and the last writer, keeping their roles) which run on IndependentClient, a minimal client
 * written from docs/PROTOCOL.md alone with another MessagePack library: the history then checks the
 * document as much as our own client. The same outcomes are recorded for both.
 *
 * Readers are sticky (as the simulator's sticky clients): each keeps asking the replica it last
 * believed led, deposed or not, until that replica answers NOT_LEADER (it follows the hint) or its
 * connection fails. A reader gives up on one read after WORKLOAD_REQUEST_TIMEOUT_MS (jittered ±50%;
 * the read is `fail`) and asks the same replica again at once, while its client's own deadline is far longer,
 * so a replica that does not answer (paused, cut off) is never forgotten for its silence: when it
 * wakes, a read sent at most 1.5 s before is waiting for it, invoked after whatever the rest
 * of the cluster acknowledged meanwhile.
 */
import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { AuthorityClient } from '@nodeledger/client'
import { loadOrCreateKey } from '@nodeledger/authority'
import { ProtocolError } from '@nodeledger/protocol'
import type { MemberRequest } from '@nodeledger/protocol'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromSeed } from '../fixtures.ts'
import type { RegisterValue } from '../linearizability/index.ts'
import { HistoryWriter } from './history-file.ts'
import { IndependentClient } from './independent-client.ts'

/** Per-attempt deadline of the workload's clients: short, so that an operation ends in a few seconds even when no leader answers. */
export const WORKLOAD_REQUEST_TIMEOUT_MS = 1_000
/** Attempts per operation: enough to follow a NOT_LEADER hint and ride out a quick failover. */
export const WORKLOAD_ATTEMPTS_MAX = 3
/**
 * A reader's client gives an attempt this long, far beyond any fault's hold: a reader abandons a
 * read itself after WORKLOAD_REQUEST_TIMEOUT_MS, which leaves the client's cached leader alone,
 * while the client's own deadline passing would make it forget the replica (PROTOCOL.md "Client
 * behaviour"). This is what keeps a reader asking a paused or cut-off leader.
 */
export const READER_CLIENT_TIMEOUT_MS = 20_000
/** Final reads are patient: the cluster is healed and they decide whether a write was lost. */
const FINAL_READ_TIMEOUT_MS = 3_000
const FINAL_READ_ATTEMPTS_MAX = 20
const FINAL_READ_TRIES_MAX = 5
/** Status asks are one attempt each: a paused or cut-off replica must not hold the caller up. */
const STATUS_TIMEOUT_MS = 700
/** Membership changes: a few attempts, each long enough for a conf change to commit. */
const MEMBER_TIMEOUT_MS = 5_000
const MEMBER_ATTEMPTS_MAX = 4
/**
 * After an operation that did not succeed, a client waits this long before its next one. A client
 * facing a dead cluster otherwise fails in milliseconds (connection refused) and piles up hundreds
 * of `info` writes, each open forever, which the checker must place somewhere: its search grows
 * with every one. Real clients back off too. A reader whose read was abandoned after its patience
 * has waited already, and asks again at once.
 */
export const WORKLOAD_PAUSE_AFTER_FAILURE_MS = 1_000
const CLIENTS_MAX = 64
const KEYS_MAX = 1_000
const STATUS_TARGETS_MAX = 64
const BOOTSTRAP_MAX = 16

type Consistency = 'linearizable' | 'lease' | 'stale'

/** What a workload loop needs of a client; AuthorityClient and IndependentClient both fit. */
interface WorkloadClient {
  submit(delta: { originPeerId: string; seq: number; fields: { version: string } }): Promise<unknown>
  get(
    peerId: string,
    options: { consistency: Consistency; signal?: AbortSignal },
  ): Promise<{ record: { originSeq: number; version: string } | null }>
  stop(): Promise<void>
  /** The cached leader's multiaddr: where a leader-only request goes next. */
  readonly leader: string | undefined
}

interface ClusterFileShape {
  replicas: Array<{ id: number; multiaddr: string }>
  operators: Array<{ keyFile: string }>
}

interface Options {
  cluster: string
  clients: number
  keys: number
  out: string
  durationMs: number | undefined
  thinkMs: number
  writeFraction: number
  readers: number
  /** The writers' reads. */
  consistency: Consistency
  /** The readers' reads. */
  readerConsistency: Consistency
  /** Clients on IndependentClient: 0, 1 (the last writer) or 2 (and the last reader). */
  independent: number
}

/** One client as the report describes it. */
export interface WorkloadClientInfo {
  readonly index: number
  readonly role: 'reader' | 'writer'
  readonly implementation: 'AuthorityClient' | 'IndependentClient'
  /** Readers keep asking the replica they last believed led (see the module comment). */
  readonly sticky: boolean
  readonly readConsistency: Consistency
  /** Its history process; a reader keeps it all run long, a writer moves on after each `info` write. */
  readonly firstProcess: number
  /** Its operations so far by outcome. */
  readonly ok: number
  readonly fail: number
  readonly info: number
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      cluster: { type: 'string' },
      clients: { type: 'string', default: '5' },
      keys: { type: 'string', default: '5' },
      out: { type: 'string' },
      'duration-ms': { type: 'string' },
      'think-ms': { type: 'string', default: '10' },
      'write-fraction': { type: 'string', default: '0.5' },
      readers: { type: 'string', default: '2' },
      // Anything but linearizable for every client is the negative control only: stale reads the checker must catch.
      consistency: { type: 'string', default: 'linearizable' },
      // Lease reads by the sticky readers when the cluster enables leaseReads (the pause-leader nemesis).
      'reader-consistency': { type: 'string' },
      independent: { type: 'string', default: '2' },
    },
  })
  if (values.cluster === undefined || values.out === undefined)
    throw new TypeError(
      'usage: workload.ts --cluster FILE --out history.jsonl [--clients 5] [--keys 5] [--duration-ms N] [--think-ms 10]',
    )
  const clients = Number(values.clients)
  const keys = Number(values.keys)
  if (!Number.isInteger(clients) || clients < 1 || clients > CLIENTS_MAX)
    throw new TypeError(`--clients must be 1..${CLIENTS_MAX}`)
  if (!Number.isInteger(keys) || keys < 1 || keys > KEYS_MAX) throw new TypeError(`--keys must be 1..${KEYS_MAX}`)
  const independent = Number(values.independent)
  if (!(independent === 0 || independent === 1 || independent === 2))
    throw new TypeError('--independent must be 0, 1 or 2')
  const writeFraction = Number(values['write-fraction'])
  if (!(writeFraction >= 0 && writeFraction <= 1)) throw new TypeError('--write-fraction must be in [0, 1]')
  const consistency = parseConsistency(values.consistency)
  return {
    cluster: values.cluster,
    clients,
    keys,
    out: values.out,
    durationMs: values['duration-ms'] === undefined ? undefined : Number(values['duration-ms']),
    thinkMs: Number(values['think-ms']),
    writeFraction,
    readers: Math.min(clients - 1, Math.max(0, Number(values.readers) || 0)),
    consistency,
    readerConsistency:
      values['reader-consistency'] === undefined ? consistency : parseConsistency(values['reader-consistency']),
    independent,
  }
}

function parseConsistency(text: unknown): Consistency {
  if (text === 'linearizable' || text === 'lease' || text === 'stale') return text
  throw new TypeError('consistency must be linearizable, lease or stale')
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function registerValueOf(record: { originSeq: number; version: string } | null): RegisterValue | null {
  return record === null ? null : { seq: record.originSeq, value: record.version }
}

/** A read in flight by a reader, for `inflight`. */
interface ReaderRead {
  readonly sinceMs: number
  readonly consistency: Consistency
  readonly client: WorkloadClient
}

class Workload {
  readonly #options: Options
  #multiaddrs: string[]
  /** Bumped when the bootstrap list changes: each loop starts over on a client made from the new list. */
  #generation = 0
  readonly #privateKey: PrivateKey
  readonly #keys: string[]
  readonly #history: HistoryWriter
  readonly #clients = new Set<WorkloadClient>()
  #statusClient: AuthorityClient | undefined
  #operatorClient: AuthorityClient | undefined
  #running = false
  #loops: Promise<void>[] = []
  /** One counter for every client: seqs are unique, so each write is told apart by its seq. */
  #seq = 0
  /** The highest acknowledged seq of each key. */
  readonly #acknowledged = new Map<string, number>()
  /** The readers' consistency as overridden by `readers` (test-only), or undefined: the configured one. */
  #readerOverride: Consistency | undefined
  readonly #readerReads = new Map<number, ReaderRead>()
  readonly #firstProcess = new Map<number, number>()
  readonly counts = { ok: 0, fail: 0, info: 0, writeOk: 0 }
  readonly #clientCounts = new Map<number, { ok: number; fail: number; info: number }>()

  constructor(options: Options, multiaddrs: string[], privateKey: PrivateKey) {
    this.#options = options
    this.#multiaddrs = multiaddrs
    this.#privateKey = privateKey
    this.#keys = Array.from({ length: options.keys }, (_, i) => peerIdFromSeed(1_000 + i))
    this.#history = new HistoryWriter(options.out)
  }

  async open(): Promise<void> {
    this.#statusClient = await this.#client(STATUS_TIMEOUT_MS, 1)
  }

  async #client(requestTimeoutMs: number, attemptsMax: number): Promise<AuthorityClient> {
    const client = new AuthorityClient({
      bootstrap: this.#multiaddrs,
      privateKey: this.#privateKey,
      requestTimeoutMs,
      attemptsMax,
    })
    await client.start()
    return client
  }

  /** Each target's status, one attempt each, in the order given. */
  async status(targets: ReadonlyArray<{ id: number; multiaddr: string }>): Promise<unknown[]> {
    return await Promise.all(
      targets.map(async (target) => {
        try {
          return { id: target.id, status: await this.#statusClient!.status(target.multiaddr) }
        } catch (error) {
          return { id: target.id, error: error instanceof ProtocolError ? error.code : 'UNAVAILABLE' }
        }
      }),
    )
  }

  /** The bootstrap list changed: clients made from now on use it, and the loops start over on new ones. */
  async setMembers(multiaddrs: string[]): Promise<void> {
    this.#multiaddrs = multiaddrs
    this.#generation++
    const operator = this.#operatorClient
    this.#operatorClient = undefined
    await operator?.stop()
  }

  async member(request: Omit<MemberRequest, 'op'>): Promise<Record<string, unknown>> {
    if (this.#operatorClient === undefined) {
      // The status client's node: the operator key, which the leader requires for a membership change.
      const client = new AuthorityClient({
        bootstrap: this.#multiaddrs,
        libp2p: this.#statusClient!.libp2p,
        requestTimeoutMs: MEMBER_TIMEOUT_MS,
        attemptsMax: MEMBER_ATTEMPTS_MAX,
      })
      await client.start()
      this.#operatorClient = client
    }
    try {
      return { ok: true, result: await this.#operatorClient.member(request) }
    } catch (error) {
      if (error instanceof ProtocolError) return { ok: false, code: error.code, message: error.message }
      return { ok: false, code: 'UNAVAILABLE', message: (error as Error).message }
    }
  }

  acknowledged(): Record<string, number> {
    return Object.fromEntries(this.#acknowledged)
  }

  /** Every key read linearizably and patiently, outside the history (the nemeses' own check). */
  async verify(): Promise<Record<string, number | null | 'unreadable'>> {
    const reader = await this.#client(FINAL_READ_TIMEOUT_MS, FINAL_READ_ATTEMPTS_MAX)
    const values: Record<string, number | null | 'unreadable'> = {}
    try {
      for (const key of this.#keys) {
        values[key] = 'unreadable'
        for (let attempt = 0; attempt < FINAL_READ_TRIES_MAX; attempt++) {
          try {
            const { record } = await reader.get(key, { consistency: 'linearizable' })
            values[key] = record === null ? null : record.originSeq
            break
          } catch {
            // The next try; the cluster may still be electing.
          }
        }
      }
    } finally {
      await reader.stop()
    }
    return values
  }

  setReaderConsistency(consistency: Consistency | undefined): void {
    this.#readerOverride = consistency
  }

  inflight(): unknown[] {
    const now = performance.now()
    return [...this.#readerReads].map(([index, read]) => ({
      client: index,
      ageMs: Math.round(now - read.sinceMs),
      consistency: read.consistency,
      target: read.client.leader ?? null,
    }))
  }

  async start(): Promise<void> {
    if (this.#running) return
    this.#running = true
    this.#loops = Array.from({ length: this.#options.clients }, (_, i) => this.#loop(i))
  }

  /** Which clients run on IndependentClient: the last writer, then the last reader (roles unchanged). */
  independentClients(): number[] {
    const { clients, readers, independent } = this.#options
    const chosen: number[] = []
    if (independent >= 1 && clients - 1 >= readers) chosen.push(clients - 1)
    if (independent >= 2 && readers >= 1) chosen.push(readers - 1)
    return chosen
  }

  describeClients(): WorkloadClientInfo[] {
    const independent = this.independentClients()
    return Array.from({ length: this.#options.clients }, (_, index) => {
      const reader = index < this.#options.readers
      return {
        index,
        role: reader ? 'reader' : 'writer',
        implementation: independent.includes(index) ? 'IndependentClient' : 'AuthorityClient',
        sticky: reader,
        readConsistency: reader ? this.#options.readerConsistency : this.#options.consistency,
        // Loops take their processes in order as they start: client i's first process is i.
        firstProcess: this.#firstProcess.get(index) ?? index,
        ...(this.#clientCounts.get(index) ?? { ok: 0, fail: 0, info: 0 }),
      }
    })
  }

  async #makeClient(index: number): Promise<WorkloadClient> {
    const reader = index < this.#options.readers
    const requestTimeoutMs = reader ? READER_CLIENT_TIMEOUT_MS : WORKLOAD_REQUEST_TIMEOUT_MS
    const client: WorkloadClient = this.independentClients().includes(index)
      ? new IndependentClient({
          // The status client's node (same operator key): the independent client brings only its protocol code.
          libp2p: this.#statusClient!.libp2p,
          bootstrap: this.#multiaddrs,
          requestTimeoutMs,
          attemptsMax: WORKLOAD_ATTEMPTS_MAX,
        })
      : await this.#client(requestTimeoutMs, WORKLOAD_ATTEMPTS_MAX)
    this.#clients.add(client)
    return client
  }

  async #dropClient(client: WorkloadClient): Promise<void> {
    this.#clients.delete(client)
    await client.stop()
  }

  /**
   * One client's operations; readers (the first `readers` clients) only read, and stick (see the
   * module comment). A client that writes moves on to the new leader as soon as a write fails.
   */
  async #loop(index: number): Promise<void> {
    let process = this.#history.newProcess()
    this.#firstProcess.set(index, process)
    const counts = { ok: 0, fail: 0, info: 0 }
    this.#clientCounts.set(index, counts)
    const reader = index < this.#options.readers
    const writeFraction = reader ? 0 : this.#options.writeFraction
    let generation = this.#generation
    let client = await this.#makeClient(index)
    while (this.#running) {
      if (generation !== this.#generation) {
        // A new bootstrap list: start over from it (between operations, so the history is untouched).
        generation = this.#generation
        await this.#dropClient(client)
        client = await this.#makeClient(index)
      }
      let failed = false
      let patienceSpent = false
      const key = this.#keys[Math.floor(Math.random() * this.#keys.length)]!
      if (Math.random() < writeFraction) {
        const seq = ++this.#seq
        this.#history.invoke(process, 'write', key, { seq, value: `w${seq}` })
        try {
          await client.submit({ originPeerId: key, seq, fields: { version: `w${seq}` } })
          this.#history.complete(process, 'ok')
          this.counts.ok++
          counts.ok++
          this.counts.writeOk++
          this.#acknowledged.set(key, Math.max(this.#acknowledged.get(key) ?? 0, seq))
        } catch {
          this.#history.complete(process, 'info')
          this.counts.info++
          counts.info++
          failed = true
          // An info operation stays open forever: this client goes on as a new process.
          process = this.#history.newProcess()
        }
      } else {
        const consistency = reader
          ? (this.#readerOverride ?? this.#options.readerConsistency)
          : this.#options.consistency
        const sinceMs = performance.now()
        // Jittered, so that when a paused replica wakes, its waiting read is not on the point of
        // being given up (a fixed patience would keep step with a hold of whole seconds).
        const patienceMs = Math.round(WORKLOAD_REQUEST_TIMEOUT_MS * (0.5 + Math.random()))
        this.#history.invoke(process, 'read', key)
        if (reader) this.#readerReads.set(index, { sinceMs, consistency, client })
        try {
          const { record } = await client.get(key, {
            consistency,
            ...(reader ? { signal: AbortSignal.timeout(patienceMs) } : {}),
          })
          this.#history.complete(process, 'ok', registerValueOf(record))
          this.counts.ok++
          counts.ok++
        } catch {
          this.#history.complete(process, 'fail')
          this.counts.fail++
          counts.fail++
          failed = true
          patienceSpent = reader && performance.now() - sinceMs >= patienceMs
        } finally {
          this.#readerReads.delete(index)
        }
      }
      if (failed && !patienceSpent) await sleep(WORKLOAD_PAUSE_AFTER_FAILURE_MS * (0.5 + Math.random()))
      else if (this.#options.thinkMs > 0) await sleep(Math.random() * 2 * this.#options.thinkMs)
    }
    await this.#dropClient(client)
  }

  /** Stop the clients, read every key once more, flush the history. Returns each key's last value. */
  async finish(): Promise<Record<string, RegisterValue | null | 'unreadable'>> {
    this.#running = false
    await Promise.all(this.#loops)
    const reader = await this.#client(FINAL_READ_TIMEOUT_MS, FINAL_READ_ATTEMPTS_MAX)
    const final: Record<string, RegisterValue | null | 'unreadable'> = {}
    try {
      for (const key of this.#keys) {
        final[key] = 'unreadable'
        for (let attempt = 0; attempt < FINAL_READ_TRIES_MAX; attempt++) {
          const process = this.#history.newProcess()
          this.#history.invoke(process, 'read', key)
          try {
            const { record } = await reader.get(key, { consistency: 'linearizable' })
            const value = registerValueOf(record)
            this.#history.complete(process, 'ok', value)
            final[key] = value
            break
          } catch {
            this.#history.complete(process, 'fail')
          }
        }
      }
    } finally {
      await reader.stop()
      this.#history.flush()
    }
    return final
  }

  async close(): Promise<void> {
    this.#running = false
    await Promise.all(this.#loops)
    await Promise.all(
      [
        ...this.#clients,
        ...(this.#operatorClient === undefined ? [] : [this.#operatorClient]),
        ...(this.#statusClient === undefined ? [] : [this.#statusClient]),
      ].map((client) => client.stop()),
    )
    this.#clients.clear()
    this.#history.close()
  }

  get keys(): readonly string[] {
    return this.#keys
  }
}

function reply(message: unknown): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

interface Request {
  readonly id: number
  readonly cmd: string
  readonly args?: Record<string, unknown>
}

function targetsOf(args: Record<string, unknown> | undefined): Array<{ id: number; multiaddr: string }> {
  const targets = args?.targets
  if (!Array.isArray(targets) || targets.length > STATUS_TARGETS_MAX)
    throw new TypeError(`status: targets must be an array of at most ${STATUS_TARGETS_MAX}`)
  return targets.map((target: { id?: unknown; multiaddr?: unknown }) => {
    if (typeof target.id !== 'number' || typeof target.multiaddr !== 'string')
      throw new TypeError('status: each target is {id, multiaddr}')
    return { id: target.id, multiaddr: target.multiaddr }
  })
}

function multiaddrsOf(args: Record<string, unknown> | undefined): string[] {
  const multiaddrs = args?.multiaddrs
  if (
    !Array.isArray(multiaddrs) ||
    multiaddrs.length === 0 ||
    multiaddrs.length > BOOTSTRAP_MAX ||
    !multiaddrs.every((address) => typeof address === 'string')
  )
    throw new TypeError(`members: multiaddrs must be 1 to ${BOOTSTRAP_MAX} strings`)
  return multiaddrs as string[]
}

function memberRequestOf(args: Record<string, unknown> | undefined): Omit<MemberRequest, 'op'> {
  const action = args?.action
  const memberId = args?.memberId
  if ((action !== 'add' && action !== 'promote' && action !== 'remove') || typeof memberId !== 'number')
    throw new TypeError('member: {action: add|promote|remove, memberId, [peerId, multiaddr]}')
  if (action !== 'add') return { action, memberId }
  if (typeof args?.peerId !== 'string' || typeof args?.multiaddr !== 'string')
    throw new TypeError('member add: peerId and multiaddr are required')
  return { action, memberId, peerId: args.peerId, multiaddr: args.multiaddr }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const cluster = JSON.parse(readFileSync(options.cluster, 'utf8')) as ClusterFileShape
  const keyFile = cluster.operators[0]!.keyFile
  const privateKey = await loadOrCreateKey(isAbsolute(keyFile) ? keyFile : join(dirname(options.cluster), keyFile))
  const workload = new Workload(
    options,
    cluster.replicas.map((replica) => replica.multiaddr),
    privateKey,
  )
  await workload.open()
  reply({
    event: 'ready',
    timeOriginMs: performance.timeOrigin,
    keys: workload.keys,
    independentClients: workload.independentClients(),
    clients: workload.describeClients(),
  })

  if (options.durationMs !== undefined) {
    await workload.start()
    await sleep(options.durationMs)
    const final = await workload.finish()
    reply({ event: 'finished', final, counts: workload.counts })
    await workload.close()
    process.exit(0)
  }

  // Requests are served concurrently: a status ask must not wait behind a finish.
  const handle = async (request: Request): Promise<void> => {
    try {
      switch (request.cmd) {
        case 'status':
          reply({ id: request.id, statuses: await workload.status(targetsOf(request.args)), counts: workload.counts })
          return
        case 'start':
          await workload.start()
          reply({ id: request.id, started: true })
          return
        case 'finish': {
          const final = await workload.finish()
          reply({ id: request.id, final, counts: workload.counts, clients: workload.describeClients() })
          return
        }
        case 'members':
          await workload.setMembers(multiaddrsOf(request.args))
          reply({ id: request.id, members: true })
          return
        case 'member':
          reply({ id: request.id, ...(await workload.member(memberRequestOf(request.args))) })
          return
        case 'acknowledged':
          reply({ id: request.id, acknowledged: workload.acknowledged() })
          return
        case 'verify':
          reply({ id: request.id, values: await workload.verify() })
          return
        case 'readers': {
          const consistency = request.args?.consistency
          workload.setReaderConsistency(consistency === null ? undefined : parseConsistency(consistency))
          reply({ id: request.id, readers: consistency })
          return
        }
        case 'inflight':
          reply({ id: request.id, reads: workload.inflight() })
          return
        default:
          reply({ id: request.id, error: `unknown command ${request.cmd}` })
      }
    } catch (error) {
      reply({ id: request.id, error: (error as Error).message })
    }
  }
  const inflight = new Set<Promise<void>>()
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue
    const task = handle(JSON.parse(line) as Request)
    inflight.add(task)
    void task.finally(() => inflight.delete(task))
  }
  await Promise.all(inflight)
  // stdin closed: the harness is done with us.
  await workload.close()
  process.exit(0)
}

main().catch((error: unknown) => {
  process.stderr.write(`workload: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
