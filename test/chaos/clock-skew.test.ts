import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis clock-skew: a majority restarted with wall clocks hours apart (libfaketime)', () => {
  // One cycle: it restarts replicas one at a time, twice over, which is most of a cycle's time.
  it('nothing depends on the wall clock: linearizable, nothing lost', async () => {
    await expectNemesisSurvived('clock-skew', { cycles: 1 })
  })
})
