/**
 * The child process of the crash test (crash.test.ts): opens the cache in `dir`, then writes in a
 * loop until it is killed, printing what each write acknowledged once it resolved:
 *
 *   `seq <n>`                    reserveSeq returned n
 *   `applied <index> <peerSeed>` applyConfirmed through index, with that peer's record at that index
 *   `gossip <peerSeed> <seq>`    putProvisional stored that peer's record at that originSeq
 *
 * Record contents are a pure function of (peer, originSeq, changedIndex): see helpers.ts `record`.
 *
 * Usage: node crash-writer.ts <dir> <seed>
 */
import { WorkerCache } from '../../src/index.ts'
import { peerId, record, seededRng } from './helpers.ts'

const PEERS = 40

async function main(dir: string, seed: number): Promise<void> {
  const rng = seededRng(seed)
  const cache = await WorkerCache.open(dir)
  process.stdout.write('ready\n')
  for (;;) {
    const roll = rng.nextInt(100)
    if (roll < 30) {
      // Several at once, as a worker publishing a burst would: they must come back distinct.
      const seqs = await Promise.all([cache.reserveSeq(), cache.reserveSeq(), cache.reserveSeq()])
      process.stdout.write(seqs.map((seq) => `seq ${seq}\n`).join(''))
    } else if (roll < 75) {
      const index = cache.appliedIndex + 1 + rng.nextInt(3)
      const seeds = Array.from({ length: 1 + rng.nextInt(5) }, () => rng.nextInt(PEERS))
      await cache.applyConfirmed(
        seeds.map((peer) => record(peerId(peer), index, index)),
        index,
      )
      process.stdout.write(seeds.map((peer) => `applied ${index} ${peer}\n`).join(''))
    } else {
      const peer = rng.nextInt(PEERS)
      const seq = cache.appliedIndex + 1 + rng.nextInt(4)
      if (await cache.putProvisional(record(peerId(peer), seq, 0))) process.stdout.write(`gossip ${peer} ${seq}\n`)
    }
  }
}

const [dir, seedText] = process.argv.slice(2)
if (dir === undefined || seedText === undefined) {
  process.stderr.write('usage: crash-writer.ts <dir> <seed>\n')
  process.exit(2)
}
await main(dir, Number(seedText))
