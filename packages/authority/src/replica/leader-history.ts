/** One term's leader as this replica learned of it. */
export interface LeaderTerm {
  readonly term: number
  readonly id: number
  readonly peerId: string
  /** Wall-clock ms when this replica first knew this leader for this term (became it, or heard from it). */
  readonly sinceMs: number
}

/**
 * Terms remembered: a page shows the recent failovers, not the cluster's whole life. 64 terms are
 * weeks of a healthy cluster and minutes of a flapping one, at ~100 bytes each.
 */
export const LEADER_HISTORY_TERMS_MAX = 64

/**
 * Who led which term, since when, as this replica saw it: a ring of the last
 * LEADER_HISTORY_TERMS_MAX terms, fed by the driver's soft-state changes. In memory only: a
 * replica that restarts begins again with the leader it finds (the log records terms, not who led
 * them or when), and terms in which this replica was down or cut off are missing. A later term
 * replaces nothing before it; the same term seen again (leader lost, then heard again) keeps its
 * first sighting. Terms only grow (Raft), so an older term's leader reported late is ignored.
 */
export class LeaderHistory {
  readonly #terms: LeaderTerm[] = []
  readonly #termsMax: number

  constructor(termsMax: number = LEADER_HISTORY_TERMS_MAX) {
    if (!Number.isSafeInteger(termsMax) || termsMax < 1) throw new TypeError('termsMax must be an integer ≥ 1')
    this.#termsMax = termsMax
  }

  /** The leader of `term` is `id` (0: none known, ignored). */
  observe(term: number, id: number, peerId: string, nowMs: number): void {
    if (id === 0) return
    const last = this.#terms[this.#terms.length - 1]
    if (last !== undefined && term <= last.term) return
    this.#terms.push({ term, id, peerId, sinceMs: nowMs })
    if (this.#terms.length > this.#termsMax) this.#terms.shift()
  }

  /** Oldest first. */
  terms(): readonly LeaderTerm[] {
    return [...this.#terms]
  }
}
