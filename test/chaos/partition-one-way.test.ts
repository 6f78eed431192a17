import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis partition-one-way: the leader hears no one, or no one hears the leader', () => {
  // Two cycles: the first cuts what reaches the leader, the second what leaves it.
  it('the leader loses its leadership, no split brain, linearizable, nothing lost', async () => {
    await expectNemesisSurvived('partition-one-way')
  })
})
