import { assert } from './errors.ts'
import { Inflights } from './inflights.ts'

/**
 * How the leader replicates to one follower (etcd's progress states):
 *  - probe: we do not know where its log ends; one AppendEntries at a time until one succeeds
 *  - replicate: steady state; pipeline up to the inflight limit
 *  - snapshot: it needs a snapshot; stream chunks and send no entries until it is installed
 */
export const ProgressState = {
  Probe: 'probe',
  Replicate: 'replicate',
  Snapshot: 'snapshot',
} as const
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState]

export class Progress {
  match = 0
  next: number
  state: ProgressState = ProgressState.Probe
  /** In probe state: an AppendEntries is outstanding, wait for its answer (or the next heartbeat). */
  probeSent = false
  /** Set by any message from the follower; CheckQuorum reads and clears it each election timeout. */
  recentActive = false
  isLearner: boolean
  readonly inflights: Inflights
  /** Snapshot transfer: the snapshot being streamed and how many bytes the follower has acknowledged. */
  pendingSnapshotIndex = 0
  snapshotBytesAcked = 0
  /** Tick at which the last snapshot chunk was sent (for retransmission). */
  snapshotChunkSentTick = -1
  /** Leader tick of the newest heartbeat this follower answered (the lease basis). */
  heartbeatAckedTick = -1
  /** The highest commit index sent to this follower (an empty append that cannot move it is not sent). */
  sentCommit = 0
  /**
   * Probe backoff, in heartbeat intervals: after a probe was rejected without teaching the leader
   * anything (the follower's log ends before `match`), the next waits this long, doubling.
   */
  probeBackoffHeartbeats = 0
  private probeWaitHeartbeats = 0
  /**
   * The follower told us its log is empty although it is a voter: it lost its disk. It must be
   * replaced, not restored in place, so nothing more is sent to it in this term (heartbeats aside).
   */
  lostState = false

  constructor(next: number, isLearner: boolean, inflightMessagesMax: number, inflightBytesMax: number) {
    this.next = next
    this.isLearner = isLearner
    this.inflights = new Inflights(inflightMessagesMax, inflightBytesMax)
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false
    this.probeBackoffHeartbeats = 0
    this.probeWaitHeartbeats = 0
    this.pendingSnapshotIndex = 0
    this.snapshotBytesAcked = 0
    this.snapshotChunkSentTick = -1
    this.state = state
    this.inflights.reset()
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it: the follower holds everything up to it.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshotIndex
      this.resetState(ProgressState.Probe)
      this.next = Math.max(this.match + 1, pending + 1)
    } else {
      this.resetState(ProgressState.Probe)
      this.next = this.match + 1
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate)
    this.next = this.match + 1
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot)
    this.pendingSnapshotIndex = snapshotIndex
  }

  /** An acknowledgement up to `index`; returns false if it told us nothing new. */
  maybeUpdate(index: number): boolean {
    let updated = false
    if (this.match < index) {
      this.match = index
      updated = true
      this.probeSent = false
      this.probeBackoffHeartbeats = 0
      this.probeWaitHeartbeats = 0
    }
    this.next = Math.max(this.next, index + 1)
    return updated
  }

  /** Optimistically advance `next` after sending entries up to `lastIndex` in replicate state. */
  optimisticUpdate(lastIndex: number): void {
    this.next = lastIndex + 1
  }

  /**
   * A rejection of the AppendEntries at `rejectedIndex`, with the follower's hint of where to try
   * next. Returns false when the rejection is stale (answers an older message).
   */
  maybeDecreaseTo(rejectedIndex: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejectedIndex <= this.match) return false
      this.next = this.match + 1
      return true
    }
    if (this.next - 1 !== rejectedIndex) return false
    this.next = Math.max(Math.min(rejectedIndex, matchHint + 1), this.match + 1)
    assert(this.next >= 1, 'next index is at least 1')
    this.probeSent = false
    return true
  }

  /** The last probe was rejected without progress: wait before the next, twice as long as before. */
  backOffProbe(heartbeatsMax: number): void {
    assert(this.state === ProgressState.Probe, 'only a probe backs off')
    this.probeBackoffHeartbeats = Math.min(heartbeatsMax, Math.max(1, this.probeBackoffHeartbeats * 2))
    this.probeWaitHeartbeats = this.probeBackoffHeartbeats
    this.probeSent = true
  }

  /** Whether probes are backing off (they then carry no entries: they only look for the match). */
  probeBackingOff(): boolean {
    return this.probeBackoffHeartbeats > 0
  }

  /** A heartbeat came back: an unanswered probe may go again, once any backoff has elapsed. */
  onHeartbeatResponse(): void {
    if (this.probeWaitHeartbeats > 0) {
      this.probeWaitHeartbeats--
      if (this.probeWaitHeartbeats > 0) return
    }
    this.probeSent = false
  }

  noteSentCommit(commit: number): void {
    if (commit > this.sentCommit) this.sentCommit = commit
  }

  /** Sending `commit` would move the follower's commit index (it is known to hold entries up to match). */
  canBumpCommit(commit: number): boolean {
    return Math.min(commit, this.match) > this.sentCommit
  }

  markLostState(): void {
    this.lostState = true
  }

  /** Whether the leader should hold back new AppendEntries to this follower. */
  isPaused(): boolean {
    if (this.lostState) return true
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent
      case ProgressState.Replicate:
        return this.inflights.full()
      case ProgressState.Snapshot:
        return true
    }
  }
}
