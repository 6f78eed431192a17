/**
 * What a workload needs from a system under test. Both systems get the same calls from the same
 * Node process: one acknowledged write of a ~300-byte value, one linearizable read, and the handles
 * the failover workload uses to find, kill and restart the leader.
 */

export type SystemName = 'nodeledger' | 'etcd'

/**
 * One logical write. `key` indexes the bench's pool of peer ids; `seq` is that key's sequence
 * number (nodeledger deltas carry it; a retry of the same write reuses it, so it stays exactly
 * once). etcd ignores `seq` beyond stamping it into the value.
 */
export interface WriteRequest {
  readonly key: number
  readonly seq: number
}

export interface BenchTarget {
  readonly system: SystemName
  /** Members of the cluster, as the ids `kill` and `restart` take. */
  readonly memberIds: readonly number[]
  /** Resolves once the write is acknowledged (durably committed); throws otherwise. */
  write(request: WriteRequest): Promise<void>
  /** A linearizable read of `key`. */
  read(key: number): Promise<void>
  /** The member that leads now (asks the cluster). */
  leader(): Promise<number>
  /**
   * SIGKILL a member. The signal is sent before this returns its promise (synchronously), so a
   * caller can take the time right before calling; the promise resolves once the process is gone.
   */
  kill(member: number): Promise<void>
  restart(member: number): Promise<void>
  /** Every member up, one leader that all agree on, followers caught up; throws after `timeoutMs`. */
  waitHealthy(timeoutMs: number): Promise<void>
  close(): Promise<void>
}

/** Everything a bench run starts, so that SIGINT or a crash can take it all down. */
export type Cleanup = () => Promise<void> | void
