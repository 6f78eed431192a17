import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readHistory } from '../../packages/testkit/src/chaos/history-file.ts'
import { runChaos } from '../../packages/testkit/src/chaos/run.ts'
import { checkHistory } from '../../packages/testkit/src/linearizability/index.ts'
import type { HistoryEvent } from '../../packages/testkit/src/linearizability/index.ts'

/**
 * The negative check of pause-leader with lease reads: replica code cannot be put back as it was
 * (a lease counted in ticks, which does not run out while a SIGSTOPped leader cannot tick, so the
 * reads waiting at it were served from its stale state on SIGCONT), so the harness plays that
 * part: from just before the pause until a second after SIGCONT, the sticky readers read `stale`
 * from the replica they believe leads, the paused one. The checker must find that history not
 * linearizable, and the same history without those reads linearizable: the reads the resumed
 * replica answered, and nothing else, are what it caught. If either failed, pause-leader.test.ts
 * passing would prove nothing about stale reads after a pause.
 */
describe('negative check: stale reads from a leader woken from SIGSTOP', () => {
  it('are found not linearizable, and are what makes the history so', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'nodeledger-chaos-pause-control-'))
    try {
      const report = await runChaos({
        nemeses: ['pause-leader'],
        replicas: 3,
        cycles: 2,
        warmupMs: 1_500,
        holdMs: 3_000,
        quietMs: 1_000,
        runDir,
        staleReadsOnResume: true,
      })
      const where = `seed ${report.seed}; ${JSON.stringify(report.faults.map((fault) => fault.notes))}`
      expect(report.leaseReads, where).toBe(true)
      // The readers were asking the paused replica when it woke.
      expect(
        report.faults.reduce((sum, fault) => sum + (fault.readsAtResume ?? 0), 0),
        where,
      ).toBeGreaterThan(0)
      expect(report.verdict.valid, JSON.stringify(report.verdict).slice(0, 2000)).toBe(false)
      expect(report.verdict.failures.length).toBeGreaterThan(0)
      expect(report.valid).toBe(false)
      // Stale reads lose nothing: the writes themselves went through the leader.
      expect(report.lostWrites).toEqual([])

      // Without the readers' reads invoked while they read stale, the history is linearizable.
      const readers = new Set(report.clients.filter((client) => client.sticky).map((client) => client.firstProcess))
      const windows = report.faults.flatMap((fault) => (fault.staleWindow === undefined ? [] : [fault.staleWindow]))
      expect(windows, where).toHaveLength(2)
      // The switch to stale is acknowledged by the agent before the harness stamps it: a margin.
      const inWindow = (event: HistoryEvent): boolean => {
        const runMs = event.timeMs + report.historyToRunMs
        return windows.some((window) => runMs >= window.startMs - 250 && runMs <= window.endMs)
      }
      const events = readHistory(report.files.history)
      const dropped = new Set<number>()
      const pruned: HistoryEvent[] = []
      const open = new Map<number, number>()
      for (const [position, event] of events.entries()) {
        if (event.type === 'invoke') {
          open.set(event.process, position)
          if (readers.has(event.process) && event.f === 'read' && inWindow(event)) dropped.add(position)
          else pruned.push(event)
          continue
        }
        const invokedAt = open.get(event.process)
        open.delete(event.process)
        if (invokedAt === undefined || !dropped.has(invokedAt)) pruned.push(event)
      }
      expect(dropped.size, where).toBeGreaterThan(0)
      const verdict = checkHistory(pruned)
      expect(verdict.failures, where).toEqual([])
      expect(verdict.valid, where).toBe(true)
    } finally {
      rmSync(runDir, { recursive: true, force: true })
    }
  })
})
