/**
 * The replica transport on loopback, two hosts in one process (TCP + Noise + Yamux, PeerLinks):
 *   - round trip of a 300-byte frame (1 sends, 2 echoes it back, 1 waits), median and p99;
 *   - one-way throughput: 1 keeps its queue to 2 full, 2 counts what arrives per second.
 * A benchmark, not a test: run it by hand on a quiet machine.
 *
 *   node_modules/.bin/node packages/authority/bench/transport.bench.ts [--round-trips 5000] [--seconds 5]
 */
import { performance } from 'node:perf_hooks'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { PeerLinks, createReplicaHost } from '../src/transport/index.ts'
import type { ReplicaHost } from '../src/transport/index.ts'

const FRAME_BYTES = 300
const WARMUP_ROUND_TRIPS = 500
const PROTOCOL = '/nodeledger/bench/1'

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name)
  return index >= 0 ? Number(process.argv[index + 1]) : fallback
}
const ROUND_TRIPS = option('--round-trips', 5000)
const THROUGHPUT_SECONDS = option('--seconds', 5)

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!
}

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' })
const hosts: ReplicaHost[] = await Promise.all(
  [1, 2].map(async (id) =>
    createReplicaHost({ privateKey: await generateKeyPair('Ed25519'), listen: [`/ip4/127.0.0.${id}/tcp/0`], logger }),
  ),
)
const address = (host: ReplicaHost): { peerId: string; multiaddr: string } => ({
  peerId: host.peerId.toString(),
  multiaddr: host.getMultiaddrs()[0]!.toString(),
})

let onEcho: (() => void) | undefined
let received = 0
let echo = true
const one = new PeerLinks({
  libp2p: hosts[0]!,
  protocol: PROTOCOL,
  peers: new Map([[2, address(hosts[1]!)]]),
  self: 1,
  logger,
  onFrame: () => onEcho?.(),
  onPeerDown: () => {},
})
const two: PeerLinks = new PeerLinks({
  libp2p: hosts[1]!,
  protocol: PROTOCOL,
  peers: new Map([[1, address(hosts[0]!)]]),
  self: 2,
  logger,
  onFrame: (from, frame) => {
    received += 1
    if (echo) two.send(from, frame)
  },
  onPeerDown: () => {},
})
await Promise.all([one.start(), two.start()])

const frame = new Uint8Array(FRAME_BYTES).map((_, index) => index & 0xff)
const roundTrip = (): Promise<void> =>
  new Promise<void>((resolve) => {
    onEcho = resolve
    if (!one.send(2, frame)) throw new Error('send refused during the round-trip benchmark')
  })

for (let index = 0; index < WARMUP_ROUND_TRIPS; index++) await roundTrip()
const latenciesMs: number[] = []
for (let index = 0; index < ROUND_TRIPS; index++) {
  const started = performance.now()
  await roundTrip()
  latenciesMs.push(performance.now() - started)
}
latenciesMs.sort((a, b) => a - b)
onEcho = undefined

// One way: keep the queue full; yield to the event loop whenever it refuses a frame.
echo = false
received = 0
let offered = 0
const started = performance.now()
const deadline = started + THROUGHPUT_SECONDS * 1000
while (performance.now() < deadline) {
  while (one.send(2, frame)) offered += 1
  await new Promise((resolve) => setImmediate(resolve))
}
const sendingMs = performance.now() - started
const receivedWhileSending = received
const framesPerSecond = receivedWhileSending / (sendingMs / 1000)

const result = {
  frameBytes: FRAME_BYTES,
  roundTrips: ROUND_TRIPS,
  roundTripMedianMs: Number(percentile(latenciesMs, 0.5).toFixed(3)),
  roundTripP99Ms: Number(percentile(latenciesMs, 0.99).toFixed(3)),
  oneWayFramesPerSecond: Math.round(framesPerSecond),
  oneWayMegabytesPerSecond: Number(((framesPerSecond * FRAME_BYTES) / 1e6).toFixed(1)),
  framesOffered: offered,
  queueFullRefusals: one.stats().framesDroppedQueueFull,
}
console.log(
  `round trip ${FRAME_BYTES} B: median ${result.roundTripMedianMs} ms, p99 ${result.roundTripP99Ms} ms (${ROUND_TRIPS} trips)`,
)
console.log(
  `one way ${FRAME_BYTES} B: ${result.oneWayFramesPerSecond} frames/s (${result.oneWayMegabytesPerSecond} MB/s) over ${THROUGHPUT_SECONDS} s`,
)
console.log(JSON.stringify(result))
await Promise.all([one.stop(), two.stop()])
await Promise.all(hosts.map(async (host) => host.stop()))
