import { describe, expect, it } from 'vitest'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { parsePromText } from '@nodeledger/metrics'
import { RaftCells } from '../src/metrics/cells.ts'
import { CLOCK_AHEAD_CHECK_INTERVAL_MS, CLOCK_AHEAD_WARN_MS, ClockAhead } from '../src/metrics/clock-ahead.ts'
import { READY_APPLIED_LAG_ENTRIES_MAX, replicaReadiness } from '../src/metrics/readiness.ts'
import { ReplicaMetrics } from '../src/metrics/replica-metrics.ts'
import type { ReplicaMetricsSource } from '../src/metrics/replica-metrics.ts'

describe('replica readiness (GET /ready)', () => {
  const base = {
    stopped: false,
    role: 'follower' as const,
    leader: 1,
    commit: 5_000,
    applied: 5_000,
    leaderCommitSeen: 5_000,
  }

  it('ready with a leader known and applied within the bound of the commit a leader sent', () => {
    expect(replicaReadiness(base)).toMatchObject({ ready: true, behind: 0, leaderCommit: 5_000 })
    expect(replicaReadiness({ ...base, applied: 5_000 - READY_APPLIED_LAG_ENTRIES_MAX, commit: 4_000 })).toMatchObject({
      ready: true,
      behind: READY_APPLIED_LAG_ENTRIES_MAX,
    })
  })

  it("a follower's own commit trails the leader's while it catches up: the commit a leader sent decides", () => {
    const catchingUp = { ...base, commit: 3_000, applied: 3_000, leaderCommitSeen: 5_000 }
    const readiness = replicaReadiness(catchingUp)
    expect(readiness.ready).toBe(false)
    expect(readiness.reason).toMatch(/2000 entries behind the leader's commit 5000/)
  })

  it('not ready without a leader, whatever it applied; nor while stopping', () => {
    expect(replicaReadiness({ ...base, leader: 0, role: 'candidate' })).toMatchObject({
      ready: false,
      reason: expect.stringMatching(/^no leader known/),
    })
    expect(replicaReadiness({ ...base, stopped: true })).toMatchObject({
      ready: false,
      reason: 'the replica is stopping',
    })
  })

  it('a leader measures against its own commit', () => {
    expect(
      replicaReadiness({ ...base, role: 'leader', commit: 9_000, applied: 8_999, leaderCommitSeen: 0 }),
    ).toMatchObject({
      ready: true,
      behind: 1,
    })
  })
})

/** A logger whose JSON lines the test reads. */
function capture(): { logger: pino.Logger; lines: () => Array<{ level: number; msg: string; clockAheadMs?: number }> } {
  const captured: string[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      captured.push(
        ...String(chunk)
          .split('\n')
          .filter((line) => line !== ''),
      )
      done()
    },
  })
  return { logger: pino({ level: 'info' }, sink), lines: () => captured.map((line) => JSON.parse(line)) }
}

describe("clock ahead: the registry's clock (the newest leader stamp) against this replica's", () => {
  function watch(leading: boolean) {
    const clocks = { registryMs: 1_000_000, wallMs: 1_000_000, monotonicMs: 0 }
    const cells = new RaftCells()
    const { logger, lines } = capture()
    const ahead = new ClockAhead({
      registryClockMs: () => clocks.registryMs,
      clock: () => clocks.wallMs,
      nowMs: () => clocks.monotonicMs,
      isLeader: () => leading,
      logger,
      cells,
    })
    return { clocks, cells, lines, ahead }
  }

  it('a follower warns once per interval while the leader stamps ahead of its clock, and says when it stops', () => {
    const { clocks, cells, lines, ahead } = watch(false)
    ahead.afterApply()
    expect(ahead.aheadMs()).toBe(0)
    clocks.registryMs += 3 * 3_600_000 // the leader runs 3 h ahead
    ahead.afterApply() // throttled: checked less than a second ago
    expect(lines()).toEqual([])
    clocks.monotonicMs += CLOCK_AHEAD_CHECK_INTERVAL_MS
    ahead.afterApply()
    clocks.monotonicMs += CLOCK_AHEAD_CHECK_INTERVAL_MS
    ahead.afterApply() // still ahead: not repeated within the warn interval
    expect(lines()).toMatchObject([
      { level: 40, clockAheadMs: 3 * 3_600_000, msg: expect.stringMatching(/^the leader's stamps run ahead/) },
    ])
    expect(cells.clockAheadWarnings).toBe(1)
    expect(ahead.aheadMs()).toBe(3 * 3_600_000)
    clocks.wallMs = clocks.registryMs + 1 // the clocks agree again
    clocks.monotonicMs += CLOCK_AHEAD_CHECK_INTERVAL_MS
    ahead.afterApply()
    expect(lines().at(-1)).toMatchObject({ level: 30, msg: expect.stringMatching(/no longer runs ahead/) })
    expect(ahead.aheadMs()).toBe(0)
  })

  it("a follower that becomes leader while the clock is ahead says so at once, in a leader's words", () => {
    let leading = false
    const clocks = { registryMs: 10 * 3_600_000, wallMs: 0, monotonicMs: 0 }
    const { logger, lines } = capture()
    const ahead = new ClockAhead({
      registryClockMs: () => clocks.registryMs,
      clock: () => clocks.wallMs,
      nowMs: () => clocks.monotonicMs,
      isLeader: () => leading,
      logger,
      cells: new RaftCells(),
    })
    ahead.afterApply()
    leading = true
    clocks.monotonicMs += CLOCK_AHEAD_CHECK_INTERVAL_MS
    ahead.afterApply()
    expect(lines().map((line) => line.msg)).toEqual([
      expect.stringMatching(/^the leader's stamps run ahead/),
      expect.stringMatching(/this leader's stamps are clamped/),
    ])
  })

  it('within the bound nothing is said; a leader whose stamps are clamped says so in its own words', () => {
    const quiet = watch(true)
    quiet.clocks.registryMs += CLOCK_AHEAD_WARN_MS
    quiet.ahead.afterApply()
    expect(quiet.lines()).toEqual([])
    const clamped = watch(true)
    clamped.clocks.registryMs += CLOCK_AHEAD_WARN_MS + 1
    clamped.ahead.afterApply()
    expect(clamped.lines()).toMatchObject([
      { level: 40, msg: expect.stringMatching(/this leader's stamps are clamped/) },
    ])
  })
})

describe('ReplicaMetrics renders what the replica reports', () => {
  it('state gauges from the bound replica, counters and histograms from its cells, labelled by replica id', async () => {
    const metrics = new ReplicaMetrics()
    const driver = {
      readies: 4,
      heartbeatsEarly: 0,
      stalls: 1,
      ticksStalled: 30,
      proposalsLost: 2,
      proposalsUnknown: 0,
      readsDropped: 0,
      snapshotsTaken: 1,
      snapshotsInstalled: 0,
    }
    const source: ReplicaMetricsSource = {
      status: () => ({
        id: 3,
        peerId: 'p',
        role: 'follower',
        term: 7,
        leader: { id: 1, peerId: 'q', multiaddr: '/ip4/127.0.0.1/tcp/1', started: true },
        commit: 90,
        applied: 80,
        firstIndex: 50,
        lastIndex: 95,
        snapshotIndex: 49,
        voters: [1, 2, 3],
        learners: [],
        registryRecords: 12,
        logEntries: 46,
      }),
      stats: () => ({
        driver,
        storage: { entries: 46, logBytes: 4096, snapshotIndex: 49, saveLatencyMsLast: 1, saves: 9 },
      }),
      leaderCommitSeen: 100,
      clockAheadMs: () => 2_500,
      tickIntervalMs: 10,
    }
    metrics.bindReplica(source, 3)
    metrics.raft.proposalsAccepted += 5
    metrics.raft.fsync.observeMs(3)
    metrics.raftLinks.peer(1).bytesReceived += 1234
    const text = parsePromText(await metrics.registry.metrics())
    const replica = { replica: '3' }
    expect(text.value('nodeledger_raft_term', replica)).toBe(7)
    expect(text.value('nodeledger_raft_role', { ...replica, role: 'follower' })).toBe(1)
    expect(text.value('nodeledger_raft_role', { ...replica, role: 'leader' })).toBe(0)
    expect(text.value('nodeledger_raft_leader_id')).toBe(1)
    expect(text.value('nodeledger_raft_applied_index')).toBe(80)
    expect(text.value('nodeledger_raft_leader_commit_index')).toBe(100)
    expect(text.value('nodeledger_raft_applied_lag_entries')).toBe(20)
    expect(text.value('nodeledger_raft_snapshot_index')).toBe(49)
    expect(text.value('nodeledger_raft_proposals_accepted_total')).toBe(5)
    expect(text.value('nodeledger_raft_proposals_lost_total')).toBe(2)
    expect(text.value('nodeledger_raft_stalled_seconds_total')).toBeCloseTo(0.3, 9)
    expect(text.value('nodeledger_fsync_duration_seconds_count')).toBe(1)
    expect(text.value('nodeledger_fsync_duration_seconds_bucket', { le: '0.005' })).toBe(1)
    expect(text.value('nodeledger_storage_log_bytes')).toBe(4096)
    expect(text.value('nodeledger_registry_records')).toBe(12)
    expect(text.value('nodeledger_clock_ahead_seconds')).toBe(2.5)
    expect(text.value('nodeledger_peer_link_received_bytes_total', { protocol: 'raft', peer: '1' })).toBe(1234)
    expect(() => metrics.bindReplica({ ...source }, 4)).toThrow(/already bound/)
  })

  it('two replicas in one process keep apart: each has its own registry', async () => {
    const [a, b] = [new ReplicaMetrics(), new ReplicaMetrics()]
    a.api.answered('status', 'OK', 1)
    const textB = parsePromText(await b.registry.metrics())
    expect(textB.value('nodeledger_api_requests_total', { op: 'status', code: 'OK' })).toBe(0)
    const textA = parsePromText(await a.registry.metrics())
    expect(textA.value('nodeledger_api_requests_total', { op: 'status', code: 'OK' })).toBe(1)
  })
})
