import { describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { FEED_HOME_RETRY_MS, FeedRoute, fnv1a32 } from '../src/feed-route.ts'

const replicas = ['QmA', 'QmB', 'QmC'].map((peerId, i) => ({
  peerId,
  address: multiaddr(`/ip4/127.0.0.${i + 1}/tcp/4001/p2p/12D3KooW${peerId}`),
}))
const text = (address: { toString(): string }): string => address.toString().split('/')[2]!

describe('FeedRoute: where since and watch go', () => {
  it('the home replica is a stable hash of the key, whatever the bootstrap order', () => {
    for (const key of ['a', 'worker-17', '12D3KooWExample']) {
      const home = new FeedRoute(replicas, key).home.peerId
      expect(new FeedRoute([...replicas].reverse(), key).home.peerId).toBe(home)
      expect(new FeedRoute([replicas[1]!, replicas[2]!, replicas[0]!], key).home.peerId).toBe(home)
    }
    expect(fnv1a32('')).toBe(0x811c9dc5)
    expect(fnv1a32('a')).toBe(0xe40c292c)
  })

  it('spreads keys evenly over the replicas', () => {
    const counts = new Map<string, number>()
    for (let i = 0; i < 3_000; i++) {
      const home = new FeedRoute(replicas, `12D3KooWpeer${i}`).home.peerId
      counts.set(home, (counts.get(home) ?? 0) + 1)
    }
    for (const replica of replicas) expect(counts.get(replica.peerId)).toBeGreaterThan(850)
  })

  it('moves past a failed replica, follows a hint once, and returns home after FEED_HOME_RETRY_MS', () => {
    const route = new FeedRoute(replicas, 'k')
    const home = route.target(0)
    expect(route.isHome(home)).toBe(true)
    expect(route.failed(home, 0)).toBe(false)
    const second = route.target(1)
    expect(text(second)).not.toBe(text(home))
    expect(route.homeDue(second, FEED_HOME_RETRY_MS - 1)).toBe(false)

    // A NOT_LEADER hint from the second goes to the hinted replica once, without backoff.
    const hint = replicas.find((replica) => !replica.address.equals(home) && !replica.address.equals(second))!
    expect(route.failed(second, 2, hint.address)).toBe(true)
    expect(route.target(3).equals(hint.address)).toBe(true)
    const third = route.target(4)
    expect(third.equals(home) || third.equals(second)).toBe(false)

    expect(route.homeDue(third, FEED_HOME_RETRY_MS)).toBe(true)
    expect(route.target(FEED_HOME_RETRY_MS).equals(home)).toBe(true)
  })

  it('a failure at a replica not in use does not move the feed', () => {
    const route = new FeedRoute(replicas, 'k')
    const home = route.target(0)
    const other = replicas.find((replica) => !replica.address.equals(home))!.address
    route.failed(other, 0)
    expect(route.target(1).equals(home)).toBe(true)
  })
})
