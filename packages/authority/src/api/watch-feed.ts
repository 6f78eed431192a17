import { ProtocolError, encodeWatchEvent } from '@nodeledger/protocol'
import type { Changes } from '@nodeledger/registry'

/** One watch event frame, encoded, and where the watcher stands after it. */
export interface WatchEventFrame {
  readonly frame: Uint8Array
  readonly throughIndex: number
  /** More changes follow at once (the event was cut at the page bound). */
  readonly more: boolean
  readonly records: number
}

/** What the feed reads: the applied index, the registry's change index, and a wait for the next apply. */
export interface WatchFeedSource {
  readonly applied: number
  changesSince(sinceIndex: number, limit: number): Changes
  waitApplied(index: number, signal: AbortSignal): Promise<void>
}

export interface WatchFeedOptions {
  /** Records per event at most (PROTOCOL.md "Watch frames": 10 000; a smaller page keeps frames small). */
  readonly recordsPerEventMax: number
  /**
   * After an entry is applied, how long the feed waits before it wakes the watchers, so that
   * entries applied meanwhile (a join storm) ride one event per watcher instead of one each: at
   * least lingerMsMin, lingerMsPerWatcher more per open watch, at most lingerMsMax. Growing with
   * the watchers keeps the frames the leader writes per second about constant as the network grows
   * (N watchers woken every c·N ms is 1/c frames per ms), at a latency that grows by c per watcher.
   */
  readonly lingerMsMin: number
  readonly lingerMsPerWatcher: number
  readonly lingerMsMax: number
  /** How long one wait lasts when nothing is applied (watchers then re-check leadership and streams). */
  readonly pollMs: number
  /** Frames kept per applied index (one per distinct watcher position); more are encoded, not kept. */
  readonly framesCachedMax: number
}

/**
 * The leader's side of every watch, shared by all watchers (issue 13: the fan-out grew with the
 * square of the network). Two things are done once per apply rather than once per watcher:
 *
 *   waking    one wait on the replica's applied index and one linger timer for all watchers; they
 *             wake together, a linger after the first new entry (longer with more watchers), with
 *             whatever was applied meanwhile
 *   encoding  the event after a given index is built (changesSince) and encoded once per applied
 *             index; every watcher standing at that index writes the same bytes
 *
 * A watcher that is behind (its index below the applied one) never waits: it takes the next page.
 * Frames are valid only for the applied index they were built at, so the cache is dropped on every
 * apply and holds at most framesCachedMax positions (a watcher's position is its last throughIndex).
 */
export class WatchFeed {
  readonly #source: WatchFeedSource
  readonly #options: WatchFeedOptions
  /** Frames by the watcher position they follow, all built at applied index #framesAt. */
  readonly #frames = new Map<number, WatchEventFrame | null>()
  #framesAt = -1
  /** The shared wait in progress, if any. */
  #wake: Promise<void> | undefined
  /** Watches open now (ApiServer opens and closes them): the linger grows with them. */
  #watchers = 0
  /** Events built and frames served from the cache, for tests and the profile's story. */
  encoded = 0
  shared = 0

  constructor(source: WatchFeedSource, options: WatchFeedOptions) {
    if (options.recordsPerEventMax < 1) throw new RangeError('recordsPerEventMax is at least 1')
    if (options.lingerMsMin < 0 || options.lingerMsMax < options.lingerMsMin || options.lingerMsPerWatcher < 0)
      throw new RangeError('linger: 0 <= lingerMsMin <= lingerMsMax, lingerMsPerWatcher >= 0')
    this.#source = source
    this.#options = options
  }

  /** A watch opened; call `closed` once when it ends. */
  opened(): void {
    this.#watchers++
  }

  closed(): void {
    this.#watchers--
  }

  /** How long the next wake-up lingers after the first new entry. */
  get lingerMs(): number {
    const { lingerMsMin, lingerMsPerWatcher, lingerMsMax } = this.#options
    return Math.min(lingerMsMax, Math.max(lingerMsMin, Math.round(this.#watchers * lingerMsPerWatcher)))
  }

  /** The next event for a watcher at `throughIndex`, or undefined if nothing was applied after it. */
  eventAfter(throughIndex: number): WatchEventFrame | undefined {
    const applied = this.#source.applied
    if (applied !== this.#framesAt) {
      this.#frames.clear()
      this.#framesAt = applied
    }
    const cached = this.#frames.get(throughIndex)
    if (cached !== undefined) {
      this.shared++
      return cached ?? undefined
    }
    const event = this.#build(throughIndex)
    if (this.#frames.size < this.#options.framesCachedMax) this.#frames.set(throughIndex, event ?? null)
    return event
  }

  /**
   * Resolves once an entry after `appliedIndex` is applied (at once if one is), or after pollMs
   * without an apply, or when `signal` aborts. Pass the applied index the watcher's last event (or
   * empty look) was built at, not its throughIndex: an entry that changed no record (a new term's
   * no-op) moves the applied index past the registry's, and waiting on throughIndex would return at
   * once without end.
   */
  async changedAfter(appliedIndex: number, signal: AbortSignal): Promise<void> {
    if (this.#source.applied > appliedIndex || signal.aborted) return
    this.#wake ??= this.#wakeAfterNextApply().finally(() => {
      this.#wake = undefined
    })
    await raceAbort(this.#wake, signal)
  }

  async #wakeAfterNextApply(): Promise<void> {
    const poll = AbortSignal.timeout(this.#options.pollMs)
    try {
      await this.#source.waitApplied(this.#source.applied + 1, poll)
    } catch {
      return // nothing applied within pollMs
    }
    const lingerMs = this.lingerMs
    if (lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, lingerMs))
  }

  /** A page that fits one frame: halve it until it does (the records of one entry stay together). */
  #build(throughIndex: number): WatchEventFrame | undefined {
    for (let pageLimit = this.#options.recordsPerEventMax; ; pageLimit = Math.max(1, Math.floor(pageLimit / 2))) {
      const changes = this.#source.changesSince(throughIndex, pageLimit)
      if (changes.records.length === 0 && changes.throughIndex <= throughIndex) return undefined
      try {
        const frame = encodeWatchEvent({ records: changes.records, throughIndex: changes.throughIndex })
        this.encoded++
        return { frame, throughIndex: changes.throughIndex, more: changes.more, records: changes.records.length }
      } catch (error) {
        if (!(error instanceof ProtocolError) || error.code !== 'TOO_LARGE' || pageLimit === 1) throw error
      }
    }
  }
}

/** `promise`, or resolved as soon as `signal` aborts (the shared wait goes on for the others). */
function raceAbort(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => resolve()
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      },
      () => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      },
    )
  })
}
