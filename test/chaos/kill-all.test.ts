import { describe, it } from 'vitest'
import { expectNemesisSurvived } from './support.ts'

describe('nemesis kill-all: SIGKILL every replica, restart them together', () => {
  it('every acknowledged write survives the whole-cluster crash', async () => {
    // Each heal is a whole-cluster restart (3.3–4.3 s to the first acknowledged write), so with the
    // default 1 s of quiet a client caught in its retry backoff could see almost no available time
    // between the two crashes (a CI run: 5 answers, the bar is more than 5). 3 s of quiet after each
    // recovery gives every client a window to be checked in.
    await expectNemesisSurvived('kill-all', { quietMs: 3_000 })
  })
})
