import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis kill-any: SIGKILL a random replica, restart it', () => {
  it('loses no acknowledged write and stays linearizable', async () => {
    await expectNemesisSurvived('kill-any')
  })
})
