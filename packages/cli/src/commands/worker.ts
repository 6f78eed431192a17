import { mkdir } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { basename, dirname, join, resolve } from 'node:path'
import { loadClusterFile, loadOrCreateKey } from '@nodeledger/authority'
import { CATEGORIES, CAPABILITY_FIELD } from '@nodeledger/registry'
import type { Category, SelfReported } from '@nodeledger/registry'
import { NodeEventTracker, WorkerMetrics, startWorkerHttp } from '@nodeledger/worker'
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
  /** HOST:PORT of the ops HTTP listener (/metrics, /health, /ready); none when absent. */
  http?: string
  logLevel: string
  pretty: boolean
}

/** Where replicas are: `--bootstrap` if given, else the cluster file. */
async function bootstrapOf(options: WorkerCommandOptions): Promise<string[]> {
  if (options.bootstrap.length > 0) {
    for (const address of options.bootstrap) {
      let last: string | undefined
      try {
        last = multiaddr(address).getComponents().at(-1)?.name
      } catch (error) {
        throw new UsageError(`--bootstrap "${address}" is not a multiaddr (${(error as Error).message})`)
      }
      if (last !== 'p2p')
        throw new UsageError(`--bootstrap ${address} must end in /p2p/<peerId>: the replica's identity is checked`)
    }
    return [...options.bootstrap]
  }
  const cluster = await loadClusterFile(options.cluster)
  return cluster.replicas.map((replica) => replica.multiaddr)
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
 */
async function metricsFor(
  options: WorkerCommandOptions,
  expected: number,
  logger: Logger,
): Promise<{ metrics: WorkerMetrics; http: OpsServer | undefined }> {
  let address: HostPort | undefined
  if (options.http !== undefined) {
    const parsed = readHostPort(options.http)
    if (typeof parsed === 'string') throw new UsageError(`--http ${parsed}`)
    address = parsed
  }
  const metrics = new WorkerMetrics({ processMetrics: true })
  const http = address === undefined ? undefined : await startWorkerHttp({ metrics, address, expected, logger })
  return { metrics, http }
}

async function startOne(
  dataDir: string,
  keyFile: string,
  bootstrap: string[],
  options: WorkerCommandOptions,
  logger: Logger,
  metrics: WorkerMetrics,
  worker: number,
): Promise<NodeEventTracker> {
  await mkdir(dirname(resolve(keyFile)), { recursive: true })
  const privateKey = await loadOrCreateKey(keyFile)
  return await NodeEventTracker.start({
    dataDir,
    bootstrap,
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
  const bootstrap = await bootstrapOf(options)
  const dataDir = resolve(options.data)
  const keyFile = options.key ?? join(dirname(dataDir), `${basename(dataDir)}.key`)
  let trackers: NodeEventTracker[] = []
  let http: OpsServer | undefined
  leaveOnSignal(
    () => trackers,
    logger,
    () => http,
  )
  const ops = await metricsFor(options, 1, logger)
  http = ops.http
  const tracker = await startOne(dataDir, keyFile, bootstrap, options, logger, ops.metrics, 1)
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

/** `nodeledger workers --count N`: N workers in one process (for density), each with its own dir and key. */
export async function runWorkers(count: number, options: WorkerCommandOptions): Promise<void> {
  const logger = createLogger({ level: options.logLevel, pretty: options.pretty, name: 'workers' })
  const bootstrap = await bootstrapOf(options)
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
        bootstrap,
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
