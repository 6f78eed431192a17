import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis partition-leader: iptables DROP both ways between the leader and the rest', () => {
  // The nemesis itself finds it wrong if the cut-off leader still claims leadership, or no other
  // replica takes over, within the 3 s hold; the watcher finds two leaders in one term.
  it('the isolated leader steps down, no split brain, linearizable, nothing lost', async () => {
    await expectNemesisSurvived('partition-leader')
  })
})
