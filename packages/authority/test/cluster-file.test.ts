import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { parseClusterFile } from '../src/cluster-file.ts'
import { ReplicaError } from '../src/replica-errors.ts'

const PEERS = await Promise.all(
  Array.from({ length: 2 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
)

function file(http: readonly unknown[]): string {
  return JSON.stringify({
    version: 1,
    clusterId: 'cluster-file-test',
    replicas: PEERS.map((peerId, i) => ({
      id: i + 1,
      multiaddr: `/ip4/127.0.0.${11 + i}/tcp/4001/p2p/${peerId}`,
      dataDir: `replica-${i + 1}/data`,
      keyFile: `replica-${i + 1}/peer.key`,
      ...(http[i] === undefined ? {} : { http: http[i] }),
    })),
    operators: [],
    timing: { tickIntervalMs: 10, heartbeatTicks: 5, electionTimeoutTicks: 30 },
    snapshotEveryEntries: 10_000,
  })
}

function problems(text: string): string {
  try {
    parseClusterFile(text, '/run/cluster.json')
  } catch (error) {
    expect(error).toBeInstanceOf(ReplicaError)
    expect((error as ReplicaError).code).toBe('INVALID_CLUSTER')
    return (error as Error).message
  }
  throw new Error('the file was accepted')
}

describe('cluster file: replicas[].http, the ops HTTP listener', () => {
  it('is optional: absent, a replica has no listener', () => {
    const cluster = parseClusterFile(file([]), '/run/cluster.json')
    expect(cluster.replicas.map((replica) => replica.http)).toEqual([undefined, undefined])
  })

  it('reads HOST:PORT, and :PORT as 127.0.0.1', () => {
    const cluster = parseClusterFile(file(['127.0.0.11:9101', ':9102']), '/run/cluster.json')
    expect(cluster.replicas.map((replica) => replica.http)).toEqual([
      { host: '127.0.0.11', port: 9101 },
      { host: '127.0.0.1', port: 9102 },
    ])
  })

  it('refuses what is not HOST:PORT, port 0, and two replicas on one address, naming the field', () => {
    expect(problems(file([9101]))).toMatch(/replicas\[0\]\.http must be a string HOST:PORT/)
    expect(problems(file(['127.0.0.1']))).toMatch(/replicas\[0\]\.http "127\.0\.0\.1" is not HOST:PORT/)
    expect(problems(file([':0']))).toMatch(/replicas\[0\]\.http .*port 0 is not in 1/)
    expect(problems(file(['127.0.0.12:4001']))).toMatch(
      /replicas\[0\]\.http 127\.0\.0\.12:4001 is replicas\[1\]\.multiaddr's TCP address/,
    )
    expect(problems(file(['127.0.0.1:9101', ':9101']))).toMatch(
      /replicas\[1\]\.http 127\.0\.0\.1:9101 is also replicas\[0\]'s/,
    )
  })
})
