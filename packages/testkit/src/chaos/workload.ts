/**
 * The chaos workload: several concurrent clients writing and reading (linearizable) a few keys of
 * one cluster, recording every operation as a history for the linearizability checker. It runs
 * inside the test's network namespace (the test process is outside it and cannot reach the
 * replicas), and all its clients share this one process, so every event is stamped by one
 * monotonic clock.
 *
 *   node workload.ts --cluster FILE --clients 5 --keys 5 --out history.jsonl [--duration-ms N] [--think-ms 10]
 *                    [--write-fraction 0.5] [--readers 2]   (the first `readers` clients only read)
 *                    [--consistency linearizable]          (stale: the negative control, which must fail)
 *                    [--independent 2]   (1: the last writer, 2: and the last reader run on IndependentClient)
 *
 * With --duration-ms it runs that long, reads every key a last time, and exits. Without it, it is
 * driven by JSON lines on stdin, answering each on stdout with the same `id`:
 *   {"id":1,"cmd":"status"}   every replica's status (or the error it gave)
 *   {"id":2,"cmd":"start"}    the clients begin
 *   {"id":3,"cmd":"finish"}   the clients stop; every key is read once more (patiently); the history is flushed
 * The first stdout line is {"event":"ready","timeOriginMs":…}: history times plus timeOriginMs are
 * wall-clock milliseconds, so a caller can put its own observations on the same axis.
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
 */
import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { AuthorityClient } from '@nodeledger/client'
import { loadOrCreateKey } from '@nodeledger/authority'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromSeed } from '../fixtures.ts'
import type { RegisterValue } from '../linearizability/index.ts'
import { HistoryWriter } from './history-file.ts'
import { IndependentClient } from './independent-client.ts'

/** Per-attempt deadline of the workload's clients: short, so that an operation ends in a few seconds even when no leader answers. */
export const WORKLOAD_REQUEST_TIMEOUT_MS = 1_000
/** Attempts per operation: enough to follow a NOT_LEADER hint and ride out a quick failover. */
export const WORKLOAD_ATTEMPTS_MAX = 3
/** Final reads are patient: the cluster is healed and they decide whether a write was lost. */
const FINAL_READ_TIMEOUT_MS = 3_000
const FINAL_READ_ATTEMPTS_MAX = 20
const FINAL_READ_TRIES_MAX = 5
/** Status asks are one attempt each: a paused or cut-off replica must not hold the caller up. */
const STATUS_TIMEOUT_MS = 700
/**
 * After an operation that did not succeed, a client waits this long before its next one. A client
 * facing a dead cluster otherwise fails in milliseconds (connection refused) and piles up hundreds
 * of `info` writes, each open forever, which the checker must place somewhere: its search grows
 * with every one. Real clients back off too.
 */
export const WORKLOAD_PAUSE_AFTER_FAILURE_MS = 1_000
const CLIENTS_MAX = 64
const KEYS_MAX = 1_000

/** What a workload loop needs of a client; AuthorityClient and IndependentClient both fit. */
interface WorkloadClient {
  submit(delta: { originPeerId: string; seq: number; fields: { version: string } }): Promise<unknown>
  get(
    peerId: string,
    options: { consistency: Options['consistency'] },
  ): Promise<{ record: { originSeq: number; version: string } | null }>
  stop(): Promise<void>
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
  consistency: 'linearizable' | 'lease' | 'stale'
  /** Clients on IndependentClient: 0, 1 (the last writer) or 2 (and the last reader). */
  independent: number
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
      // Anything but linearizable is for the negative control only: stale reads the checker must catch.
      consistency: { type: 'string', default: 'linearizable' },
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
  return {
    cluster: values.cluster,
    clients,
    keys,
    out: values.out,
    durationMs: values['duration-ms'] === undefined ? undefined : Number(values['duration-ms']),
    thinkMs: Number(values['think-ms']),
    writeFraction,
    readers: Math.min(clients - 1, Math.max(0, Number(values.readers) || 0)),
    consistency: parseConsistency(values.consistency),
    independent,
  }
}

function parseConsistency(text: string): Options['consistency'] {
  if (text === 'linearizable' || text === 'lease' || text === 'stale') return text
  throw new TypeError('--consistency must be linearizable, lease or stale')
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function registerValueOf(record: { originSeq: number; version: string } | null): RegisterValue | null {
  return record === null ? null : { seq: record.originSeq, value: record.version }
}

class Workload {
  readonly #options: Options
  readonly #multiaddrs: string[]
  readonly #privateKey: PrivateKey
  readonly #keys: string[]
  readonly #history: HistoryWriter
  readonly #clients: WorkloadClient[] = []
  #statusClient: AuthorityClient | undefined
  #running = false
  #loops: Promise<void>[] = []
  /** One counter for every client: seqs are unique, so each write is told apart by its seq. */
  #seq = 0
  readonly counts = { ok: 0, fail: 0, info: 0 }

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

  async status(): Promise<unknown[]> {
    const all = await this.#statusClient!.statusAll()
    return all.map((entry) =>
      entry.status !== undefined
        ? { multiaddr: entry.multiaddr, status: entry.status }
        : { multiaddr: entry.multiaddr, error: entry.error?.code ?? 'UNAVAILABLE' },
    )
  }

  async start(): Promise<void> {
    if (this.#running) return
    this.#running = true
    const independent = this.independentClients()
    for (let i = 0; i < this.#options.clients; i++) {
      this.#clients.push(
        independent.includes(i)
          ? new IndependentClient({
              // The status client's node (same operator key): the independent client brings only its protocol code.
              libp2p: this.#statusClient!.libp2p,
              bootstrap: this.#multiaddrs,
              requestTimeoutMs: WORKLOAD_REQUEST_TIMEOUT_MS,
              attemptsMax: WORKLOAD_ATTEMPTS_MAX,
            })
          : await this.#client(WORKLOAD_REQUEST_TIMEOUT_MS, WORKLOAD_ATTEMPTS_MAX),
      )
    }
    this.#loops = this.#clients.map((client, i) =>
      this.#loop(client, i < this.#options.readers ? 0 : this.#options.writeFraction),
    )
  }

  /** Which clients run on IndependentClient: the last writer, then the last reader (roles unchanged). */
  independentClients(): number[] {
    const { clients, readers, independent } = this.#options
    const chosen: number[] = []
    if (independent >= 1 && clients - 1 >= readers) chosen.push(clients - 1)
    if (independent >= 2 && readers >= 1) chosen.push(readers - 1)
    return chosen
  }

  /**
   * One client's operations; `writeFraction` 0 makes it a reader only. Readers matter: a client that
   * writes moves on to the new leader as soon as a write fails, while a reader keeps asking the
   * replica it last found leading for as long as that one answers, which is what would expose an
   * old leader (cut off, or just woken from SIGSTOP) that served reads without confirming it still leads.
   */
  async #loop(client: WorkloadClient, writeFraction: number): Promise<void> {
    let process = this.#history.newProcess()
    while (this.#running) {
      let failed = false
      const key = this.#keys[Math.floor(Math.random() * this.#keys.length)]!
      if (Math.random() < writeFraction) {
        const seq = ++this.#seq
        this.#history.invoke(process, 'write', key, { seq, value: `w${seq}` })
        try {
          await client.submit({ originPeerId: key, seq, fields: { version: `w${seq}` } })
          this.#history.complete(process, 'ok')
          this.counts.ok++
        } catch {
          this.#history.complete(process, 'info')
          this.counts.info++
          failed = true
          // An info operation stays open forever: this client goes on as a new process.
          process = this.#history.newProcess()
        }
      } else {
        this.#history.invoke(process, 'read', key)
        try {
          const { record } = await client.get(key, { consistency: this.#options.consistency })
          this.#history.complete(process, 'ok', registerValueOf(record))
          this.counts.ok++
        } catch {
          this.#history.complete(process, 'fail')
          this.counts.fail++
          failed = true
        }
      }
      if (failed) await sleep(WORKLOAD_PAUSE_AFTER_FAILURE_MS * (0.5 + Math.random()))
      else if (this.#options.thinkMs > 0) await sleep(Math.random() * 2 * this.#options.thinkMs)
    }
  }

  /** Stop the clients, read every key once more, flush the history. Returns each key's last value. */
  async finish(): Promise<Record<string, RegisterValue | null | 'unreadable'>> {
    this.#running = false
    await Promise.all(this.#loops)
    await Promise.all(this.#clients.splice(0).map((client) => client.stop()))
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
      [...this.#clients.splice(0), ...(this.#statusClient === undefined ? [] : [this.#statusClient])].map((client) =>
        client.stop(),
      ),
    )
    this.#history.close()
  }

  get keys(): readonly string[] {
    return this.#keys
  }
}

function reply(message: unknown): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
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
  const handle = async (request: { id: number; cmd: string }): Promise<void> => {
    try {
      if (request.cmd === 'status')
        reply({ id: request.id, statuses: await workload.status(), counts: workload.counts })
      else if (request.cmd === 'start') {
        await workload.start()
        reply({ id: request.id, started: true })
      } else if (request.cmd === 'finish') {
        const final = await workload.finish()
        reply({ id: request.id, final, counts: workload.counts })
      } else reply({ id: request.id, error: `unknown command ${request.cmd}` })
    } catch (error) {
      reply({ id: request.id, error: (error as Error).message })
    }
  }
  const inflight = new Set<Promise<void>>()
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue
    const task = handle(JSON.parse(line) as { id: number; cmd: string })
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
