import * as defaults from './constants.ts'
import { RaftError } from './errors.ts'
import type { Storage } from './storage.ts'
import type { NodeId, Rng } from './types.ts'

export interface Config {
  /** This replica's id; > 0. */
  id: NodeId
  storage: Storage
  /** The only source of randomness (election timeouts, stagger). */
  rng: Rng
  /** The index the application has already applied (its state survived a restart); default: snapshot index. */
  applied?: number
  electionTimeoutTicks?: number
  heartbeatTicks?: number
  /** Raft thesis §9.6: probe electability first so a partitioned node cannot disrupt the cluster. Default on. */
  preVote?: boolean
  /** Raft thesis §6.2: a leader that hears from no quorum for an election timeout steps down. Default on. */
  checkQuorum?: boolean
  /**
   * Serve ReadMode.Lease reads from the leader's lease (thesis §6.4.1). Off by default: a lease is only
   * safe if no follower grants a vote within an election timeout of hearing the leader, so with it on
   * a follower told its leader is unreachable still waits out that window before anyone may win
   * (failover ≈ one election timeout instead of a few ticks). With it off, Lease reads fall back to
   * ReadIndex. Requires checkQuorum.
   */
  leaseReads?: boolean
  entriesPerMessageMax?: number
  entriesBytesPerMessageMax?: number
  inflightMessagesMax?: number
  inflightBytesMax?: number
  uncommittedBytesMax?: number
  committedBytesPerReadyMax?: number
  snapshotChunkBytes?: number
  pendingReadsMax?: number
  leaseMarginTicks?: number
  leaderLostStaggerTicks?: number
}

export type ResolvedConfig = Required<Omit<Config, 'applied'>> & { applied: number | undefined }

/** Fill defaults and refuse nonsense with a message that says what is wrong (etcd's Config.validate). */
export function resolveConfig(config: Config): ResolvedConfig {
  const resolved: ResolvedConfig = {
    id: config.id,
    storage: config.storage,
    rng: config.rng,
    applied: config.applied,
    electionTimeoutTicks: config.electionTimeoutTicks ?? defaults.ELECTION_TIMEOUT_TICKS_DEFAULT,
    heartbeatTicks: config.heartbeatTicks ?? defaults.HEARTBEAT_TICKS_DEFAULT,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    leaseReads: config.leaseReads ?? false,
    entriesPerMessageMax: config.entriesPerMessageMax ?? defaults.ENTRIES_PER_MESSAGE_MAX_DEFAULT,
    entriesBytesPerMessageMax: config.entriesBytesPerMessageMax ?? defaults.ENTRIES_BYTES_PER_MESSAGE_MAX_DEFAULT,
    inflightMessagesMax: config.inflightMessagesMax ?? defaults.INFLIGHT_MESSAGES_MAX_DEFAULT,
    inflightBytesMax: config.inflightBytesMax ?? Number.POSITIVE_INFINITY,
    uncommittedBytesMax: config.uncommittedBytesMax ?? defaults.UNCOMMITTED_BYTES_MAX_DEFAULT,
    committedBytesPerReadyMax: config.committedBytesPerReadyMax ?? defaults.COMMITTED_BYTES_PER_READY_MAX_DEFAULT,
    snapshotChunkBytes: config.snapshotChunkBytes ?? defaults.SNAPSHOT_CHUNK_BYTES_DEFAULT,
    pendingReadsMax: config.pendingReadsMax ?? defaults.PENDING_READS_MAX_DEFAULT,
    leaseMarginTicks: config.leaseMarginTicks ?? defaults.LEASE_MARGIN_TICKS_DEFAULT,
    leaderLostStaggerTicks: config.leaderLostStaggerTicks ?? defaults.LEADER_LOST_STAGGER_TICKS_DEFAULT,
  }
  const problems: string[] = []
  const positiveInteger = (name: keyof ResolvedConfig): void => {
    const value = resolved[name]
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0)
      problems.push(`${name} must be a positive integer (got ${String(value)})`)
  }
  positiveInteger('id')
  positiveInteger('electionTimeoutTicks')
  positiveInteger('heartbeatTicks')
  positiveInteger('entriesPerMessageMax')
  positiveInteger('entriesBytesPerMessageMax')
  positiveInteger('inflightMessagesMax')
  positiveInteger('uncommittedBytesMax')
  positiveInteger('committedBytesPerReadyMax')
  positiveInteger('snapshotChunkBytes')
  positiveInteger('pendingReadsMax')
  positiveInteger('leaderLostStaggerTicks')
  if (!(resolved.inflightBytesMax > 0)) problems.push('inflightBytesMax must be positive')
  if (resolved.electionTimeoutTicks <= resolved.heartbeatTicks) {
    problems.push(
      `electionTimeoutTicks (${resolved.electionTimeoutTicks}) must be greater than heartbeatTicks (${resolved.heartbeatTicks})`,
    )
  }
  if (
    !Number.isSafeInteger(resolved.leaseMarginTicks) ||
    resolved.leaseMarginTicks < 0 ||
    resolved.leaseMarginTicks >= resolved.electionTimeoutTicks
  ) {
    problems.push(`leaseMarginTicks must be in [0, electionTimeoutTicks) (got ${resolved.leaseMarginTicks})`)
  }
  if (resolved.leaseReads && !resolved.checkQuorum)
    problems.push('leaseReads requires checkQuorum (a leader must step down when it loses its quorum)')
  if (resolved.applied !== undefined && (!Number.isSafeInteger(resolved.applied) || resolved.applied < 0))
    problems.push('applied must be a non-negative integer')
  if (problems.length > 0) throw new RaftError('INVALID', `invalid raft config: ${problems.join('; ')}`)
  return resolved
}
