import type { Multiaddr } from '@multiformats/multiaddr'

/** One replica a feed may be read from. */
export interface FeedReplica {
  readonly address: Multiaddr
  readonly peerId: string
}

/**
 * After its home replica failed, how long a feed stays on the others before it tries home again:
 * long enough that a replica down for a restart is not dialed on every request, short enough that
 * the spread returns soon after it is back.
 */
export const FEED_HOME_RETRY_MS = 10_000

/**
 * Where `since` and `watch` go (PROTOCOL.md "Client behaviour"), spreading the feed over the
 * replicas instead of piling every worker onto the leader (issue 13):
 *
 *   home      the replica a stable hash of the key picks, over the replicas ordered by peer id, so
 *             every worker with the same bootstrap replicas in any order agrees, and the workers
 *             split evenly
 *   failover  a failed replica is left for the next one in that order; a NOT_LEADER hint (a follower
 *             behind the caller's index, or one that lost its leader) is followed once at once
 *   return    home again FEED_HOME_RETRY_MS after it last failed
 *
 * Correctness does not depend on the choice: every replica serves the same committed registry, only
 * later, and refuses an index it has not applied (the server's side), so a feed moved between
 * replicas neither goes backwards nor skips. Pure: time is passed in.
 */
export class FeedRoute {
  /** The replicas in ring order, starting at home. */
  readonly #ring: readonly FeedReplica[]
  #position = 0
  #homeFailedAtMs = Number.NEGATIVE_INFINITY
  /** A hint to try on the next attempt only (then the ring again). */
  #hinted: Multiaddr | undefined

  constructor(replicas: readonly FeedReplica[], key: string) {
    if (replicas.length === 0) throw new TypeError('FeedRoute: at least one replica')
    const ordered = [...replicas].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
    const home = fnv1a32(key) % ordered.length
    this.#ring = [...ordered.slice(home), ...ordered.slice(0, home)]
  }

  /** The home replica (for tests and status). */
  get home(): FeedReplica {
    return this.#ring[0]!
  }

  /** Where the next attempt goes at `nowMs`. */
  target(nowMs: number): Multiaddr {
    const hinted = this.#hinted
    if (hinted !== undefined) {
      this.#hinted = undefined
      return hinted
    }
    if (this.#position !== 0 && nowMs - this.#homeFailedAtMs >= FEED_HOME_RETRY_MS) this.#position = 0
    return this.#ring[this.#position]!.address
  }

  /** Whether `address` is the home replica. */
  isHome(address: Multiaddr): boolean {
    return address.equals(this.home.address)
  }

  /** Whether a feed away from home should go back now (a long watch elsewhere re-opens at home). */
  homeDue(address: Multiaddr, nowMs: number): boolean {
    return !this.isHome(address) && nowMs - this.#homeFailedAtMs >= FEED_HOME_RETRY_MS
  }

  /**
   * An attempt at `address` failed. With a hint, the next attempt goes there at once; without,
   * the ring moves past `address`. Returns whether the next attempt may skip the backoff.
   */
  failed(address: Multiaddr, nowMs: number, hint?: Multiaddr): boolean {
    if (this.isHome(address)) this.#homeFailedAtMs = nowMs
    const at = this.#ring.findIndex((replica) => replica.address.equals(address))
    if (at !== -1 && at === this.#position) this.#position = (at + 1) % this.#ring.length
    if (hint !== undefined && !hint.equals(address)) {
      this.#hinted = hint
      return true
    }
    return false
  }
}

/** FNV-1a over the key's UTF-16 code units: stable across processes and versions, evenly spread. */
export function fnv1a32(key: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash >>> 0
}
