import { describe, expect, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis wipe-a-replica: the operator lost-disk sequence, then a replacement by a new member', () => {
  // Each cycle: stop a follower A; writes acknowledged by B and C; stop B and C; wipe B; start B
  // and A. The nemesis itself finds it wrong if B starts (it must exit 7, LOST_STATE), if A alone
  // elects a leader, or if the leader A and C elect lacks an acknowledged write. Healed by adding
  // a new member (next id, own key, data dir and 127.0.0.x address), promoting it and removing B.
  // Two cycles: the second runs on a membership that is no longer 1..3.
  it('the wiped replica refuses, nobody leads without the writes, the replacement serves: linearizable, nothing lost', async () => {
    const report = await expectNemesisSurvived('wipe-a-replica')
    const where = `seed ${report.seed}; ${JSON.stringify(report.faults.map((fault) => fault.notes))}`
    // Each cycle retired the wiped id and added the next one never used: 4, then 5 (the second
    // cycle may wipe 4 itself).
    const replacements = report.faults.map((fault) => {
      const note = fault.notes.find((text) => text.startsWith('replaced '))
      const match = /^replaced r(\d+) by r(\d+)/.exec(note ?? '')
      return match === null ? undefined : { retired: Number(match[1]), added: Number(match[2]) }
    })
    expect(
      replacements.map((replacement) => replacement?.added),
      where,
    ).toEqual([4, 5])
    expect(report.finalMembers, where).toHaveLength(3)
    expect(report.finalMembers, where).toContain(5)
    for (const replacement of replacements) expect(report.finalMembers, where).not.toContain(replacement!.retired)
    for (const fault of report.faults) {
      expect(
        fault.notes.some((note) => note.includes('refused to start (exit 7, LOST_STATE)')),
        where,
      ).toBe(true)
      expect(
        fault.notes.some((note) => note.includes('with every acknowledged write')),
        where,
      ).toBe(true)
    }
  })
})
