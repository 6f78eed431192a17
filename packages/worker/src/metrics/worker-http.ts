import { gateway } from '@nodeledger/gateway'
import { startOpsServer } from '@nodeledger/metrics'
import type { HostPort, OpsLogger, OpsServer } from '@nodeledger/metrics'
import type { WorkerGatewaySource } from '../gateway/worker-gateway.ts'
import type { WorkerMetrics } from './worker-metrics.ts'

export interface WorkerHttpOptions {
  readonly metrics: WorkerMetrics
  /** `nodeledger worker --http HOST:PORT`. */
  readonly address: HostPort
  /** Trackers this process runs: /ready waits for all of them. */
  readonly expected: number
  readonly logger?: OpsLogger & { warn(fields: object, message: string): void }
  /**
   * The HTTP gateway (/v1/…, docs/HTTP.md) of the one tracker this process runs; attach the tracker
   * to it once started. Absent: the listener serves /metrics, /health and /ready only.
   */
  readonly gateway?: WorkerGatewaySource
}

/**
 * A worker process's ops HTTP listener: GET /metrics (the process's WorkerMetrics), /health (alive),
 * /ready (200 once every tracker is synced, follows a leader and is close to its index; else 503
 * with the reason), and with `gateway` the worker's HTTP gateway. Start it before the trackers:
 * /health answers and /ready says why not while they catch up.
 */
export async function startWorkerHttp(options: WorkerHttpOptions): Promise<OpsServer> {
  const startedMs = performance.now()
  return startOpsServer({
    address: options.address,
    registry: options.metrics.registry,
    health: () => ({ workers: options.expected, uptimeSeconds: Math.round((performance.now() - startedMs) / 1000) }),
    ready: () => options.metrics.readiness(options.expected),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.gateway === undefined
      ? {}
      : {
          plugins: [
            gateway({
              source: options.gateway,
              ...(options.logger === undefined ? {} : { logger: options.logger }),
            }),
          ],
        }),
  })
}
