import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis kill-leader: SIGKILL the leader, restart it', () => {
  it('loses no acknowledged write and stays linearizable', async () => {
    await expectNemesisSurvived('kill-leader')
  })
})
