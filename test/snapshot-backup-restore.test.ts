import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import { API_RESPONSE_FRAME_BYTES_MAX } from '@nodeledger/protocol'
import type { StatusResult } from '@nodeledger/protocol'
import type { Delta } from '@nodeledger/registry'
import { ProcessCluster } from '@nodeledger/testkit'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'
import { converged, leaderOf, operatorClient } from './support/cluster-client.ts'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '../packages/cli/src/main.ts')
const EXIT_BAD_INPUT = 2
const EXIT_CORRUPT = 9

/** Distinct nodes written, and how many of them are changed three more times. */
const NODES = 2_400
const NODES_CHANGED = 300
/**
 * 32 multiaddrs of about 60 characters: some 2 KiB per record, so the saved state of 2,400 records
 * is larger than one API response frame (4 MiB) and the transfer takes several chunks and frames.
 */
const MULTIADDRS = 32

/** `nodeledger …` as an operator runs it: exit code, stdout, stderr. */
function cli(args: readonly string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.on('error', reject)
    child.on('exit', (status) => resolve({ status, stdout, stderr }))
  })
}

function delta(seed: number, seq: number): Delta {
  const multiaddrs = Array.from(
    { length: MULTIADDRS },
    (_, i) => `/dns4/node-${seed}-${i}.backup-restore-test.example.net/tcp/${4000 + i}/ws`,
  )
  return { originPeerId: peerIdFromSeed(seed), seq, fields: { multiaddrs, version: `v${seq}`, returnedItems: seq } }
}

/** Submit every delta of `deltas`, `concurrency` at a time, one origin's in order; all must be acknowledged. */
async function submitAll(client: AuthorityClient, deltas: readonly Delta[], concurrency: number): Promise<number> {
  let next = 0
  let lastIndex = 0
  const lane = async (): Promise<void> => {
    while (next < deltas.length) {
      const item = deltas[next++]!
      const { index } = await client.submit(item)
      lastIndex = Math.max(lastIndex, index)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  return lastIndex
}

/** Every path under `dir`, relative: what a refused restore must leave as it found it. */
function tree(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? [`${prefix}${entry.name}/`, ...tree(join(dir, entry.name), `${prefix}${entry.name}/`)]
      : [`${prefix}${entry.name}`],
  )
}

/**
 * Backup and disaster recovery with the operator's own commands, as with etcd: write; `snapshot
 * save`; lose the whole cluster (every process killed, every data dir deleted); make a new cluster
 * file (`cluster init`: new keys, a new clusterId); `snapshot restore` into it; start it. Every
 * write acknowledged before the save is there, read back linearizably, and the registry digest of
 * every new replica is the saved one. Damaged files are refused CORRUPT and write nothing.
 */
describe('snapshot save, lose the cluster, restore into a new one', () => {
  let backups: string
  let old: ProcessCluster | undefined
  let restored: ProcessCluster | undefined
  let client: AuthorityClient | undefined
  /** The newest seq acknowledged per node before the save, and the index it was applied at. */
  const acknowledged = new Map<string, number>()
  let lastAcknowledgedIndex = 0
  let oldStatus: StatusResult
  let saved: {
    clusterId: string
    index: number
    term: number
    records: number
    registryDigest: string
    dataBytes: number
    fileBytes: number
    sha256: string
    checksumOk: boolean
    members: Array<{ id: number; peerId: string; voter: boolean }>
  }

  beforeAll(async () => {
    backups = mkdtempSync(join(tmpdir(), 'nodeledger-backups-'))
    old = ProcessCluster.create({ replicas: 3, snapshotEveryEntries: 2_000 })
    old.startAll()
    client = await operatorClient(old, 5_000)
    await leaderOf(client, 30_000)
  })

  afterAll(async () => {
    await client?.stop()
    await old?.stopAll()
    await restored?.stopAll()
    if (backups !== undefined) rmSync(backups, { recursive: true, force: true })
  })

  it('saves a consistent snapshot of a registry larger than a response frame', async () => {
    const deltas: Delta[] = []
    for (let i = 0; i < NODES; i++) deltas.push(delta(i, 1))
    lastAcknowledgedIndex = await submitAll(client!, deltas, 32)
    // Some nodes change several times: the snapshot holds each record's last state.
    for (let seq = 2; seq <= 4; seq++) {
      const changes = Array.from({ length: NODES_CHANGED }, (_, i) => delta(i, seq))
      lastAcknowledgedIndex = Math.max(lastAcknowledgedIndex, await submitAll(client!, changes, 32))
    }
    for (let i = 0; i < NODES; i++) acknowledged.set(peerIdFromSeed(i), i < NODES_CHANGED ? 4 : 1)
    const all = await converged(client!, 60_000)
    oldStatus = all.find((status) => status.role === 'leader')!
    expect(new Set(all.map((status) => status.registryDigest)).size).toBe(1)

    const file = join(backups, 'registry.snap')
    const save = await cli(['snapshot', 'save', file, '--cluster', old!.clusterPath, '--json'])
    expect(save.status, save.stderr).toBe(0)
    saved = JSON.parse(save.stdout)
    expect(saved.clusterId).toBe(JSON.parse(readFileSync(old!.clusterPath, 'utf8')).clusterId)
    // At a linearizable point: at or after every acknowledged write, holding every record.
    expect(saved.index).toBeGreaterThanOrEqual(lastAcknowledgedIndex)
    expect(saved.records).toBe(NODES)
    expect(saved.registryDigest).toBe(oldStatus.registryDigest)
    expect(saved.dataBytes).toBeGreaterThan(API_RESPONSE_FRAME_BYTES_MAX)
    expect(saved.fileBytes).toBe(statSync(file).size)
    expect(saved.members.map((member) => [member.id, member.peerId, member.voter])).toEqual(
      old!.file.replicas.map((replica) => [replica.id, replica.multiaddr.split('/p2p/')[1], true]),
    )
    // Only the file under its name: the temporary one was renamed.
    expect(readdirSync(backups)).toEqual(['registry.snap'])
  })

  it('snapshot status shows what the file holds', async () => {
    const file = join(backups, 'registry.snap')
    const json = await cli(['snapshot', 'status', file, '--json'])
    expect(json.status, json.stderr).toBe(0)
    const status = JSON.parse(json.stdout)
    expect(status).toMatchObject({
      format: { file: 1, stateMachine: 1, registry: 2 },
      clusterId: saved.clusterId,
      index: saved.index,
      term: saved.term,
      records: NODES,
      registryDigest: oldStatus.registryDigest,
      dataBytes: saved.dataBytes,
      fileBytes: statSync(file).size,
      sha256: saved.sha256,
      checksumOk: true,
    })
    expect(status.members).toHaveLength(3)
    const text = await cli(['snapshot', 'status', file])
    expect(text.status, text.stderr).toBe(0)
    expect(text.stdout).toContain(`records          ${NODES}`)
    expect(text.stdout).toContain(`index            ${saved.index}`)
    expect(text.stdout).toMatch(/checksum +sha256 [0-9a-f]{64} OK/)
    for (const replica of old!.file.replicas) expect(text.stdout).toContain(replica.multiaddr.split('/p2p/')[1])
  })

  it('a write after the save, then the whole cluster lost: every process killed, every data dir deleted', async () => {
    // Not in the backup: the restored cluster must not have it (the backup is a point in time).
    await client!.submit(delta(NODES + 1, 1))
    await client!.stop()
    client = undefined
    const dataDirs = old!.file.replicas.map((replica) => replica.dataDir)
    await old!.stopAll()
    old = undefined
    for (const dir of dataDirs) expect(existsSync(dir)).toBe(false)
  })

  it('a corrupt or truncated file is refused CORRUPT, by status and by restore, and nothing is written', async () => {
    restored = ProcessCluster.create({ replicas: 3 })
    const file = join(backups, 'registry.snap')
    const bytes = readFileSync(file)
    const flipped = join(backups, 'flipped.snap')
    const damaged = Buffer.from(bytes)
    damaged[Math.floor(damaged.length / 2)]! ^= 0x40
    writeFileSync(flipped, damaged)
    const truncated = join(backups, 'truncated.snap')
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.7)))
    const shortByOne = join(backups, 'short-by-one.snap')
    writeFileSync(shortByOne, bytes.subarray(0, bytes.length - 1))
    const before = tree(restored.dir)
    for (const bad of [flipped, truncated, shortByOne]) {
      const status = await cli(['snapshot', 'status', bad])
      expect(status.status, `${bad}: ${status.stderr}`).toBe(EXIT_CORRUPT)
      expect(status.stderr).toContain('CORRUPT')
      const restore = await cli(['snapshot', 'restore', bad, '--cluster', restored.clusterPath])
      expect(restore.status, `${bad}: ${restore.stderr}`).toBe(EXIT_CORRUPT)
      expect(restore.stderr).toContain('CORRUPT')
      expect(tree(restored.dir)).toEqual(before)
    }
    for (const replica of restored.file.replicas) expect(existsSync(replica.dataDir)).toBe(false)
    // The good file, into the old cluster's own file: refused (same cluster id, old keys); but that
    // file is gone with the cluster, so a copy of the new file with the old cluster id stands in.
    const sameId = join(restored.dir, 'same-id.json')
    const file2 = JSON.parse(readFileSync(restored.clusterPath, 'utf8'))
    writeFileSync(sameId, JSON.stringify({ ...file2, clusterId: saved.clusterId }))
    const refused = await cli(['snapshot', 'restore', file, '--cluster', sameId])
    expect(refused.status, refused.stderr).toBe(EXIT_BAD_INPUT)
    expect(refused.stderr).toContain('INVALID_CLUSTER')
    rmSync(sameId)
    expect(tree(restored.dir)).toEqual(before)
  })

  it('restores into a new cluster (new keys, new cluster id); every acknowledged write is there', async () => {
    const cluster = restored!
    const file = join(backups, 'registry.snap')
    const newClusterId = JSON.parse(readFileSync(cluster.clusterPath, 'utf8')).clusterId
    expect(newClusterId).not.toBe(saved.clusterId)
    const restore = await cli(['snapshot', 'restore', file, '--cluster', cluster.clusterPath, '--json'])
    expect(restore.status, restore.stderr).toBe(0)
    const result = JSON.parse(restore.stdout)
    expect(result).toMatchObject({
      clusterId: newClusterId,
      fromClusterId: saved.clusterId,
      index: saved.index,
      records: NODES,
    })
    for (const replica of cluster.file.replicas) {
      expect(JSON.parse(readFileSync(join(replica.dataDir, 'replica.json'), 'utf8'))).toEqual({
        clusterId: newClusterId,
        replicaId: replica.id,
      })
    }
    // Restoring again over the restored dirs is refused: they are not empty.
    const again = await cli(['snapshot', 'restore', file, '--cluster', cluster.clusterPath])
    expect(again.status, again.stderr).toBe(EXIT_BAD_INPUT)
    expect(again.stderr).toContain('NOT_EMPTY')

    // The data dirs exist, so the founders start as replicas with state (`existing`).
    cluster.startAll()
    client = await operatorClient(cluster, 5_000)
    await leaderOf(client, 30_000)
    const all = await converged(client, 60_000)
    for (const status of all) {
      expect(status.clusterId).toBe(newClusterId)
      expect(status.registryDigest, `replica ${status.id}`).toBe(saved.registryDigest)
      expect(status.registryRecords).toBe(NODES)
      expect(status.snapshotIndex).toBeGreaterThanOrEqual(saved.index)
      expect(status.term).toBeGreaterThan(saved.term)
      expect(status.members.map((member) => [member.id, member.peerId, member.voter])).toEqual(
        cluster.file.replicas.map((replica) => [replica.id, replica.multiaddr.split('/p2p/')[1], true]),
      )
    }
    // Every acknowledged write, read back linearizably: each node at its newest acknowledged seq.
    const missing: string[] = []
    for (const [peerId, seq] of acknowledged) {
      const { record } = await client.get(peerId, { consistency: 'linearizable' })
      if (record?.originSeq !== seq || record.version !== `v${seq}` || record.multiaddrs.length !== MULTIADDRS) {
        missing.push(`${peerId}: seq ${seq}, restored ${record?.originSeq ?? 'nothing'}`)
      }
    }
    expect(missing).toEqual([])
    // The write made after the save is not there: the backup is the state at its index.
    expect((await client.get(peerIdFromSeed(NODES + 1), { consistency: 'linearizable' })).record).toBeNull()
    // And the restored cluster takes writes: after the saved index, from its own leader.
    const next = await client.submit(delta(0, 5))
    expect(next.index).toBeGreaterThan(saved.index)
    expect((await client.get(peerIdFromSeed(0))).record?.version).toBe('v5')
  })
})
