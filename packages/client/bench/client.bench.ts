/**
 * The client API's cost per request, one stream per request against sessions (PROTOCOL.md
 * "Sessions"), on loopback against an in-process fake replica (test/fake-cluster.ts: real libp2p,
 * TCP + Noise + Yamux, the protocol codecs, answers computed at once), so what is measured is the
 * client and the wire, not Raft. For each mode and op: requests/s and latency with 64 in flight.
 * A benchmark, not a test: run it by hand on a quiet machine.
 *
 *   node_modules/.bin/node packages/client/bench/client.bench.ts [--requests 5000] [--inflight 64]
 */
import { performance } from 'node:perf_hooks'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { AuthorityClient } from '../src/index.ts'
import { FakeCluster } from '../test/fake-cluster.ts'

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name)
  return index >= 0 ? Number(process.argv[index + 1]) : fallback
}
const REQUESTS = option('--requests', 5000)
const INFLIGHT = option('--inflight', 64)
const WARMUP_REQUESTS = 500

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!
}

/** `total` calls of `request` from `inflight` lanes; requests/s and latency percentiles in ms. */
async function drive(
  total: number,
  inflight: number,
  request: (n: number) => Promise<unknown>,
): Promise<{ perSecond: number; p50: number; p99: number }> {
  let issued = 0
  const latencies: number[] = []
  const started = performance.now()
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (issued < total) {
        const n = issued++
        const t = performance.now()
        await request(n)
        latencies.push(performance.now() - t)
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return { perSecond: total / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
}

const cluster = await FakeCluster.start(1)
const origins = await Promise.all(
  Array.from({ length: INFLIGHT }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
)
const target = cluster.addresses[0]!
const rows: string[] = []
/** Each origin's last seq, across both modes: the fake's registry remembers them. */
const seq = new Map<string, number>()
try {
  for (const streamPerRequest of [true, false]) {
    const mode = streamPerRequest ? 'stream per request' : 'session'
    const streamsBefore = cluster.replica(1).streams
    const client = new AuthorityClient({ bootstrap: cluster.addresses, streamPerRequest, requestTimeoutMs: 30_000 })
    await client.start()
    try {
      const submit = (n: number): Promise<unknown> => {
        const origin = origins[n % origins.length]!
        const next = (seq.get(origin) ?? 0) + 1
        seq.set(origin, next)
        return client.submit({
          originPeerId: origin,
          seq: next,
          fields: { isWebScraper: true, version: `1.0.${next}` },
        })
      }
      const get = (n: number): Promise<unknown> => client.get(origins[n % origins.length]!)
      const status = (): Promise<unknown> => client.status(target)
      // Connect (and find the leader) once before the lanes start: 64 first dials racing to one peer
      // is a libp2p start-up hazard, not what this measures.
      await client.get(origins[0]!)
      await drive(WARMUP_REQUESTS, INFLIGHT, get)
      for (const [op, request] of [
        ['submit', submit],
        ['get', get],
        ['status', status],
      ] as const) {
        const result = await drive(REQUESTS, INFLIGHT, request)
        rows.push(
          `${mode.padEnd(19)} ${op.padEnd(7)} ${result.perSecond.toFixed(0).padStart(7)} req/s   p50 ${result.p50.toFixed(2).padStart(6)} ms   p99 ${result.p99.toFixed(2).padStart(6)} ms`,
        )
        console.log(rows[rows.length - 1])
      }
      console.log(`${mode.padEnd(19)} streams opened: ${cluster.replica(1).streams - streamsBefore}`)
    } finally {
      await client.stop()
    }
  }
} finally {
  await cluster.stop()
}
console.log(`\n${REQUESTS} requests per row, ${INFLIGHT} in flight, one fake replica on loopback`)
