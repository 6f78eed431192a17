import { createHash } from 'node:crypto'
import { EntryType } from '@nodeledger/raft'
import { encodeCommand } from '@nodeledger/registry'
import type { Command } from '@nodeledger/registry'
import type { SnapshotFileHeader } from '../../src/backup/index.ts'
import type { ClusterFile } from '../../src/cluster-file.ts'
import { ReplicaStateMachine } from '../../src/replica/state-machine.ts'
// Relative on purpose: testkit depends on authority, so a dependency back would be a cycle.
import { peerIdFromSeed } from '../../../testkit/src/fixtures.ts'

/** Shared by the backup tests: a real state machine's snapshot, and the header a save would write. */

export const OLD_CLUSTER_ID = 'old-cluster-0000'

/** The old cluster's founders (seeds 1..3), as its member directory holds them. */
export const OLD_MEMBERS = [1, 2, 3].map((id) => ({
  id,
  peerId: peerIdFromSeed(id),
  multiaddr: `/ip4/127.0.0.${10 + id}/tcp/7001/p2p/${peerIdFromSeed(id)}`,
  started: true,
}))

export function join(seed: number, seq: number, version: string): Command {
  const peerId = peerIdFromSeed(seed)
  return {
    kind: 'delta',
    submitterPeerId: peerId,
    delta: { originPeerId: peerId, seq, fields: { version, multiaddrs: [`/ip4/10.1.0.${seed % 250}/tcp/4001`] } },
  }
}

/**
 * A state machine that applied `nodes` joins (seeds 1000…) at indexes 2…, and each of the first
 * `changedNodes` changed twice more: what a save at its applied index would read.
 */
export function sampleState(nodes: number, changedNodes = 0): { machine: ReplicaStateMachine; index: number } {
  const machine = new ReplicaStateMachine(OLD_MEMBERS)
  let index = 1
  const apply = (command: Command): void => {
    index++
    const data = encodeCommand({ timestampMs: 1_760_000_000_000 + index, command })
    machine.apply({ index, term: 4, type: EntryType.Normal, data })
  }
  for (let i = 0; i < nodes; i++) apply(join(1000 + i, 1, 'v1'))
  for (let seq = 2; seq <= 3; seq++) for (let i = 0; i < changedNodes; i++) apply(join(1000 + i, seq, `v${seq}`))
  return { machine, index }
}

/** The file header `snapshot save` writes for the state machine's snapshot `data` at `index`. */
export function headerFor(machine: ReplicaStateMachine, index: number, data: Uint8Array): SnapshotFileHeader {
  return {
    clusterId: OLD_CLUSTER_ID,
    leader: 2,
    index,
    term: 4,
    members: OLD_MEMBERS.map((member) => ({ ...member, voter: true })),
    records: machine.registry.size,
    registryDigest: machine.registryDigest(),
    dataBytes: data.byteLength,
    dataSha256: new Uint8Array(createHash('sha256').update(data).digest()),
    savedMs: 1_760_000_100_000,
    writer: '0.2.0',
  }
}

/** A new cluster file's shape (as loadClusterFile returns it) for founders with seeds `seeds`, data under `root`. */
export function newCluster(root: string, seeds: readonly number[] = [101, 102, 103]): ClusterFile {
  return {
    version: 1,
    clusterId: 'new-cluster-1111',
    replicas: seeds.map((seed, i) => ({
      id: i + 1,
      peerId: peerIdFromSeed(seed),
      multiaddr: `/ip4/127.0.0.${11 + i}/tcp/7101/p2p/${peerIdFromSeed(seed)}`,
      dataDir: `${root}/replica-${i + 1}/data`,
      keyFile: `${root}/replica-${i + 1}/peer.key`,
    })),
    operators: [],
    timing: { tickIntervalMs: 10, heartbeatTicks: 5, electionTimeoutTicks: 30, leaseReads: false },
    snapshotEveryEntries: 10_000,
    liveness: { ttlMs: 10_000, disconnectGraceMs: 2_000 },
  }
}
