import { mkdir } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { loadClusterFile, loadOrCreateKey } from '@nodeledger/authority'
import { CATEGORIES, CAPABILITY_FIELD } from '@nodeledger/registry'
import type { Category, SelfReported } from '@nodeledger/registry'
import { NodeEventTracker } from '@nodeledger/worker'
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
  logLevel: string
  pretty: boolean
}

/** Where replicas are: `--bootstrap` if given, else the cluster file. */
async function bootstrapOf(options: WorkerCommandOptions): Promise<string[]> {
  if (options.bootstrap.length > 0) return [...options.bootstrap]
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

async function startOne(
  dataDir: string,
  keyFile: string,
  bootstrap: string[],
  options: WorkerCommandOptions,
  logger: Logger,
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
  })
}

/** Stops every tracker with a graceful leave on SIGTERM/SIGINT, then exits 0. */
function leaveOnSignal(trackers: () => readonly NodeEventTracker[], logger: Logger): void {
  let stopping = false
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    logger.info({ signal, workers: trackers().length }, 'leaving the network')
    await Promise.allSettled(trackers().map((tracker) => tracker.stop({ leave: true })))
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
  leaveOnSignal(() => trackers, logger)
  const tracker = await startOne(dataDir, keyFile, bootstrap, options, logger)
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
  leaveOnSignal(() => trackers, logger)
  const started = Date.now()
  for (let i = 1; i <= count; i++) {
    const dir = join(root, `worker-${i}`)
    trackers.push(
      await startOne(join(dir, 'data'), join(dir, 'peer.key'), bootstrap, options, logger.child({ worker: i })),
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
