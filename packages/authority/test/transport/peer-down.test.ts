import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import type { PeerAddress } from '../../src/transport/index.ts'
import { Fixture, PROTOCOL, addressOf, numberedFrame, readNumbered, waitFor } from './helpers.ts'

const fixture = new Fixture()
afterEach(async () => fixture.cleanup())

// The node binary itself: node_modules/.bin/node is a shell wrapper, and SIGKILL must reach the process holding the sockets.
const NODE = process.execPath
const LINK_HOST = join(import.meta.dirname, 'fixtures/link-host.ts')

/** Starts fixtures/link-host.ts as replica `self`; resolves with its multiaddr once it listens. */
async function spawnLinkHost(config: {
  keyFile: string
  listen: string
  self: number
  peers: Array<[number, PeerAddress]>
}): Promise<{ child: ChildProcess; multiaddr: string }> {
  const child = spawn(NODE, [LINK_HOST, JSON.stringify({ ...config, protocol: PROTOCOL })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  fixture.onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const lines = createInterface({ input: child.stdout! })
  const multiaddr = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('link host did not start within 15 s')), 15_000)
    child.once('exit', (code, signal) => reject(new Error(`link host exited early (${code ?? signal})`)))
    lines.once('line', (line) => {
      clearTimeout(timer)
      resolve((JSON.parse(line) as { multiaddr: string }).multiaddr)
    })
  })
  return { child, multiaddr }
}

describe('PeerLinks and a peer process that dies', () => {
  it('fires onPeerDown on the others when a host is killed, and relinks when it returns with the same key and address', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'nodeledger-transport-'))
    fixture.onCleanup(async () => rm(directory, { recursive: true, force: true }))
    const [a, b] = await fixture.cluster(2)
    const keyFile = join(directory, 'replica-3.key')
    const peersOfC: Array<[number, PeerAddress]> = [
      [1, addressOf(a!.host)],
      [2, addressOf(b!.host)],
    ]
    let c = await spawnLinkHost({ keyFile, listen: '/ip4/127.0.0.1/tcp/0', self: 3, peers: peersOfC })
    const addressOfC = { peerId: c.multiaddr.split('/p2p/')[1]!, multiaddr: c.multiaddr }
    a!.links.setPeers(
      new Map([
        [2, addressOf(b!.host)],
        [3, addressOfC],
      ]),
    )
    b!.links.setPeers(
      new Map([
        [1, addressOf(a!.host)],
        [3, addressOfC],
      ]),
    )

    let sequence = 0
    /** Sends to 3 from a and b until each has an echo newer than `since`. */
    const echoesArrive = async (since: number): Promise<void> => {
      await waitFor(
        'echoes from 3 at a and b',
        () => {
          sequence += 1
          a!.links.send(3, numberedFrame(1, sequence))
          b!.links.send(3, numberedFrame(2, sequence))
          return [a!, b!].every((node) =>
            node.received.some((received) => received.from === 3 && readNumbered(received.frame).sequence > since),
          )
        },
        15_000,
      )
    }
    await echoesArrive(0)

    const killedAtMs = performance.now()
    let exitedAtMs = 0
    c.child.once('exit', () => (exitedAtMs = performance.now()))
    c.child.kill('SIGKILL')
    await waitFor('a and b see 3 go down', () => [a!, b!].every((node) => node.downs.some((down) => down.id === 3)))
    const detectionMs = [a!, b!].map(
      (node) => Math.round((node.downs.find((down) => down.id === 3)!.atMs - killedAtMs) * 10) / 10,
    )
    await waitFor('child reaped', () => exitedAtMs > 0)
    console.log(
      `after SIGKILL: child reaped at ${(exitedAtMs - killedAtMs).toFixed(1)} ms; onPeerDown at a ${detectionMs[0]} ms, b ${detectionMs[1]} ms`,
    )
    expect(a!.downs.map((down) => down.id)).toEqual([3])
    expect(b!.downs.map((down) => down.id)).toEqual([3])

    // Same key, same address: the links to it come back by themselves.
    const sequenceBeforeRestart = sequence
    c = await spawnLinkHost({ keyFile, listen: c.multiaddr.split('/p2p/')[0]!, self: 3, peers: peersOfC })
    expect(c.multiaddr).toBe(addressOfC.multiaddr)
    await echoesArrive(sequenceBeforeRestart)
    expect(a!.links.stats().reconnects).toBeGreaterThanOrEqual(1)
    expect(b!.links.stats().reconnects).toBeGreaterThanOrEqual(1)
    // a and b never lost each other.
    expect(a!.downs.some((down) => down.id === 2)).toBe(false)
    expect(b!.downs.some((down) => down.id === 1)).toBe(false)
  })
})
