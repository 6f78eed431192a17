import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { crc32 } from 'node:zlib'
import {
  RECORD_FIELDS_V1,
  RECORD_FIELDS,
  SNAPSHOT_COUNTERS,
  decodeSnapshot,
  packWire,
  recordsDigest,
} from '@nodeledger/registry'
import {
  BackupError,
  decodeSnapshotFile,
  encodeSnapshotFile,
  inspectSnapshotFile,
  restoreSnapshot,
} from '../../src/backup/index.ts'
import type { BackupErrorCode, SnapshotFile } from '../../src/backup/index.ts'
import { readIdentity } from '../../src/replica/identity.ts'
import { ReplicaStateMachine, encodeStateSnapshot } from '../../src/replica/state-machine.ts'
import { LevelStorage } from '../../src/storage/index.ts'
import { OLD_CLUSTER_ID, OLD_MEMBERS, headerFor, newCluster, sampleState } from './helpers.ts'

async function codeOf(promise: Promise<unknown>): Promise<BackupErrorCode> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(BackupError)
    return (error as BackupError).code
  }
  throw new Error('expected a BackupError')
}

const { machine, index } = sampleState(40, 10)
const data = machine.snapshot()
const header = headerFor(machine, index, data)
const file: SnapshotFile = decodeSnapshotFile(encodeSnapshotFile(header, data))

let root: string
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'nodeledger-restore-'))
})
afterEach(() => {
  rmSync(root, { recursive: true, force: true })
})

/** Every path under `root`, relative: what a refused restore must have left as it found it. */
function tree(dir = root, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? [`${prefix}${entry.name}/`, ...tree(join(dir, entry.name), `${prefix}${entry.name}/`)]
      : [`${prefix}${entry.name}`],
  )
}

/**
 * The registry snapshot `bytes` as a version 1 build wrote it: "NLRS" version 1, 25-field records,
 * and the digest that build computed (SHA-256 of each `[1, fields]` record, XORed).
 */
function asVersion1(bytes: Uint8Array): { registry: Uint8Array; digest: string } {
  const state = decodeSnapshot(bytes)
  const fields = state.records.map((record) => RECORD_FIELDS.slice(0, RECORD_FIELDS_V1).map((field) => record[field]))
  const body = packWire([
    state.appliedIndex,
    state.clockMs,
    state.replicaPeerIds,
    SNAPSHOT_COUNTERS.map((name) => state.counters[name]),
    fields,
  ])
  const registry = new Uint8Array(9 + body.byteLength)
  registry.set([0x4e, 0x4c, 0x52, 0x53, 1])
  new DataView(registry.buffer).setUint32(5, crc32(body), false)
  registry.set(body, 9)
  const digest = Buffer.alloc(32)
  for (const record of fields) {
    const hash = createHash('sha256')
      .update(packWire([1, record]))
      .digest()
    for (let i = 0; i < 32; i++) digest[i]! ^= hash[i]!
  }
  return { registry, digest: digest.toString('hex') }
}

describe('restore', () => {
  it('restores a file a version 1 build saved: 25-field records, the digest it named, unchanged', async () => {
    const old = asVersion1(machine.registry.snapshot())
    // A registry without lastLeftReasons has the digest a version 1 build gave it.
    expect(old.digest).toBe(header.registryDigest)
    const oldData = encodeStateSnapshot(machine.members, old.registry)
    const oldFile = decodeSnapshotFile(
      encodeSnapshotFile({ ...headerFor(machine, index, oldData), registryDigest: old.digest }, oldData),
    )
    const contents = inspectSnapshotFile(oldFile)
    expect(contents.registryVersion).toBe(1)
    expect(contents.registry.records.every((record) => record.lastLeftReason === '')).toBe(true)
    const cluster = newCluster(root)
    expect(await restoreSnapshot({ file: oldFile, cluster })).toMatchObject({ records: 40, registryDigest: old.digest })
    const storage = await LevelStorage.open(cluster.replicas[0]!.dataDir)
    try {
      const restored = new ReplicaStateMachine([])
      restored.restore(storage.snapshot())
      expect(restored.registryDigest()).toBe(old.digest)
      // Its next snapshot is written in version 2, with the same records.
      expect(decodeSnapshot(restored.registry.snapshot()).records).toEqual(contents.registry.records)
      expect(restored.registry.snapshot()[4]).toBe(2)
    } finally {
      await storage.close()
    }
  })

  it('seeds every founder with the same state: the snapshot at the saved index and term, the new founders as voters', async () => {
    const cluster = newCluster(root)
    const result = await restoreSnapshot({ file, cluster })
    expect(result).toMatchObject({
      clusterId: cluster.clusterId,
      fromClusterId: OLD_CLUSTER_ID,
      index,
      term: 4,
      records: 40,
      registryDigest: header.registryDigest,
    })
    const states: Uint8Array[] = []
    for (const replica of cluster.replicas) {
      const storage = await LevelStorage.open(replica.dataDir)
      try {
        const snapshot = storage.snapshot()
        expect(snapshot.metadata).toEqual({ index, term: 4, confState: { voters: [1, 2, 3], learners: [] } })
        expect(storage.initialState().hardState).toEqual({ term: 4, vote: 0, commit: index })
        expect(storage.firstIndex()).toBe(index + 1)
        expect(storage.lastIndex()).toBe(index)
        states.push(snapshot.data)
        // The state machine a replica restores from it: the registry as saved, the new directory.
        const restored = new ReplicaStateMachine([])
        restored.restore(snapshot)
        expect(restored.registry.size).toBe(40)
        expect(restored.registryDigest()).toBe(header.registryDigest)
        expect(restored.registry.appliedIndex).toBe(machine.registry.appliedIndex)
        expect(restored.registry.replicaPeerIds).toEqual(cluster.replicas.map((r) => r.peerId).sort())
        expect(restored.members.all()).toEqual(
          cluster.replicas.map((r) => ({ id: r.id, peerId: r.peerId, multiaddr: r.multiaddr, started: false })),
        )
        expect(restored.members.retiredIds()).toEqual([])
        // Records are the saved ones, byte for byte (their digest), whatever their observers.
        expect(recordsDigest(restored.registry.list({ limit: 1_000 }))).toBe(header.registryDigest)
      } finally {
        await storage.close()
      }
      expect(await readIdentity(replica.dataDir)).toEqual({ clusterId: cluster.clusterId, replicaId: replica.id })
    }
    // Identical on every founder, as a bootstrap is.
    expect(new Set(states.map((state) => Buffer.from(state).toString('hex'))).size).toBe(1)
    // Nothing but the data dirs (and their parents) was created.
    expect(tree().filter((path) => path.includes('.restore-'))).toEqual([])
  })

  it('takes an empty existing data dir', async () => {
    const cluster = newCluster(root)
    mkdirSync(cluster.replicas[0]!.dataDir, { recursive: true })
    await restoreSnapshot({ file, cluster })
    expect(existsSync(join(cluster.replicas[0]!.dataDir, 'replica.json'))).toBe(true)
  })

  it('refuses a data dir that holds anything, and writes nothing anywhere', async () => {
    const cluster = newCluster(root)
    mkdirSync(cluster.replicas[1]!.dataDir, { recursive: true })
    writeFileSync(join(cluster.replicas[1]!.dataDir, 'CURRENT'), 'MANIFEST-000001\n')
    const before = tree()
    expect(await codeOf(restoreSnapshot({ file, cluster }))).toBe('NOT_EMPTY')
    expect(tree()).toEqual(before)
    // A file where the data dir should be, too.
    rmSync(cluster.replicas[1]!.dataDir, { recursive: true })
    writeFileSync(cluster.replicas[1]!.dataDir, 'not a dir')
    expect(await codeOf(restoreSnapshot({ file, cluster }))).toBe('NOT_EMPTY')
  })

  it('refuses a cluster file that is not a new cluster: the same cluster id, or a key of the old cluster', async () => {
    const sameId = { ...newCluster(root), clusterId: OLD_CLUSTER_ID }
    expect(await codeOf(restoreSnapshot({ file, cluster: sameId }))).toBe('INVALID_CLUSTER')
    // Replica 2 of the new file has the key of the old cluster's replica 3 (seed 3).
    const oldKey = newCluster(root, [101, 3, 103])
    expect(oldKey.replicas[1]!.peerId).toBe(OLD_MEMBERS[2]!.peerId)
    expect(await codeOf(restoreSnapshot({ file, cluster: oldKey }))).toBe('INVALID_CLUSTER')
    const shared = newCluster(root)
    const sharing = {
      ...shared,
      replicas: shared.replicas.map((r) => ({ ...r, dataDir: shared.replicas[0]!.dataDir })),
    }
    expect(await codeOf(restoreSnapshot({ file, cluster: sharing }))).toBe('INVALID_CLUSTER')
    expect(tree()).toEqual([])
  })

  it('refuses a file whose state is not what its header says, before writing anything', async () => {
    const damaged = decodeSnapshotFile(encodeSnapshotFile({ ...header, records: 41 }, data))
    expect(await codeOf(restoreSnapshot({ file: damaged, cluster: newCluster(root) }))).toBe('CORRUPT')
    expect(tree()).toEqual([])
  })

  it('a restore of 1 or 5 founders works the same', async () => {
    for (const seeds of [[201], [301, 302, 303, 304, 305]]) {
      const dir = join(root, String(seeds.length))
      const cluster = newCluster(dir, seeds)
      await restoreSnapshot({ file, cluster })
      const storage = await LevelStorage.open(cluster.replicas[seeds.length - 1]!.dataDir)
      expect(storage.snapshot().metadata.confState.voters).toEqual(seeds.map((_, i) => i + 1))
      await storage.close()
    }
  })
})
