import { Replica, loadClusterFile } from '@nodeledger/authority'
import { ApiServer } from '@nodeledger/authority'
import { resolve } from 'node:path'
import { UsageError } from '../exit-codes.ts'
import { createLogger } from '../logger.ts'

export interface AuthorityOptions {
  cluster: string
  id: number
  initialClusterState: 'new' | 'existing'
  /** For a member added after creation (the cluster file lists the founders only): all three. */
  multiaddr?: string
  keyFile?: string
  dataDir?: string
  logLevel: string
  pretty: boolean
}

/** How long a leader on its way out waits for a successor before it simply stops. */
const TRANSFER_ON_EXIT_TIMEOUT_MS = 2_000

/** Run one replica in the foreground until SIGTERM/SIGINT; a leader hands over before it exits. */
export async function runAuthority(options: AuthorityOptions): Promise<void> {
  const logger = createLogger({ level: options.logLevel, pretty: options.pretty, name: `replica-${options.id}` })
  const cluster = await loadClusterFile(options.cluster)
  let self: { multiaddr: string; keyFile: string; dataDir: string } | undefined
  if (options.multiaddr !== undefined || options.keyFile !== undefined || options.dataDir !== undefined) {
    if (options.multiaddr === undefined || options.keyFile === undefined || options.dataDir === undefined) {
      throw new UsageError('a member added after creation needs all of --multiaddr, --key and --data')
    }
    self = { multiaddr: options.multiaddr, keyFile: resolve(options.keyFile), dataDir: resolve(options.dataDir) }
  }
  const replica = await Replica.start({
    cluster,
    id: options.id,
    logger,
    initialClusterState: options.initialClusterState,
    ...(self !== undefined ? { self } : {}),
  })
  const api = new ApiServer({ replica, logger })
  await api.start()
  let stopping = false
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    if (replica.isLeader()) {
      const handedOver = await replica.transferLeadership(TRANSFER_ON_EXIT_TIMEOUT_MS)
      logger.info(
        { handedOver },
        handedOver ? 'leadership handed over before exit' : 'no successor took over in time; exiting anyway',
      )
    }
    await api.stop()
    await replica.stop()
    process.exit(0)
  }
  // On demand: `kill -USR2 <pid>` snapshots and compacts the log now (SIGUSR1 belongs to Node's inspector).
  process.on('SIGUSR2', () => {
    replica.snapshotNow().then(
      (index) => logger.info({ index }, 'snapshot on demand'),
      (error: unknown) => logger.error({ err: error }, 'snapshot on demand failed'),
    )
  })
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}
