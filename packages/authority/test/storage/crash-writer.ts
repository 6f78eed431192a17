/**
 * The child process of the crash test (crash.test.ts): opens the store in `dir`, then writes in a
 * loop until it is killed, printing `ack <lastIndex> <term> <commit> <snapshotIndex>` after each
 * write resolves, so the parent knows what was acknowledged as durable before the kill. Most writes
 * append a batch of entries; some start a new term that overwrites an uncommitted suffix; some take
 * a snapshot and compact. Entry contents are a pure function of (index, term): see crash-payload.ts.
 *
 * Usage: node crash-writer.ts <dir> <seed>
 */
import { createSeededRng } from '@nodeledger/raft'
import type { Entry } from '@nodeledger/raft'
import { LevelStorage } from '../../src/storage/index.ts'
import { entryData } from './crash-payload.ts'

const BATCH_ENTRIES_MAX = 20
const CONF = { voters: [1], learners: [] }

function makeEntries(from: number, to: number, term: number): Entry[] {
  const result: Entry[] = []
  for (let index = from; index <= to; index++)
    result.push({ index, term, type: 'normal', data: entryData(index, term) })
  return result
}

async function main(dir: string, seed: number): Promise<void> {
  const rng = createSeededRng(seed)
  const storage = await LevelStorage.open(dir, {
    bootstrap: { confState: CONF, data: new TextEncoder().encode('bootstrap') },
  })
  let { term, vote, commit } = storage.initialState().hardState
  process.stdout.write(`ready ${storage.lastIndex()}\n`)
  for (;;) {
    const last = storage.lastIndex()
    const roll = rng.nextInt(100)
    if (roll < 5 && commit > storage.snapshot().metadata.index) {
      await storage.createSnapshot(commit, CONF, new TextEncoder().encode(`image at ${commit}`))
    } else {
      let start = last + 1
      if (roll < 12) {
        // A new leader's term overwrites the uncommitted tail (never below commit, never shortening the log).
        term++
        start = Math.max(commit + 1, last - rng.nextInt(4))
      }
      const end = Math.max(last, start) + 1 + rng.nextInt(BATCH_ENTRIES_MAX)
      commit = Math.max(commit, end - rng.nextInt(3))
      await storage.save({ hardState: { term, vote, commit }, entries: makeEntries(start, end, term) })
    }
    process.stdout.write(`ack ${storage.lastIndex()} ${term} ${commit} ${storage.snapshot().metadata.index}\n`)
  }
}

const [dir, seedText] = process.argv.slice(2)
if (dir === undefined || seedText === undefined) {
  process.stderr.write('usage: crash-writer.ts <dir> <seed>\n')
  process.exit(2)
}
await main(dir, Number(seedText))
