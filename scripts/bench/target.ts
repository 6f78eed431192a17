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
  /**
   * Where the members' logs end now: `election` reads only what is written after this mark, so
   * take it before the kill.
   */
  markLogs(): LogMark
  /**
   * The election that followed the kill of `killed` at `killedAtMs` (wall clock, ms), from the
   * members' own logs written after `mark`: who won, when its campaign began and when it became
   * leader. Waits up to `timeoutMs` for the lines to reach the log files; undefined if they never do.
   */
  election(mark: LogMark, killed: number, killedAtMs: number, timeoutMs: number): Promise<Election | undefined>
  /** Each running member's pid (for its CPU time: cpu.ts). */
  pids(): ReadonlyMap<number, number>
  /** What the client did since the last call (nodeledger: its failed attempts), for a failover trial. */
  takeClientEvents(): ClientEvent[]
  close(): Promise<void>
}

/** Byte offsets of each member's log. */
export type LogMark = ReadonlyMap<number, number>

/** A member's role change, as its log tells it. */
export interface RoleChange {
  member: number
  /** Wall clock, ms (the log line's own time). */
  atMs: number
  role: 'follower' | 'pre-candidate' | 'candidate' | 'leader'
  term: number
}

export interface Election {
  newLeader: number
  term: number
  /** The kill until the new leader's log says it leads, ms. */
  electedMs: number
  /** The kill until the winner's campaign (its last pre-candidate or candidate step before leading) began, ms. */
  campaignMs: number | null
  /** Campaigns (a member becoming pre-candidate or candidate) between the kill and the win, all members. */
  campaigns: number
  /** Every role change between the kill and the win: `2 pre-candidate +41, 2 follower +60, ..., 1 leader +662` (member, role, ms). */
  timeline: string
  /**
   * `leader-lost`: the campaign began sooner than an election timeout could have started it (the
   * winner saw the leader's connection close); `timeout`: a full election timeout ran out first.
   * Undefined when the system has no fast path (etcd 3.4) or the log does not say.
   */
  path?: 'leader-lost' | 'timeout'
}

/** A client-side event during a failover trial (nodeledger: each failed attempt inside a call). */
export interface ClientEvent {
  /** Wall clock, ms. */
  atMs: number
  what: string
  code?: string
}

/** Everything a bench run starts, so that SIGINT or a crash can take it all down. */
export type Cleanup = () => Promise<void> | void
