import { WorkerConfigError } from '../errors.ts'

/**
 * Whether a heartbeat interval can keep a lease of `leaseTtlMs` alive (PROTOCOL.md "Presence and
 * leases": the leader marks a node inactive, reason `ttl`, after `ttlMs` without a heartbeat).
 *
 *   interval >= TTL       refused (WorkerConfigError INVALID_CONFIG): the lease runs out before the
 *                         next heartbeat can arrive, even with none lost, so the node flaps between
 *                         active and inactive at every interval and each flap is two log entries.
 *   TTL/2 < interval < TTL  accepted with a warning: every heartbeat arriving keeps the lease, but
 *                         a single lost or late one (a retry, an election, a paused process) expires
 *                         it, since two intervals exceed the TTL. Not refused: on a quiet network an
 *                         operator may trade that risk for fewer heartbeats, knowingly.
 *   interval <= TTL/2     fine; the default (3 s against 10 s) is TTL/3 and survives one lost beat.
 *
 * Returns the warning to log, or undefined. Throws WorkerConfigError for the refusal, and for an
 * interval or TTL that is not a positive integer.
 */
export function checkHeartbeatInterval(heartbeatIntervalMs: number, leaseTtlMs: number): string | undefined {
  if (!Number.isSafeInteger(heartbeatIntervalMs) || heartbeatIntervalMs <= 0) {
    throw new WorkerConfigError(`heartbeat interval ${heartbeatIntervalMs} ms: expected a positive integer`)
  }
  if (!Number.isSafeInteger(leaseTtlMs) || leaseTtlMs <= 0) {
    throw new WorkerConfigError(`lease TTL ${leaseTtlMs} ms: expected a positive integer`)
  }
  if (heartbeatIntervalMs >= leaseTtlMs) {
    throw new WorkerConfigError(
      `heartbeat interval ${heartbeatIntervalMs} ms is not below the cluster's lease TTL ${leaseTtlMs} ms ` +
        `(liveness.ttlMs): the lease would expire between heartbeats and the node flap; use at most ` +
        `${Math.floor(leaseTtlMs / 2)} ms (TTL/2), ${Math.floor(leaseTtlMs / 3)} ms (TTL/3) to survive a lost heartbeat`,
    )
  }
  if (heartbeatIntervalMs * 2 > leaseTtlMs) {
    return (
      `heartbeat interval ${heartbeatIntervalMs} ms is above half the cluster's lease TTL ${leaseTtlMs} ms: ` +
      `one lost or late heartbeat expires the lease (the node goes inactive, reason ttl); ` +
      `${Math.floor(leaseTtlMs / 3)} ms (TTL/3) survives one`
    )
  }
  return undefined
}
