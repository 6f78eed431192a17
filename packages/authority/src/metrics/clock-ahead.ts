import type { Logger } from 'pino'
import { CLOCK_AHEAD_WARN_MS } from '../constants.ts'
import type { RaftCells } from './cells.ts'

// Defined with the other constants, so the CLI's status can import it without the replica.
export { CLOCK_AHEAD_WARN_MS }

/** While the clock stays ahead, the warning repeats this often (not at every entry), and when the role changes. */
export const CLOCK_AHEAD_WARN_INTERVAL_MS = 60_000
/** The comparison runs after applying, at most this often: one clock read per second, not per entry. */
export const CLOCK_AHEAD_CHECK_INTERVAL_MS = 1_000

export interface ClockAheadOptions {
  /** The registry's clock: the newest leader stamp applied. */
  readonly registryClockMs: () => number
  /** This replica's wall clock (the one it stamps entries with when it leads). */
  readonly clock: () => number
  /** Monotonic milliseconds, for the throttles. */
  readonly nowMs: () => number
  readonly isLeader: () => boolean
  readonly logger: Logger
  readonly cells: RaftCells
}

/**
 * Where the leader's clock is compared with the others': on every replica, each time it applies
 * (throttled), the registry's clock against its own. A follower of a leader whose clock runs ahead
 * sees the leader's stamps ahead of its clock and says so; a leader sees it when an earlier
 * leader's stamps ran ahead (its own are then clamped to them, and every uptime stands still until
 * its clock catches up). The leader whose own clock is ahead cannot see it (its stamps are its
 * clock): its followers' logs and `nodeledger_clock_ahead_seconds` show it, and `status` warns.
 */
export class ClockAhead {
  readonly #options: ClockAheadOptions
  #checkedAtMs = Number.NEGATIVE_INFINITY
  #warnedAtMs = Number.NEGATIVE_INFINITY
  #warning = false
  /** Whether the last warning was a leader's: a replica that starts or stops leading says it at once, in its new words. */
  #warnedAsLeader = false

  constructor(options: ClockAheadOptions) {
    this.#options = options
  }

  /** How far the registry's clock runs ahead of this replica's now, in ms; 0 when it does not. */
  aheadMs(): number {
    return Math.max(0, this.#options.registryClockMs() - this.#options.clock())
  }

  /** After entries were applied: compare, at most once per CLOCK_AHEAD_CHECK_INTERVAL_MS. */
  afterApply(): void {
    const nowMs = this.#options.nowMs()
    if (nowMs - this.#checkedAtMs < CLOCK_AHEAD_CHECK_INTERVAL_MS) return
    this.#checkedAtMs = nowMs
    const aheadMs = this.aheadMs()
    const { logger } = this.#options
    if (aheadMs <= CLOCK_AHEAD_WARN_MS) {
      if (this.#warning)
        logger.info({ clockAheadMs: aheadMs }, "the registry's clock no longer runs ahead of this replica's")
      this.#warning = false
      return
    }
    const leading = this.#options.isLeader()
    if (this.#warning && leading === this.#warnedAsLeader && nowMs - this.#warnedAtMs < CLOCK_AHEAD_WARN_INTERVAL_MS)
      return
    this.#warning = true
    this.#warnedAsLeader = leading
    this.#warnedAtMs = nowMs
    this.#options.cells.clockAheadWarnings++
    const fields = {
      clockAheadMs: Math.round(aheadMs),
      registryClockMs: this.#options.registryClockMs(),
      clockMs: this.#options.clock(),
      boundMs: CLOCK_AHEAD_WARN_MS,
    }
    if (leading) {
      logger.warn(
        fields,
        "the registry's clock runs ahead of this leader's clock (an earlier leader's stamps): this leader's stamps are clamped to it, so uptimes stand still until this clock catches up; check the replicas' clocks (NTP)",
      )
    } else {
      logger.warn(
        fields,
        "the leader's stamps run ahead of this replica's clock: the registry keeps time by them, so uptimes will stand still once a leader with a correct clock takes over; check the leader's clock (NTP)",
      )
    }
  }
}
