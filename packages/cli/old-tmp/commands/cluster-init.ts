import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { randomUUID } from 'node:crypto'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  DEFAULT_LIVENESS,
  DEFAULT_TIMING,
  SNAPSHOT_EVERY_ENTRIES_DEFAULT,
  loadOrCreateKey,
  parseClusterFile,
} from '@nodeledger/authority'
import type { ClusterFile } from '@nodeledger/authority'
import { UsageError } from '../exit-codes.ts'
import { renderTable } from '../output.ts'

export interface ClusterInitOptions {
  replicas: number
  dir: string
  port: number
  force: boolean
  json: boolean
}

/**
 * Write a key per replica and an operator key, and the cluster file that names them. Replica N
 * listens on its own loopback address 127.0.0.(10+N), so partitions between replicas can be cut by
 * address (issue 6's iptables nemesis).
 */
export async function clusterInit(options: ClusterInitOptions): Promise<ClusterFile> {
  if (options.replicas !== 3 && options.replicas !== 5)
    throw new UsageError(`--replicas must be 3 or 5 (got ${options.replicas})`)
  const dir = resolve(options.dir)
  const clusterPath = join(dir, 'cluster.json')
  if (existsSync(clusterPath) && !options.force)
    throw new UsageError(`${clusterPath} exists; pass --force to overwrite it (keys are kept)`)
  await mkdir(dir, { recursive: true })
  const replicas = []
  for (let id = 1; id <= options.replicas; id++) {
    const replicaDir = join(dir, `replica-${id}`)
    await mkdir(replicaDir, { recursive: true })
    const keyFile = join(replicaDir, 'peer.key')
    const peerId = peerIdFromPrivateKey(await loadOrCreateKey(keyFile)).toString()
    replicas.push({
      id,
      multiaddr: `/ip4/127.0.0.${10 + id}/tcp/${options.port}/p2p/${peerId}`,
      dataDir: `replica-${id}/data`,
      keyFile: `replica-${id}/peer.key`,
    })
  }
  const operatorKey = join(dir, 'operator.key')
  const operatorPeerId = peerIdFromPrivateKey(await loadOrCreateKey(operatorKey)).toString()
  const file = {
    version: 1,
    clusterId: randomUUID(),
    replicas,
    operators: [{ peerId: operatorPeerId, keyFile: 'operator.key' }],
    timing: DEFAULT_TIMING,
    snapshotEveryEntries: SNAPSHOT_EVERY_ENTRIES_DEFAULT,
    liveness: DEFAULT_LIVENESS,
  }
  const text = `${JSON.stringify(file, null, 2)}\n`
  // Round-trip through the parser: never write a file the replicas would refuse.
  const parsed = parseClusterFile(text, clusterPath)
  await writeFile(clusterPath, text)
  if (options.json) {
    console.log(JSON.stringify({ clusterFile: clusterPath, ...file }))
  } else {
    console.log(`wrote ${clusterPath}: ${options.replicas} replicas, operator ${operatorPeerId}`)
    console.log(
      renderTable(
        parsed.replicas.map((replica) => ({ id: replica.id, multiaddr: replica.multiaddr, data: replica.dataDir })),
        ['id', 'multiaddr', 'data'],
      ),
    )
  }
  return parsed
}
