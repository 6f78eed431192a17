/**
 * The decode path's cost per frame: what the API server pays for every request it reads and a
 * client for every answer, and what a replica pays per Raft frame. Realistic frames (a submit, a
 * get, a page of 100 records as a list answer, a record, a registry command, a Raft append of 64
 * entries), each decoded in a tight loop; microseconds per decode, the best of 5 rounds. A
 * benchmark, not a test: run it by hand on a quiet machine.
 *
 *   node_modules/.bin/node packages/protocol/bench/codec.bench.ts [--iterations 20000]
 */
import { performance } from 'node:perf_hooks'
import { decodeCommand, decodeRecord, emptyRecord, encodeCommand, encodeRecord } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
import { decodeRaftFrame, encodeRaftFrame } from '../../authority/src/raft-codec.ts'
import { peerIdFromSeed } from '../../testkit/src/fixtures.ts'
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from '../src/index.ts'

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name)
  return index >= 0 ? Number(process.argv[index + 1]) : fallback
}
const ITERATIONS = option('--iterations', 20_000)
const ROUNDS = 5
const NOW_MS = 1_760_000_000_000

function record(seed: number): NodeData {
  return {
    ...emptyRecord(peerIdFromSeed(seed)),
    multiaddrs: [`/ip4/10.0.${seed % 250}.7/tcp/4001`, `/ip4/10.0.${seed % 250}.7/udp/4001/quic-v1`],
    firstJoinedMs: NOW_MS - 86_400_000,
    lastJoinedMs: NOW_MS - 3_600_000,
    lastUpdatedMs: NOW_MS,
    uptimeAccumulatedMs: 40_000_000,
    isActive: true,
    isStaked: true,
    isTwitterScraper: true,
    version: '1.4.2',
    ethAddress: `0x${'ab'.repeat(20)}`,
    returnedItems: 120_000 + seed,
    returnedItemsLastMs: NOW_MS - 1_000,
    originSeq: 9_000 + seed,
    observers: [peerIdFromSeed(9001)],
    changedIndex: 5_000_000 + seed,
  }
}

const origin = peerIdFromSeed(1)
const submit = encodeRequest(
  {
    op: 'submit',
    delta: {
      originPeerId: origin,
      seq: 9_001,
      fields: { version: '1.4.2', returnedItems: 120_001, returnedItemsLastMs: NOW_MS, isTwitterScraper: true },
    },
  },
  7,
)
const get = encodeRequest({ op: 'get', peerId: origin, consistency: 'linearizable' }, 8)
const getAnswer = encodeResponse('get', { record: record(1), index: 5_000_100 }, 8)
const records = Array.from({ length: 100 }, (_, i) => record(i)).sort((a, b) => (a.peerId < b.peerId ? -1 : 1))
const listAnswer = encodeResponse('list', { records, index: 5_000_100 }, 9)
const recordBytes = encodeRecord(record(1))
const command = encodeCommand({
  timestampMs: NOW_MS,
  command: {
    kind: 'delta',
    submitterPeerId: origin,
    delta: { originPeerId: origin, seq: 9_001, fields: { version: '1.4.2', returnedItems: 120_001 } },
  },
})
const append = encodeRaftFrame([
  {
    type: 'append',
    from: 1,
    to: 2,
    term: 12,
    logTerm: 12,
    index: 5_000_000,
    commit: 4_999_990,
    entries: Array.from({ length: 64 }, (_, i) => ({ index: 5_000_001 + i, term: 12, type: 'normal', data: command })),
  },
])

const cases: Array<[string, number, () => unknown]> = [
  ['decodeRequest submit', submit.length, () => decodeRequest(submit)],
  ['decodeRequest get', get.length, () => decodeRequest(get)],
  ['decodeResponse get (1 record)', getAnswer.length, () => decodeResponse('get', getAnswer)],
  ['decodeResponse list (100 records)', listAnswer.length, () => decodeResponse('list', listAnswer)],
  ['decodeRecord (verify)', recordBytes.length, () => decodeRecord(recordBytes)],
  ['decodeRecord (no verify)', recordBytes.length, () => decodeRecord(recordBytes, { verify: false })],
  ['decodeCommand delta', command.length, () => decodeCommand(command)],
  ['decodeRaftFrame append x64', append.length, () => decodeRaftFrame(append, 1, 2)],
]

for (const [name, bytes, run] of cases) {
  const iterations = name.includes('list') || name.includes('Raft') ? Math.ceil(ITERATIONS / 20) : ITERATIONS
  for (let i = 0; i < iterations / 10; i++) run()
  let bestUs = Number.POSITIVE_INFINITY
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now()
    for (let i = 0; i < iterations; i++) run()
    bestUs = Math.min(bestUs, ((performance.now() - started) * 1000) / iterations)
  }
  console.log(`${name.padEnd(36)} ${String(bytes).padStart(7)} B  ${bestUs.toFixed(2).padStart(9)} µs/decode`)
}
