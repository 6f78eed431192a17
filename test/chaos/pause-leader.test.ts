import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis pause-leader: SIGSTOP the leader, SIGCONT it 3 s later', () => {
  // The woken leader still believes it leads in its old term: the history shows whether it served a
  // stale read or acknowledged a write alone.
  it('serves no stale read, loses no acknowledged write', async () => {
    await expectNemesisSurvived('pause-leader')
  })
})
