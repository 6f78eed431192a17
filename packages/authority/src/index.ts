/**
 * @nodeledger/authority: one authority replica — libp2p host, Raft driver, LevelDB log and
 * snapshots, the client API server.
 *
 * @example
 * ```ts
 * import { Replica, ApiServer, ReplicaMetrics, loadClusterFile, startReplicaHttp } from '@nodeledger/authority'
 * import { pino } from 'pino'
 * const cluster = await loadClusterFile('.run/cluster/cluster.json')
 * const metrics = new ReplicaMetrics({ processMetrics: true })
 * let replica: Replica | undefined
 * // GET /metrics, /health, /ready on the cluster file's `http` address of this replica
 * const http = await startReplicaHttp({ metrics, replica: () => replica, id: 1, address: cluster.replicas[0].http!, logger: pino() })
 * replica = await Replica.start({ cluster, id: 1, logger: pino(), metrics })
 * const api = new ApiServer({ replica, logger: pino() })
 * await api.start()
 * // ... on SIGTERM:
 * await replica.transferLeadership(2000)
 * await api.stop()
 * await http.close()
 * await replica.stop()
 * ```
 */
export { Replica } from './replica/replica.ts'
export type { ReplicaOptions, ReplicaStatus, Consistency } from './replica/replica.ts'
export { ApiServer } from './api/api-server.ts'
export { ReplicaMetrics } from './metrics/replica-metrics.ts'
export type { ReplicaMetricsOptions } from './metrics/replica-metrics.ts'
export { READY_APPLIED_LAG_ENTRIES_MAX } from './metrics/readiness.ts'
export { CLOCK_AHEAD_WARN_MS } from './metrics/clock-ahead.ts'
export { startReplicaHttp } from './http/replica-http.ts'
export { ReplicaGatewaySource } from './http/replica-gateway.ts'
export type { ReplicaHttpOptions } from './http/replica-http.ts'
export type { ApiServerOptions } from './api/api-server.ts'
export { loadClusterFile, parseClusterFile, memberById } from './cluster-file.ts'
export type { ClusterFile, ClusterMember, ClusterTiming } from './cluster-file.ts'
export { ReplicaError, ReplicaRequestError } from './replica-errors.ts'
export { encodeRaftFrame, decodeRaftFrame } from './raft-codec.ts'
export { LevelStorage } from './storage/index.ts'
export { PeerLinks, createReplicaHost, loadOrCreateKey } from './transport/index.ts'
export * from './constants.ts'
export * from './backup/index.ts'
