import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { basename, dirname, join, resolve } from 'node:path'
import { DEFAULT_LIVENESS, loadClusterFile, loadOrCreateKey } from '@nodeledger/authority'
import { CATEGORIES, CAPABILITY_FIELD } from '@nodeledger/registry'
import type { Category, SelfReported } from '@nodeledger/registry'
import {
  NodeEventTracker,
  WorkerConfigError,
  WorkerGatewaySource,
  WorkerMetrics,
  checkHeartbeatInterval,
  startWorkerHttp,
  trackerDefaults,
} from '@nodeledger/worker'
import { readHostPort } from '@nodeledger/metrics'
import type { HostPort, OpsServer } from '@nodeledger/metrics'
import type { Logger } from 'pino'
import { UsageError } from '../exit-codes.ts'
import { createLogger } from '../logger.ts'
import { renderTable } from '../output.ts'

export interface WorkerCommandOptions {
  /** Replica multiaddrs; when empty, the cluster file's. */
  bootstrap: readonly string[]
  cluster: string
  /** Data dir (worker) or the root under which worker-<i>/ dirs go (workers). */
  data: string
  /** Key file; default: a sibling of the data dir, so wiping the data keeps the identity. */
  key?: string
  listenHost: string
  capabilities: readonly string[]
  staked: boolean
  version: string
  heartbeatMs?: number
  /**
   * HOST:PORT of the ops HTTP listener (/metrics, /health, /ready; for `worker`, the HTTP gateway
   * too); none when absent.
   */
  http?: string
  logLevel: string
  pretty: boolean
}

/** What the worker needs to know of its cluster before it starts. */
export interface WorkerCluster {
  readonly bootstrap: string[]
  /** The cluster's lease TTL (`liveness.ttlMs`), which `--heartbeat-ms` must stay below. */
  readonly leaseTtlMs: number
  /** Where leaseTtlMs came from, for messages. */
  readonly leaseTtlFrom: string
}

/**
 * Where replicas are (`--bootstrap` if given, else the cluster file's) and the lease TTL. The API
 * does not tell a client the TTL (PROTOCOL.md: no op answers it), so it comes from the cluster
 * file: the one that lists the replicas, or with `--bootstrap` the `--cluster` file when it names
 * one of those replicas (a file of another cluster says nothing about this one); otherwise the
 * default TTL, which the message then says it assumed.
 */
export async function clusterOf(options: Pick<WorkerCommandOptions, 'bootstrap' | 'cluster'>): Promise<WorkerCluster> {
  if (options.bootstrap.length === 0) {
    const cluster = await loadClusterFile(options.cluster)
    return {
      bootstrap: cluster.replicas.map((replica) => replica.multiaddr),
      leaseTtlMs: cluster.liveness.ttlMs,
      leaseTtlFrom: `liveness.ttlMs of ${options.cluster}`,
    }
  }
  const peerIds: string[] = []
  for (const address of options.bootstrap) {
    let last: { name: string; value?: string } | undefined
    try {
      last = multiaddr(address).getComponents().at(-1)
    } catch (error) {
      throw new UsageError(`--bootstrap "${address}" is not a multiaddr (${(error as Error).message})`)
    }
    if (last?.name !== 'p2p')
      throw new UsageError(`--bootstrap ${address} must end in /p2p/<peerId>: the replica's identity is checked`)
    peerIds.push(last.value ?? '')
  }
  const bootstrap = [...options.bootstrap]
  if (existsSync(options.cluster)) {
    // Never read with --bootstrap before, so a file that does not load only means no TTL from it.
    const cluster = await loadClusterFile(options.cluster).catch(() => undefined)
    if (cluster?.replicas.some((replica) => peerIds.includes(replica.peerId)))
      return { bootstrap, leaseTtlMs: cluster.liveness.ttlMs, leaseTtlFrom: `liveness.ttlMs of ${options.cluster}` }
  }
  return {
    bootstrap,
    leaseTtlMs: DEFAULT_LIVENESS.ttlMs,
    leaseTtlFrom: `the default liveness.ttlMs (no cluster file names the --bootstrap replicas; give it with --cluster)`,
  }
}

/**
 * `--heartbeat-ms` against the cluster's lease TTL, before anything starts: at or above it is
 * refused (INVALID_CONFIG, exit 2), above half of it is warned about (checkHeartbeatInterval says
 * why; the trackers log the warning). The message names both values and where the TTL came from.
 */
export function checkWorkerHeartbeat(heartbeatMs: number | undefined, cluster: WorkerCluster): void {
  const intervalMs = heartbeatMs ?? trackerDefaults.HEARTBEAT_INTERVAL_MS_DEFAULT
  try {
    checkHeartbeatInterval(intervalMs, cluster.leaseTtlMs)
  } catch (error) {
    if (!(error instanceof WorkerConfigError)) throw error
    throw new WorkerConfigError(`--heartbeat-ms ${intervalMs}: ${error.message}; the TTL is ${cluster.leaseTtlFrom}`)
  }
}

function selfFields(options: WorkerCommandOptions): Partial<Omit<SelfReported, 'multiaddrs'>> {
  const fields: Record<string, unknown> = { version: options.version, isStaked: options.staked }
  for (const capability of options.capabilities) {
    if (!(CATEGORIES as readonly string[]).includes(capability))
      throw new UsageError(`unknown capability "${capability}"; one of ${CATEGORIES.join(', ')}`)
    fields[CAPABILITY_FIELD[capability as Category]] = true
  }
  return fields as Partial<Omit<SelfReported, 'multiaddrs'>>
}

/**
 * The process's metrics and, with --http, its listener: started before the trackers, so /health
 * answers and /ready says why not while they catch up. One `worker` label per tracker, "1" … "N".
 * With `gateway` (one tracker in the process) the listener serves its HTTP gateway too, answering
 * 503 until the tracker is attached.
 */
async function metricsFor(
  options: WorkerCommandOptions,
  expected: number,
  logger: Logger,
  gateway?: WorkerGatewaySource,
): Promise<{ metrics: WorkerMetrics; http: OpsServer | undefined }> {
  let address: HostPort | undefined
  if (options.http !== undefined) {
    const parsed = readHostPort(options.http)
    if (typeof parsed === 'string') throw new UsageError(`--http ${parsed}`)
    address = parsed
  }
  const metrics = new WorkerMetrics({ processMetrics: true })
  const http =
    address === undefined
      ? undefined
      : await startWorkerHttp({ metrics, address, expected, logger, ...(gateway === undefined ? {} : { gateway }) })
  return { metrics, http }
}

async function startOne(
  dataDir: string,
  keyFile: string,
  cluster: WorkerCluster,
  options: WorkerCommandOptions,
  logger: Logger,
  metrics: WorkerMetrics,
  worker: number,
): Promise<NodeEventTracker> {
  await mkdir(dirname(resolve(keyFile)), { recursive: true })
  const privateKey = await loadOrCreateKey(keyFile)
  return await NodeEventTracker.start({
    dataDir,
    bootstrap: cluster.bootstrap,
    leaseTtlMs: cluster.leaseTtlMs,
    privateKey,
    listen: [`/ip4/${options.listenHost}/tcp/0`],
    self: selfFields(options),
    ...(options.heartbeatMs === undefined ? {} : { heartbeatIntervalMs: options.heartbeatMs }),
    logger,
    metrics: metrics.tracker(String(worker)),
  })
}

/** Stops every tracker with a graceful leave on SIGTERM/SIGINT, then exits 0. */
function leaveOnSignal(
  trackers: () => readonly NodeEventTracker[],
  logger: Logger,
  http: () => OpsServer | undefined,
): void {
  let stopping = false
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    logger.info({ signal, workers: trackers().length }, 'leaving the network')
    await Promise.allSettled(trackers().map((tracker) => tracker.stop({ leave: true })))
    await http()?.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

/** `nodeledger worker`: one worker node in the foreground until SIGTERM (a graceful leave). */
export async function runWorker(options: WorkerCommandOptions): Promise<void> {
  const logger = createLogger({ level: options.logLevel, pretty: options.pretty, name: 'worker' })
  const cluster = await clusterOf(options)
  checkWorkerHeartbeat(options.heartbeatMs, cluster)
  const dataDir = resolve(options.data)
  const keyFile = options.key ?? join(dirname(dataDir), `${basename(dataDir)}.key`)
  let trackers: NodeEventTracker[] = []
  let http: OpsServer | undefined
  leaveOnSignal(
    () => trackers,
    logger,
    () => http,
  )
  // The HTTP gateway (read-write: PUT /v1/self publishes with this worker's own key).
  const gateway = new WorkerGatewaySource()
  const ops = await metricsFor(options, 1, logger, gateway)
  http = ops.http
  const tracker = await startOne(dataDir, keyFile, cluster, options, logger, ops.metrics, 1)
  gateway.attach(tracker)
  trackers = [tracker]
  logger.info(
    {
      peerId: tracker.peerId,
      addresses: tracker.host.getMultiaddrs().map(String),
      records: tracker.size,
      appliedIndex: tracker.appliedIndex,
    },
    'worker running',
  )
}

/**
 * `nodeledger workers --count N`: N workers in one process (for density), each with its own dir and
 * key. Its --http listener serves /metrics, /health and /ready of the process, not the HTTP
 * gateway: a gateway is one node's (its records as it holds them, PUT /v1/self with its key), and
 * a density test's N nodes in one process have no one node to speak for (docs/HTTP.md).
 */
export async function runWorkers(count: number, options: WorkerCommandOptions): Promise<void> {
  const logger = createLogger({ level: options.logLevel, pretty: options.pretty, name: 'workers' })
  const cluster = await clusterOf(options)
  checkWorkerHeartbeat(options.heartbeatMs, cluster)
  const root = resolve(options.data)
  const trackers: NodeEventTracker[] = []
  let http: OpsServer | undefined
  leaveOnSignal(
    () => trackers,
    logger,
    () => http,
  )
  const ops = await metricsFor(options, count, logger)
  http = ops.http
  const started = Date.now()
  for (let i = 1; i <= count; i++) {
    const dir = join(root, `worker-${i}`)
    trackers.push(
      await startOne(
        join(dir, 'data'),
        join(dir, 'peer.key'),
        cluster,
        options,
        logger.child({ worker: i }),
        ops.metrics,
        i,
      ),
    )
  }
  logger.info({ workers: count, startupMs: Date.now() - started }, 'workers running')
  if (options.pretty || process.stdout.isTTY) {
    console.log(
      renderTable(
        trackers.map((tracker, i) => ({
          worker: i + 1,
          peerId: tracker.peerId,
          records: tracker.size,
          applied: tracker.appliedIndex,
          seq: tracker.ownSeq,
        })),
        ['worker', 'peerId', 'records', 'applied', 'seq'],
      ),
    )
  }
}
