import { startOpsServer } from '@nodeledger/metrics'
import type { HostPort, OpsServer } from '@nodeledger/metrics'
import type { Logger } from 'pino'
import type { Replica } from '../replica/replica.ts'

export interface ReplicaHttpOptions {
  readonly replica: Replica
  /** The cluster file's `http` of this replica (or `nodeledger authority --http`). */
  readonly address: HostPort
  readonly logger: Logger
}

/**
 * A replica's ops HTTP listener (PROTOCOL.md "Cluster file", `http`): GET /metrics renders the
 * replica's metrics (replica.metrics.registry), /health says the process is alive with a few
 * figures, /ready is 200 while a leader is known and this replica has applied to within
 * READY_APPLIED_LAG_ENTRIES_MAX entries of its commit, else 503 with the reason.
 */
export async function startReplicaHttp(options: ReplicaHttpOptions): Promise<OpsServer> {
  const { replica } = options
  const startedMs = performance.now()
  return startOpsServer({
    address: options.address,
    registry: replica.metrics.registry,
    health: () => {
      const status = replica.status()
      return {
        replica: status.id,
        peerId: status.peerId,
        role: status.role,
        term: status.term,
        leader: status.leader?.id ?? null,
        commit: status.commit,
        applied: status.applied,
        clockAheadSeconds: replica.clockAheadMs() / 1000,
        uptimeSeconds: Math.round((performance.now() - startedMs) / 1000),
      }
    },
    ready: () => replica.readiness(),
    logger: options.logger.child({ component: 'http' }),
  })
}
