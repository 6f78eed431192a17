import { describe, expect, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis pause-leader: SIGSTOP the leader, SIGCONT it 3 s later, with lease reads on', () => {
  // The woken leader still believes it leads in its old term. With leaseReads, a lease counted in
  // ticks would not have expired while it could not tick: the sticky readers' lease reads waiting
  // at it are the first it answers, and the history shows whether it served them stale.
  it('serves no stale lease read, loses no acknowledged write', async () => {
    const report = await expectNemesisSurvived('pause-leader')
    const where = `seed ${report.seed}`
    // The run is the one the fault was found in: leases on, the sticky readers at lease, the writers' reads linearizable.
    expect(report.leaseReads, where).toBe(true)
    expect(
      report.clients.filter((client) => client.sticky).map((client) => client.readConsistency),
      where,
    ).toEqual(['lease', 'lease'])
    expect(
      report.clients.filter((client) => !client.sticky).map((client) => client.readConsistency),
      where,
    ).toEqual(['linearizable', 'linearizable', 'linearizable'])
    // And it exercised what the fault needs: lease reads waiting at the paused leader when it woke.
    const waiting = report.faults.map((fault) => fault.readsAtResume ?? 0)
    expect(
      waiting.reduce((sum, count) => sum + count, 0),
      `${where}; ${JSON.stringify(report.faults.map((fault) => fault.notes))}`,
    ).toBeGreaterThan(0)
  })
})
