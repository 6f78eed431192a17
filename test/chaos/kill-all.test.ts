import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis kill-all: SIGKILL every replica, restart them together', () => {
  it('every acknowledged write survives the whole-cluster crash', async () => {
    await expectNemesisSurvived('kill-all')
  })
})
