import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Registry, encodeCommand, encodeValidatedCommand, uptimeMs } from '../src/index.ts'
import type { Command, Delta, NodeData, RegistryLogEntry, SelfReported } from '../src/index.ts'
import { REPLICAS, peerId } from './helpers.ts'

/**
 * Property tests of the state machine. Run counts are modest on purpose: the machine is shared,
 * and each run encodes and applies dozens of entries.
 */

const T0 = 1_700_000_000_000
const WORKERS = [1, 2, 3, 4, 5].map(peerId)
const OUTSIDER = peerId(666)
const ADDRESSES = [
  '/ip4/10.0.0.1/tcp/4001',
  '/ip4/10.0.0.2/tcp/4001',
  '/ip6/::1/udp/4001/quic-v1',
  '/dns4/node.example.com/tcp/443/wss',
]

const fieldsArbitrary: fc.Arbitrary<Partial<SelfReported>> = fc.record(
  {
    multiaddrs: fc.subarray(ADDRESSES),
    isStaked: fc.boolean(),
    isValidator: fc.boolean(),
    isTwitterScraper: fc.boolean(),
    isWebScraper: fc.boolean(),
    isDiscordScraper: fc.boolean(),
    isTelegramScraper: fc.boolean(),
    version: fc.constantFrom('1.0.0', '1.1.0', '2.0.0-rc.1'),
    ethAddress: fc.constantFrom('', `0x${'ab'.repeat(20)}`, `0x${'0F'.repeat(20)}`),
    returnedItems: fc.nat({ max: 10_000 }),
    returnedItemsLastMs: fc.nat({ max: 1_000_000 }).map((d) => T0 + d),
    timeouts: fc.nat({ max: 50 }),
    timeoutsLastMs: fc.nat({ max: 1_000_000 }).map((d) => T0 + d),
    notFound: fc.nat({ max: 50 }),
    notFoundLastMs: fc.nat({ max: 1_000_000 }).map((d) => T0 + d),
  },
  { requiredKeys: [] },
)

const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('delta' as const),
      submitterPeerId: fc.constantFrom(...WORKERS, ...REPLICAS, OUTSIDER),
      delta: fc.record({
        originPeerId: fc.constantFrom(...WORKERS),
        seq: fc.integer({ min: 1, max: 12 }),
        fields: fieldsArbitrary,
      }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('observation' as const),
      replicaPeerId: fc.constantFrom(...REPLICAS, ...REPLICAS, OUTSIDER),
      peerId: fc.constantFrom(...WORKERS),
      event: fc.constantFrom('joined' as const, 'left' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('replica-reset' as const), replicaPeerId: fc.constantFrom(...REPLICAS) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('expire' as const), ttlMs: fc.integer({ min: 1, max: 20_000 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('replicas' as const),
      replicaPeerIds: fc.subarray(REPLICAS, { minLength: 1 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('liveness' as const),
      replicaPeerId: fc.constantFrom(...REPLICAS, OUTSIDER),
      peerId: fc.constantFrom(...WORKERS),
      active: fc.boolean(),
      reason: fc.constantFrom(
        'heartbeat' as const,
        'connected' as const,
        'ttl' as const,
        'left' as const,
        'disconnected' as const,
      ),
    }),
  },
)

/** Leader stamps: mostly forward, sometimes backwards (a new leader's clock lagging). */
const logArbitrary = fc
  .array(fc.tuple(commandArbitrary, fc.integer({ min: -3_000, max: 10_000 }), fc.integer({ min: 1, max: 3 })), {
    minLength: 1,
    maxLength: 60,
  })
  .map((steps) => {
    const entries: RegistryLogEntry[] = []
    let timestampMs = T0
    let index = 0
    for (const [command, stepMs, gap] of steps) {
      timestampMs = Math.max(1, timestampMs + stepMs)
      index += gap // gaps: Raft entries that are not the registry's
      entries.push({ index, data: encodeCommand({ timestampMs, command }) })
    }
    return entries
  })

function registryAfter(entries: readonly RegistryLogEntry[]): Registry {
  const registry = new Registry({ replicaPeerIds: REPLICAS })
  for (const entry of entries) registry.apply(entry)
  return registry
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

describe('state machine properties', () => {
  it('gives byte-identical snapshots on replicas that applied the same entries, however they got there', () => {
    fc.assert(
      fc.property(logArbitrary, fc.nat(), (entries, cutAt) => {
        const first = registryAfter(entries)
        const second = registryAfter(entries)
        // A third replica installs a snapshot partway through, then applies the rest.
        const cut = cutAt % (entries.length + 1)
        const third = new Registry()
        third.restore(registryAfter(entries.slice(0, cut)).snapshot())
        for (const entry of entries.slice(cut)) third.apply(entry)
        const bytes = first.snapshot()
        expect(same(bytes, second.snapshot())).toBe(true)
        expect(same(bytes, third.snapshot())).toBe(true)
        expect(third.changesSince(0)).toEqual(first.changesSince(0))
      }),
      { numRuns: 150 },
    )
  })

  it('round-trips snapshot and restore', () => {
    fc.assert(
      fc.property(logArbitrary, (entries) => {
        const registry = registryAfter(entries)
        const restored = new Registry()
        restored.restore(registry.snapshot(), { verify: true })
        expect(restored.stats()).toEqual(registry.stats())
        expect(restored.list()).toEqual(registry.list())
        expect(restored.replicaPeerIds).toEqual(registry.replicaPeerIds)
        for (const category of ['twitter', 'web', 'discord', 'telegram'] as const) {
          expect(restored.eligible(category)).toEqual(registry.eligible(category))
        }
        expect(same(restored.snapshot(), registry.snapshot())).toBe(true)
      }),
      { numRuns: 150 },
    )
  })

  it('keeps uptime within the span since first join, whatever the order of events', () => {
    fc.assert(
      fc.property(logArbitrary, (entries) => {
        const registry = registryAfter(entries)
        const nowMs = registry.stats().clockMs
        for (const record of registry.list()) {
          if (record.firstJoinedMs === 0) {
            expect(uptimeMs(record, nowMs)).toBe(0)
            continue
          }
          expect(uptimeMs(record, nowMs)).toBeLessThanOrEqual(nowMs - record.firstJoinedMs)
          if (!record.isActive)
            expect(record.uptimeAccumulatedMs).toBeLessThanOrEqual(record.lastLeftMs - record.firstJoinedMs)
          expect(record.isActive).toBe(record.observers.length > 0)
        }
      }),
      { numRuns: 150 },
    )
  })

  it('changes nothing on a stale or replayed delta', () => {
    fc.assert(
      fc.property(logArbitrary, fc.nat(), fc.nat({ max: 3 }), fieldsArbitrary, (entries, pick, lower, fields) => {
        const registry = registryAfter(entries)
        const known = registry.list().filter((record) => record.originSeq > 0)
        if (known.length === 0) return
        const target = known[pick % known.length]!
        const seq = Math.max(1, target.originSeq - lower)
        const before = registry.list()
        const { clockMs, appliedIndex } = registry.stats()
        const command: Command = {
          kind: 'delta',
          submitterPeerId: target.peerId,
          delta: { originPeerId: target.peerId, seq, fields },
        }
        const result = registry.apply({
          index: appliedIndex + 1,
          data: encodeCommand({ timestampMs: clockMs, command }),
        })
        expect(result).toMatchObject({
          status: 'stale',
          reason: seq === target.originSeq ? 'REPLAYED' : 'STALE_SEQUENCE',
        })
        expect(registry.list()).toEqual(before)
        expect(registry.get(target.peerId)).toBe(target)
      }),
      { numRuns: 150 },
    )
  })

  it("gives the same records for any interleaving of deltas that keeps each origin's order", () => {
    // Per origin: increasing sequence numbers (with gaps), each delta some changed fields.
    const originLogs = fc.tuple(
      ...WORKERS.map((origin) =>
        fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fieldsArbitrary), { maxLength: 8 }).map((steps) => {
          let seq = 0
          return steps.map(([gap, fields]): Delta => {
            seq += gap
            return { originPeerId: origin, seq, fields }
          })
        }),
      ),
    )
    const interleaving = (logs: Delta[][], choices: number[]): Delta[] => {
      const queues = logs.map((log) => [...log])
      const out: Delta[] = []
      let choice = 0
      while (queues.some((queue) => queue.length > 0)) {
        const open = queues.filter((queue) => queue.length > 0)
        out.push(open[(choices[choice++ % Math.max(1, choices.length)] ?? 0) % open.length]!.shift()!)
      }
      return out
    }
    const applyDeltas = (deltas: readonly Delta[], replays: readonly Delta[]): Registry => {
      const registry = new Registry({ replicaPeerIds: REPLICAS })
      let index = 0
      for (const delta of [...deltas, ...replays]) {
        const command: Command = { kind: 'delta', submitterPeerId: delta.originPeerId, delta }
        registry.apply({ index: ++index, data: encodeCommand({ timestampMs: T0, command }) })
      }
      return registry
    }
    const withoutIndex = (records: readonly NodeData[]) => records.map(({ changedIndex: _, ...rest }) => rest)
    fc.assert(
      fc.property(
        originLogs,
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        (logs, choicesA, choicesB, replayPicks) => {
          const all = logs.flat()
          const replays = all.length === 0 ? [] : replayPicks.map((pick) => all[pick % all.length]!)
          const a = applyDeltas(interleaving(logs, choicesA), [])
          const b = applyDeltas(interleaving(logs, choicesB), replays)
          expect(withoutIndex(b.list())).toEqual(withoutIndex(a.list()))
        },
      ),
      { numRuns: 150 },
    )
  })

  it('changesSince pages are exactly the records changed after the index, in log order, never splitting an entry', () => {
    fc.assert(
      fc.property(
        logArbitrary,
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 4 }),
        (entries, sinceIndex, limit) => {
          const registry = registryAfter(entries)
          // The specification: every record with changedIndex > since, ordered by (changedIndex, peerId).
          const expected = registry
            .list({ limit: Number.MAX_SAFE_INTEGER })
            .filter((record) => record.changedIndex > sinceIndex)
            .sort((a, b) => a.changedIndex - b.changedIndex || (a.peerId < b.peerId ? -1 : 1))
          const paged: NodeData[] = []
          let from = sinceIndex
          for (let pages = 0; pages < 100; pages++) {
            const page = registry.changesSince(from, limit)
            paged.push(...page.records)
            expect(page.throughIndex).toBeGreaterThanOrEqual(from)
            from = page.throughIndex
            if (!page.more) break
          }
          expect(paged).toEqual(expected)
        },
      ),
      { numRuns: 200 },
    )
  })
})

describe('the leader applies what it proposed without decoding it', () => {
  // Encode once (the performance issue): the leader applies the envelope it built, followers the
  // bytes. Both must leave byte-identical registries, or replicas would diverge.
  it('applyDecoded(envelope) and apply(encode(envelope)) give identical snapshots', () => {
    fc.assert(
      fc.property(fc.array(commandArbitrary, { maxLength: 40 }), (commands) => {
        const leader = new Registry({ replicaPeerIds: REPLICAS })
        const follower = new Registry({ replicaPeerIds: REPLICAS })
        commands.forEach((command, i) => {
          const envelope = { timestampMs: T0 + i, command }
          let data: Uint8Array
          try {
            data = encodeValidatedCommand(envelope)
          } catch {
            return
          }
          leader.applyDecoded(i + 1, envelope)
          follower.apply({ index: i + 1, data })
        })
        expect(leader.snapshot()).toEqual(follower.snapshot())
      }),
      { numRuns: 300 },
    )
  })
})
