import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runChaos } from '../../packages/testkit/src/chaos/run.ts'

/**
 * The negative control: the same harness, with the clients reading at `stale` consistency (any
 * replica answers from its own state). Two of the five clients only read, so they keep asking
 * whichever replica they reach, the cut-off old leader included, while the others' writes are
 * acknowledged by the new one. The checker must call that history not linearizable; if it ever
 * passed, the passing nemesis tests would prove nothing.
 */
describe('negative control: stale reads under a leader partition', () => {
  it('are found not linearizable', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'nodeledger-chaos-control-'))
    try {
      const report = await runChaos({
        nemeses: ['partition-leader'],
        replicas: 3,
        cycles: 2,
        warmupMs: 1_500,
        holdMs: 3_000,
        quietMs: 1_000,
        runDir,
        readConsistency: 'stale',
      })
      expect(report.verdict.valid, JSON.stringify(report.verdict).slice(0, 2000)).toBe(false)
      expect(report.verdict.failures.length).toBeGreaterThan(0)
      expect(report.valid).toBe(false)
      // Stale reads lose nothing: the writes themselves still went through the leader.
      expect(report.lostWrites).toEqual([])
    } finally {
      rmSync(runDir, { recursive: true, force: true })
    }
  })
})
