import type { Entry, NodeId } from '@nodeledger/raft'

/** FNV-1a over bytes: a cheap digest to compare entry payloads across replicas. */
export function digestBytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i]!
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}

function entryDigest(entry: Entry): string {
  return `${entry.type}:${entry.data.byteLength}:${digestBytes(entry.data)}`
}

/**
 * The Raft safety properties (Figure 3 of the paper), checked as the run goes. Each check records a
 * violation rather than throwing, so a run reports every broken property with the step it broke at.
 */
export class SafetyChecker {
  readonly violations: string[] = []
  /** Election safety: term -> the one replica that led it. */
  private readonly leaderByTerm = new Map<number, NodeId>()
  /** Log matching: "index:term" -> digest of (previous term, payload), for every persisted entry. */
  private readonly entryByIndexTerm = new Map<string, string>()
  /** State machine safety: index -> digest of the entry some replica applied there. */
  readonly appliedByIndex = new Map<number, { term: number; digest: string }>()
  highestAppliedIndex = 0
  /**
   * index -> the entry's term, and the lowest term any replica was in when its commit index covered
   * the entry (or it applied it): an upper bound on the term in which a leader committed it. A
   * follower learns a commit from a leader of its own term, so the lowest is the committing term.
   */
  private readonly committedByIndex = new Map<number, { term: number; commitTerm: number }>()

  private record(step: number, message: string): void {
    if (this.violations.length < 50) this.violations.push(`step ${step}: ${message}`)
  }

  /** Raft §5.2 election safety: at most one leader per term. */
  onLeader(step: number, id: NodeId, term: number): void {
    const existing = this.leaderByTerm.get(term)
    if (existing !== undefined && existing !== id)
      this.record(step, `election safety: replicas ${existing} and ${id} both led term ${term}`)
    else this.leaderByTerm.set(term, id)
  }

  /**
   * Raft §5.3 log matching, by induction: if every (index, term) pair ever persisted anywhere names
   * one payload and one previous term, then two logs that share an (index, term) share the whole
   * prefix before it.
   */
  onPersisted(step: number, id: NodeId, entry: Entry, previousTerm: number): void {
    const key = `${entry.index}:${entry.term}`
    const value = `${previousTerm}|${entryDigest(entry)}`
    const existing = this.entryByIndexTerm.get(key)
    if (existing === undefined) this.entryByIndexTerm.set(key, value)
    else if (existing !== value)
      this.record(step, `log matching: replica ${id} persisted entry ${key} as ${value}, another as ${existing}`)
  }

  /** Raft §5.4.3 state machine safety: no two replicas apply different entries at one index. */
  onApplied(step: number, id: NodeId, entry: Entry, replicaTerm: number): void {
    this.onCommitted(step, id, entry.index, entry.term, replicaTerm)
    const digest = entryDigest(entry)
    const existing = this.appliedByIndex.get(entry.index)
    if (existing === undefined) {
      this.appliedByIndex.set(entry.index, { term: entry.term, digest })
      this.highestAppliedIndex = Math.max(this.highestAppliedIndex, entry.index)
    } else if (existing.term !== entry.term || existing.digest !== digest) {
      this.record(
        step,
        `state machine safety: replica ${id} applied ${entry.index}@${entry.term}, another applied ${entry.index}@${existing.term}`,
      )
    }
  }

  /**
   * A replica's commit index covers `index`, holding term `term` there. Committed entries never
   * change (Raft §5.4.3, stated at commit rather than at apply): a commit that is later overwritten
   * is caught here even if no replica applied it before the overwrite.
   */
  onCommitted(step: number, id: NodeId, index: number, term: number, replicaTerm: number): void {
    const existing = this.committedByIndex.get(index)
    if (existing === undefined) this.committedByIndex.set(index, { term, commitTerm: replicaTerm })
    else if (existing.term !== term)
      this.record(
        step,
        `state machine safety: replica ${id} committed ${index}@${term}, another committed ${index}@${existing.term}`,
      )
    else if (replicaTerm < existing.commitTerm) existing.commitTerm = replicaTerm
  }

  /**
   * Raft §5.4 leader completeness: the new leader of `leaderTerm` holds every entry committed in an
   * earlier term (a leader of an old term, say one whose votes waited out a pause, need not hold
   * what was committed in later terms). `termAt` answers from the leader's log; undefined below its
   * snapshot is fine. Entries committed after this check are covered by the quorum overlap.
   */
  onBecameLeader(
    step: number,
    id: NodeId,
    leaderTerm: number,
    firstIndex: number,
    termAt: (index: number) => number | undefined,
  ): void {
    for (const [index, committed] of this.committedByIndex) {
      if (index < firstIndex || committed.commitTerm >= leaderTerm) continue
      const term = termAt(index)
      if (term !== committed.term) {
        this.record(
          step,
          `leader completeness: new leader ${id} of term ${leaderTerm} has ${term === undefined ? 'no entry' : `term ${term}`} at index ${index}, committed in term ${committed.commitTerm} (entry term ${committed.term})`,
        )
        return
      }
    }
  }

  fail(step: number, message: string): void {
    this.record(step, message)
  }
}
