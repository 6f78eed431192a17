import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeWatchFrame } from '@nodeledger/protocol'
import { Registry, encodeCommand } from '@nodeledger/registry'
import { ApplyWaiters } from '../src/replica/apply-waiters.ts'
import { WatchFeed } from '../src/api/watch-feed.ts'
import type { WatchFeedOptions } from '../src/api/watch-feed.ts'

const NODES = await Promise.all(
  Array.from({ length: 6 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
)

/** A registry that applies at once and releases waiters as the replica does. */
class Source {
  readonly registry = new Registry()
  readonly waiters = new ApplyWaiters()
  changesCalls = 0
  /** The driver's applied index: ahead of the registry's after an entry that is not a command. */
  appliedIndex = 0
  get applied(): number {
    return this.appliedIndex
  }
  /** A new term's no-op: applied by the driver, never seen by the registry. */
  noop(): void {
    this.appliedIndex++
    this.waiters.release(this.appliedIndex)
  }
  changesSince(sinceIndex: number, limit: number) {
    this.changesCalls++
    return this.registry.changesSince(sinceIndex, limit)
  }
  waitApplied(index: number, signal: AbortSignal): Promise<void> {
    if (this.applied >= index) return Promise.resolve()
    return this.waiters.wait(index, signal)
  }
  join(node: string, seq = 1): void {
    const index = this.applied + 1
    const data = encodeCommand({
      timestampMs: 1_760_000_000_000 + index,
      command: { kind: 'delta', submitterPeerId: node, delta: { originPeerId: node, seq, fields: { version: 'v' } } },
    })
    this.registry.apply({ index, data })
    this.appliedIndex = index
    this.waiters.release(index)
  }
}

const OPTIONS: WatchFeedOptions = {
  recordsPerEventMax: 1000,
  lingerMsMin: 0,
  lingerMsPerWatcher: 0,
  lingerMsMax: 0,
  pollMs: 60_000,
  framesCachedMax: 64,
}

describe('WatchFeed', () => {
  it('builds and encodes the event once for every watcher at the same position', () => {
    const source = new Source()
    const feed = new WatchFeed(source, OPTIONS)
    source.join(NODES[0]!)
    source.join(NODES[1]!)
    const frames = Array.from({ length: 100 }, () => feed.eventAfter(0))
    expect(feed.encoded).toBe(1)
    expect(source.changesCalls).toBe(1)
    expect(new Set(frames.map((event) => event?.frame)).size).toBe(1)
    const decoded = decodeWatchFrame(frames[0]!.frame)
    expect(decoded.ok).toBe(true)
    if (decoded.ok) {
      expect(decoded.event.records.map((record) => record.peerId)).toEqual([NODES[0], NODES[1]])
      expect(decoded.event.throughIndex).toBe(2)
    }
    // Another position is built of its own; nothing new after the applied index is undefined.
    expect(feed.eventAfter(1)?.records).toBe(1)
    expect(feed.eventAfter(2)).toBeUndefined()
    expect(feed.encoded).toBe(2)
  })

  it('drops its frames when an entry is applied, so no watcher is served a stale event', () => {
    const source = new Source()
    const feed = new WatchFeed(source, OPTIONS)
    source.join(NODES[0]!)
    expect(feed.eventAfter(0)?.throughIndex).toBe(1)
    source.join(NODES[1]!)
    const event = feed.eventAfter(0)
    expect(event?.throughIndex).toBe(2)
    expect(event?.records).toBe(2)
  })

  it('pages at recordsPerEventMax, and a watcher that is behind never waits', async () => {
    const source = new Source()
    const feed = new WatchFeed(source, { ...OPTIONS, recordsPerEventMax: 2 })
    for (const node of NODES) source.join(node)
    const seen: string[] = []
    let through = 0
    for (;;) {
      await feed.changedAfter(through, AbortSignal.timeout(30_000))
      const event = feed.eventAfter(through)
      if (event === undefined) break
      const decoded = decodeWatchFrame(event.frame)
      if (!decoded.ok) throw new Error('error frame')
      expect(decoded.event.records.length).toBeLessThanOrEqual(2)
      seen.push(...decoded.event.records.map((record) => record.peerId))
      expect(event.throughIndex).toBeGreaterThan(through)
      through = event.throughIndex
      if (!event.more) break
    }
    expect(seen).toEqual(NODES)
    expect(through).toBe(NODES.length)
  })

  it('wakes every waiting watcher from one wait, with the entries applied while it lingered in one event', async () => {
    const source = new Source()
    const feed = new WatchFeed(source, { ...OPTIONS, lingerMsMin: 50, lingerMsMax: 50 })
    const signal = AbortSignal.timeout(30_000)
    const woken = Array.from({ length: 50 }, () => feed.changedAfter(0, signal))
    // One waiter on the replica for all fifty watchers.
    source.join(NODES[0]!)
    // Applied during the linger: rides the same wake-up.
    source.join(NODES[1]!)
    source.join(NODES[2]!)
    await Promise.all(woken)
    const event = feed.eventAfter(0)
    expect(event?.records).toBe(3)
    expect(event?.throughIndex).toBe(3)
    for (let i = 0; i < 49; i++) feed.eventAfter(0)
    expect(feed.encoded).toBe(1)
    expect(feed.shared).toBe(49)
  })

  it('an entry that changed no record (a no-op) yields no event, and the watcher waits for the next entry', async () => {
    const source = new Source()
    const feed = new WatchFeed(source, OPTIONS)
    source.join(NODES[0]!)
    source.noop()
    // The watcher as ApiServer runs it: read the applied index, look, then wait after that index.
    const through = feed.eventAfter(0)!.throughIndex
    expect(through).toBe(1)
    const builtAt = source.applied
    expect(feed.eventAfter(through)).toBeUndefined()
    let woken = false
    const waiting = feed.changedAfter(builtAt, AbortSignal.timeout(30_000)).then(() => {
      woken = true
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(woken).toBe(false)
    source.join(NODES[1]!)
    await waiting
    expect(feed.eventAfter(through)?.records).toBe(1)
  })

  it('lingers longer with more watchers, within its bounds', () => {
    const feed = new WatchFeed(new Source(), { ...OPTIONS, lingerMsMin: 20, lingerMsPerWatcher: 0.1, lingerMsMax: 250 })
    expect(feed.lingerMs).toBe(20)
    for (let i = 0; i < 1000; i++) feed.opened()
    expect(feed.lingerMs).toBe(100)
    for (let i = 0; i < 5000; i++) feed.opened()
    expect(feed.lingerMs).toBe(250)
    for (let i = 0; i < 6000; i++) feed.closed()
    expect(feed.lingerMs).toBe(20)
  })

  it('a watcher whose signal aborts stops waiting; the others go on waiting', async () => {
    const source = new Source()
    const feed = new WatchFeed(source, OPTIONS)
    const gone = new AbortController()
    const leaving = feed.changedAfter(0, gone.signal)
    let stayedWoken = false
    const staying = feed.changedAfter(0, AbortSignal.timeout(30_000)).then(() => {
      stayedWoken = true
    })
    gone.abort()
    await leaving
    await Promise.resolve()
    expect(stayedWoken).toBe(false)
    source.join(NODES[0]!)
    await staying
    expect(stayedWoken).toBe(true)
  })
})
