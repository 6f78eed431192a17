import type { FastifyInstance } from 'fastify'
import { CLUSTER_JSON_SCHEMA } from './cluster-view.ts'
import { ERROR_SCHEMA } from '@nodeledger/gateway'
import type { ClusterView } from './cluster-view.ts'

/** GET /v1/cluster (cluster-view.ts); 503 while the replica starts (no view yet). */
export function clusterRoutes(view: () => ClusterView | undefined): (app: FastifyInstance) => void {
  return (app) => {
    app.get(
      '/v1/cluster',
      { schema: { response: { 200: CLUSTER_JSON_SCHEMA, 503: ERROR_SCHEMA } } },
      async (_request, reply) => {
        const current = view()
        if (current === undefined)
          return reply.code(503).send({
            code: 'UNAVAILABLE',
            message: 'the replica is starting: opening its data dir and joining the cluster',
          })
        return reply.header('cache-control', 'no-store').send(await current.get())
      },
    )
  }
}
