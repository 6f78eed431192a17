import { gateway } from '@nodeledger/gateway'
import { startOpsServer } from '@nodeledger/metrics'
import type { HostPort, OpsServer, OpsServerOptions } from '@nodeledger/metrics'
import type { Logger } from 'pino'
import type { ReplicaMetrics } from '../metrics/replica-metrics.ts'
import type { Replica } from '../replica/replica.ts'
import { clusterPageRoutes } from './cluster-page.ts'
import { clusterRoutes } from './cluster-routes.ts'
import { ClusterView } from './cluster-view.ts'
import type { ClusterViewSource, SelfAnswer } from './cluster-view.ts'
import { peerStatus } from './peer-status.ts'
import { ReplicaGatewaySource } from './replica-gateway.ts'

export interface ReplicaHttpOptions {
  /** The replica's metrics component (the one given to Replica.start). */
  readonly metrics: ReplicaMetrics
  /** The replica once started; undefined while it opens its data dir and joins (it may wait for its peers). */
  readonly replica: () => Replica | undefined
  /** The replica's id, for /health before it has started. */
  readonly id: number
  /** The cluster file's `http` of this replica (or `nodeledger authority --http`). */
  readonly address: HostPort
  readonly logger: Logger
  /** More routes on this listener, after the ops routes and the gateway's (the cluster page). */
  readonly plugins?: OpsServerOptions['plugins']
}

/**
 * A replica's ops HTTP listener (PROTOCOL.md "Ops HTTP"): GET /metrics renders the replica's
 * metrics, /health says the process is alive with a few figures, /ready is 200 while a leader is
 * known and this replica has applied to within READY_APPLIED_LAG_ENTRIES_MAX entries of its commit,
 * else 503 with the reason; and the read-only HTTP gateway (/v1/nodes, /v1/nodes/{peerId},
 * /v1/eligible/{category}, /v1/status, /v1/events, /v1/openapi.json: docs/HTTP.md) over the
 * registry this replica applied. Started before the replica, so that a replica waiting for its peers
 * (an empty data dir) is seen alive and not ready, and a port in use is refused at once.
 *
 * The same listener serves the live cluster page (GET /, /ui) and GET /v1/cluster (cluster-view.ts);
 * the page reads the nodes and their changes from the gateway's /v1/nodes and /v1/events.
 */
export async function startReplicaHttp(options: ReplicaHttpOptions): Promise<OpsServer> {
  const startedMs = performance.now()
  const uptimeSeconds = (): number => Math.round((performance.now() - startedMs) / 1000)
  // One view per replica, made once the replica has started (it needs its libp2p host).
  let view: { replica: Replica; view: ClusterView } | undefined
  const clusterView = (): ClusterView | undefined => {
    const replica = options.replica()
    if (replica === undefined) return undefined
    if (view?.replica !== replica) view = { replica, view: new ClusterView({ source: viewSource(replica) }) }
    return view.view
  }
  return startOpsServer({
    address: options.address,
    registry: options.metrics.registry,
    health: () => {
      const replica = options.replica()
      if (replica === undefined) return { replica: options.id, starting: true, uptimeSeconds: uptimeSeconds() }
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
        uptimeSeconds: uptimeSeconds(),
      }
    },
    ready: () =>
      options.replica()?.readiness() ?? {
        ready: false,
        reason: 'starting: opening the data dir and joining the cluster',
      },
    logger: options.logger.child({ component: 'http' }),
    plugins: [
      gateway({
        source: new ReplicaGatewaySource(options.replica),
        logger: options.logger.child({ component: 'gateway' }),
      }),
      clusterPageRoutes,
      clusterRoutes(clusterView),
      ...(options.plugins ?? []),
    ],
  })
}

/** What the cluster view reads of a started replica: its own status exactly, the others over its libp2p host. */
function viewSource(replica: Replica): ClusterViewSource {
  return {
    clusterId: replica.cluster.clusterId,
    self: (): SelfAnswer => {
      const status = replica.status()
      return {
        clusterId: replica.cluster.clusterId,
        id: status.id,
        peerId: status.peerId,
        role: status.role,
        term: status.term,
        commit: status.commit,
        applied: status.applied,
        lastIndex: status.lastIndex,
        leader: status.leader === undefined ? null : { id: status.leader.id, peerId: status.leader.peerId },
        members: replica
          .members()
          .map((member) => ({
            id: member.id,
            peerId: member.peerId,
            multiaddr: member.multiaddr,
            voter: member.voter,
            started: member.started,
          }))
          .sort((a, b) => a.id - b.id),
      }
    },
    leaderHistory: () => replica.leaderHistory(),
    peerStatus: (member, signal) => peerStatus(replica.libp2p, member, signal),
  }
}
