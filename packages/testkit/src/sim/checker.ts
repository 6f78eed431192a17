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
  /** index -> term of the entry some replica's commit index covered (a superset of what was applied). */
  private readonly committedByIndex = new Map<number, number>()

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
  onApplied(step: number, id: NodeId, entry: Entry): void {
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
  onCommitted(step: number, id: NodeId, index: number, term: number): void {
    const existing = this.committedByIndex.get(index)
    if (existing === undefined) this.committedByIndex.set(index, term)
    else if (existing !== term)
      this.record(
        step,
        `state machine safety: replica ${id} committed ${index}@${term}, another committed ${index}@${existing}`,
      )
  }

  /**
   * Raft §5.4 leader completeness: a new leader holds every entry already committed anywhere (every
   * applied entry was committed). `termAt` answers from the leader's log; undefined below its
   * snapshot is fine. An entry committed after this check began was committed in an older term by a
   * quorum that overlaps the new leader's voters, so checking at election time only is sound.
   */
  onBecameLeader(step: number, id: NodeId, firstIndex: number, termAt: (index: number) => number | undefined): void {
    const committed = new Map(this.committedByIndex)
    for (const [index, applied] of this.appliedByIndex) committed.set(index, applied.term)
    for (const [index, committedTerm] of committed) {
      if (index < firstIndex) continue
      const term = termAt(index)
      if (term !== committedTerm) {
        this.record(
          step,
          `leader completeness: new leader ${id} has ${term === undefined ? 'no entry' : `term ${term}`} at committed index ${index} (committed term ${committedTerm})`,
        )
        return
      }
    }
  }

  fail(step: number, message: string): void {
    this.record(step, message)
  }
}
