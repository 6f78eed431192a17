import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { randomUUID } from 'node:crypto'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { parseClusterFile } from '@nodeledger/authority/cluster-file'
import type { ClusterFile } from '@nodeledger/authority/cluster-file'
import { DEFAULT_LIVENESS, DEFAULT_TIMING, SNAPSHOT_EVERY_ENTRIES_DEFAULT } from '@nodeledger/authority/constants'
import { loadOrCreateKey } from '@nodeledger/authority/key'
import { planAddresses } from '../addresses.ts'
import { UsageError } from '../exit-codes.ts'
import { renderTable } from '../output.ts'

export interface ClusterInitOptions {
  /** Undefined: as many as --hosts/--multiaddrs give, else 3. */
  replicas: number | undefined
  dir: string
  port: number
  hosts?: string
  multiaddrs?: string
  /** Each replica's HTTP listener (metrics, health, the cluster page) on its own host at this port. */
  httpPort?: number
  force: boolean
  json: boolean
}

/**
 * Write a key per replica and an operator key, and the cluster file that names them. Replica N
 * is at `--hosts`' Nth host (or `--multiaddrs`' Nth address), by default on its own loopback
 * address 127.0.0.(10+N), so partitions between local replicas can be cut by address.
 *
 * For a cluster on several hosts the keys may also be generated on each host (run cluster init
 * there with the same --hosts and copy the peer ids over) — see the README's deployment section;
 * this command writes them all in one place, to be distributed.
 */
export async function clusterInit(options: ClusterInitOptions): Promise<ClusterFile> {
  const plan = planAddresses(options)
  const dir = resolve(options.dir)
  const clusterPath = join(dir, 'cluster.json')
  if (existsSync(clusterPath) && !options.force)
    throw new UsageError(`${clusterPath} exists; pass --force to overwrite it (keys are kept)`)
  await mkdir(dir, { recursive: true })
  const replicas = []
  for (const [index, address] of plan.addresses.entries()) {
    const id = index + 1
    const replicaDir = join(dir, `replica-${id}`)
    await mkdir(replicaDir, { recursive: true })
    const keyFile = join(replicaDir, 'peer.key')
    const peerId = peerIdFromPrivateKey(await loadOrCreateKey(keyFile)).toString()
    replicas.push({
      id,
      multiaddr: `${address}/p2p/${peerId}`,
      dataDir: `replica-${id}/data`,
      keyFile: `replica-${id}/peer.key`,
      ...(options.httpPort === undefined ? {} : { http: httpOn(address, options.httpPort) }),
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
    console.log(`wrote ${clusterPath}: ${replicas.length} replicas, operator ${operatorPeerId}`)
    console.log(
      renderTable(
        parsed.replicas.map((replica) => ({ id: replica.id, multiaddr: replica.multiaddr, data: replica.dataDir })),
        ['id', 'multiaddr', 'data'],
      ),
    )
  }
  return parsed
}

/** HOST:PORT on the host of a replica's multiaddr: an /ip4/ address, an /ip6/ one in brackets, a /dns4/ name. */
function httpOn(address: string, port: number): string {
  const match = /^\/(ip4|ip6|dns4|dns6|dns)\/([^/]+)\//.exec(address)
  if (match === null) throw new UsageError(`--http-port: cannot tell the host of ${address}`)
  return match[1] === 'ip6' ? `[${match[2]}]:${port}` : `${match[2]}:${port}`
}
