/**
 * @nodeledger/client: talks to the authority cluster. Finds the leader, follows NOT_LEADER hints,
 * gives each request a deadline, retries across replicas with jittered backoff, and keeps submits
 * exactly once by resending the same (originPeerId, seq). Requests to a replica share one session
 * stream (PROTOCOL.md "Sessions"), up to 256 in flight; a watch has a stream of its own.
 *
 * @example
 * ```ts
 * import { AuthorityClient } from '@nodeledger/client'
 *
 * const client = new AuthorityClient({ bootstrap: cluster.replicas.map((r) => r.multiaddr), privateKey })
 * await client.start()
 * const { index } = await client.submit({ originPeerId: myPeerId, seq: nextSeq(), fields: { isWebScraper: true } })
 * const { record } = await client.get(myPeerId)                      // linearizable by default
 * for await (const event of client.watch(index)) apply(event.records) // resumes across failovers
 * await client.stop()
 * ```
 */

export { AuthorityClient } from './client.ts'
export type {
  AuthorityClientInit,
  ClientLogger,
  ReadOptions,
  ReplicaStatus,
  RequestOptions,
  Snapshot,
  SnapshotOptions,
  WatchOptions,
} from './client.ts'
export { backoffDelayMs, deadline, sleep } from './backoff.ts'
export { FEED_HOME_RETRY_MS, FeedRoute } from './feed-route.ts'
export * from './constants.ts'
