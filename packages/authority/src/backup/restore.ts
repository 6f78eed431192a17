import { randomBytes } from 'node:crypto'
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type { ConfState, HardState, Snapshot } from '@nodeledger/raft'
import { REPLICAS_MAX, decodeSnapshot, encodeSnapshot, recordsDigest } from '@nodeledger/registry'
import type { ClusterFile } from '../cluster-file.ts'
import { readIdentity, writeIdentity } from '../replica/identity.ts'
import { Members } from '../replica/members.ts'
import type { Member } from '../replica/members.ts'
import { decodeStateSnapshot, encodeStateSnapshot } from '../replica/state-machine.ts'
import { LevelStorage } from '../storage/index.ts'
import { BackupError, ioError } from './errors.ts'
import { inspectSnapshotFile, syncDirectory } from './snapshot-file.ts'
import type { SnapshotContents, SnapshotFile } from './snapshot-file.ts'

/**
 * `nodeledger snapshot restore FILE --cluster NEW.json` (etcdutl snapshot restore): seed the data
 * dirs of a new cluster's founders from a snapshot file, for disaster recovery when a majority of
 * the old cluster is lost for good. Every founder gets the same state (docs/PROTOCOL.md "Restore"):
 *
 *   - the Raft store holds a snapshot at the saved index N and term T, the configuration the new
 *     cluster file's replicas, all voters, and the hard state { term: T, vote: 0, commit: N }:
 *     exactly what MemoryStorage.bootstrap writes for a new cluster, at (N, T) instead of (1, 1);
 *   - the snapshot's data is the state machine: the registry as saved (every record byte for
 *     byte, so its digest is the saved one; only its replica set becomes the new replicas' peer
 *     ids, or their liveness entries would be refused), the member directory the new replicas
 *     with `started: false` and no retired ids;
 *   - `replica.json` records the new cluster id and the replica's id.
 *
 * Why N and not index 1: the registry's applied index and every record's changedIndex are
 * positions in the log; they must stay below every entry the new cluster appends (the registry
 * applies only increasing indexes) and keep meaning what they meant to `since` and `watch`.
 * Renumbering would rewrite every record and lose the digest that proves the restore. Why T and
 * vote 0: every founder's log is the same one snapshot, so Log Matching holds at N; nobody has
 * voted in the new cluster, and the first election is for T + 1.
 *
 * Nothing is written until everything is checked: the whole file (inspectSnapshotFile: structure,
 * checksums, the state decoded, its records counted and digested), the cluster file (a new cluster
 * id, no key of the old cluster, one data dir per replica), every target dir (missing or empty).
 * Then each founder's dir is written under a temporary name beside it, read back and compared, and
 * only then are they all renamed into place; a failure removes what this run wrote.
 */

export interface RestoreOptions {
  readonly file: SnapshotFile
  readonly cluster: ClusterFile
  /** The file's contents when the caller has inspected it already (status and restore share one read). */
  readonly contents?: SnapshotContents
  /** Told of each step, for progress on stderr. */
  readonly onStep?: (message: string) => void
}

export interface RestoredReplica {
  readonly id: number
  readonly peerId: string
  readonly dataDir: string
}

export interface RestoreResult {
  readonly clusterId: string
  readonly fromClusterId: string
  readonly index: number
  readonly term: number
  readonly records: number
  readonly registryDigest: string
  readonly replicas: readonly RestoredReplica[]
}

export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  const { file, cluster } = options
  const step = options.onStep ?? (() => {})
  const { header } = file
  let contents = options.contents
  if (contents === undefined) {
    step(`checking the snapshot's state (${header.records} records, ${header.dataBytes} bytes)`)
    contents = inspectSnapshotFile(file)
  }
  checkCluster(file, contents, cluster)
  const targets = cluster.replicas.map((replica) => ({
    id: replica.id,
    peerId: replica.peerId,
    dataDir: resolve(replica.dataDir),
  }))
  for (const target of targets) await checkTarget(target.dataDir)

  step('building the restored state')
  const founders: Member[] = cluster.replicas.map((replica) => ({
    id: replica.id,
    peerId: replica.peerId,
    multiaddr: replica.multiaddr,
    started: false,
  }))
  const data = restoredState(contents, founders, header.registryDigest)
  const snapshot: Snapshot = {
    metadata: { index: header.index, term: header.term, confState: foundingConf(founders) },
    data,
  }
  const hardState: HardState = { term: header.term, vote: 0, commit: header.index }

  const written: Array<{ temporary: string; dataDir: string }> = []
  const renamed: Array<{ temporary: string; dataDir: string }> = []
  try {
    for (const target of targets) {
      const temporary = join(
        dirname(target.dataDir),
        `.${basename(target.dataDir)}.restore-${process.pid}-${randomBytes(6).toString('hex')}`,
      )
      step(`writing replica ${target.id}'s data dir`)
      await mkdir(dirname(target.dataDir), { recursive: true })
      written.push({ temporary, dataDir: target.dataDir })
      await writeFounder(temporary, snapshot, hardState, { clusterId: cluster.clusterId, replicaId: target.id })
      await verifyFounder(temporary, snapshot, hardState, { clusterId: cluster.clusterId, replicaId: target.id })
    }
    step('moving the data dirs into place')
    for (const entry of written) {
      // rename(2) replaces an empty directory and refuses (ENOTEMPTY) one that gained files since
      // it was checked: the last check is the rename itself.
      await rename(entry.temporary, entry.dataDir).catch((error: unknown) => {
        const code = (error as NodeJS.ErrnoException).code
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
          throw new BackupError('NOT_EMPTY', `${entry.dataDir} was filled while restoring; nothing was restored`)
        }
        throw ioError(`moving the restored data into ${entry.dataDir}`, error)
      })
      renamed.push(entry)
      await syncDirectory(dirname(entry.dataDir))
    }
  } catch (error) {
    // Undo this run's work only: renamed dirs go back to their temporary names, then every
    // temporary dir is removed. Dirs this run did not create are never touched.
    for (const entry of renamed.reverse()) await rename(entry.dataDir, entry.temporary).catch(() => undefined)
    for (const entry of written) await rm(entry.temporary, { recursive: true, force: true }).catch(() => undefined)
    throw error instanceof BackupError ? error : ioError('restoring', error)
  }
  return {
    clusterId: cluster.clusterId,
    fromClusterId: header.clusterId,
    index: header.index,
    term: header.term,
    records: header.records,
    registryDigest: header.registryDigest,
    replicas: targets,
  }
}

/**
 * The new cluster must be new: another cluster id than the snapshot's (a restored cluster never
 * mixes with the old one: replicas and data dirs refuse peers and files of another id), and no
 * peer id of the old cluster's members (Raft streams are accepted by peer id: an old replica still
 * running somewhere with the same key would be taken for a member). One data dir per replica.
 */
function checkCluster(file: SnapshotFile, contents: SnapshotContents, cluster: ClusterFile): void {
  const problems: string[] = []
  if (cluster.clusterId === file.header.clusterId) {
    problems.push(
      `its clusterId ${cluster.clusterId} is the snapshot's cluster's: a restored cluster is a new cluster; make its file with \`nodeledger cluster init --dir NEW_DIR\` (new keys, a new clusterId)`,
    )
  }
  const oldPeerIds = new Set([
    ...file.header.members.map((member) => member.peerId),
    ...contents.directory.all().map((member) => member.peerId),
  ])
  for (const replica of cluster.replicas) {
    if (oldPeerIds.has(replica.peerId)) {
      problems.push(`replica ${replica.id}'s peer id ${replica.peerId} belongs to the snapshot's cluster: use new keys`)
    }
  }
  if (cluster.replicas.length > REPLICAS_MAX) {
    problems.push(`${cluster.replicas.length} replicas, at most ${REPLICAS_MAX}`)
  }
  const dirs = new Map<string, number>()
  for (const replica of cluster.replicas) {
    const dir = resolve(replica.dataDir)
    const other = dirs.get(dir)
    if (other !== undefined) problems.push(`replicas ${other} and ${replica.id} share the data dir ${dir}`)
    dirs.set(dir, replica.id)
  }
  if (problems.length > 0) {
    throw new BackupError('INVALID_CLUSTER', `the cluster file cannot receive this snapshot: ${problems.join('; ')}`)
  }
}

/**
 * A target data dir is missing or an empty directory. Anything else is refused, always, with no
 * --force: a dir with files may be a replica's state (the very one a recovery may still need),
 * and deleting it is the operator's explicit act, not a side effect of restore (as etcdutl).
 */
async function checkTarget(dataDir: string): Promise<void> {
  let entries: string[]
  try {
    const info = await lstat(dataDir)
    if (!info.isDirectory()) throw new BackupError('NOT_EMPTY', `${dataDir} exists and is not a directory`)
    entries = await readdir(dataDir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw ioError(`checking ${dataDir}`, error)
  }
  if (entries.length > 0) {
    throw new BackupError(
      'NOT_EMPTY',
      `${dataDir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}): restore writes only into missing or empty data dirs; move it away (it may be a replica's state) and run restore again`,
    )
  }
}

/** The founding configuration of the restored cluster: every replica of the new cluster file a voter. */
function foundingConf(founders: readonly Member[]): ConfState {
  return { voters: founders.map((founder) => founder.id).sort((a, b) => a - b), learners: [] }
}

/**
 * The state machine snapshot every founder starts from: the saved registry with the new replicas
 * as its replica set, the new member directory. Checked before it is used: it decodes, and its
 * records are the saved ones (count and digest).
 */
function restoredState(contents: SnapshotContents, founders: readonly Member[], registryDigest: string): Uint8Array {
  const registry = encodeSnapshot({
    ...contents.registry,
    replicaPeerIds: founders.map((founder) => founder.peerId).sort(),
  })
  const data = encodeStateSnapshot(new Members(founders), registry)
  const back = decodeStateSnapshot(data, [])
  const state = decodeSnapshot(back.registry, { verify: false })
  assertRestore(state.records.length === contents.registry.records.length, 'the restored registry lost records')
  assertRestore(recordsDigest(state.records) === registryDigest, "the restored registry's digest is not the saved one")
  assertRestore(
    back.members.all().length === founders.length && back.members.retiredIds().length === 0,
    'the restored directory is not the new founders',
  )
  return data
}

/** A founder's data dir at `dir` (new): the Raft store seeded in one synced batch, then its identity. */
async function writeFounder(
  dir: string,
  snapshot: Snapshot,
  hardState: HardState,
  identity: { clusterId: string; replicaId: number },
): Promise<void> {
  const storage = await LevelStorage.open(dir)
  try {
    assertRestore(storage.empty, `${dir} is a new store`)
    await storage.save({ snapshot, hardState, entries: [] })
  } finally {
    await storage.close()
  }
  await writeIdentity(dir, identity)
}

/** Read a written founder dir back as a replica will open it, and compare it with what was meant. */
async function verifyFounder(
  dir: string,
  snapshot: Snapshot,
  hardState: HardState,
  identity: { clusterId: string; replicaId: number },
): Promise<void> {
  const storage = await LevelStorage.open(dir)
  try {
    const stored = storage.snapshot()
    const state = storage.initialState()
    assertRestore(
      stored.metadata.index === snapshot.metadata.index && stored.metadata.term === snapshot.metadata.term,
      `${dir}: the stored snapshot is at ${stored.metadata.index}/${stored.metadata.term}`,
    )
    assertRestore(
      JSON.stringify(stored.metadata.confState) === JSON.stringify(snapshot.metadata.confState),
      `${dir}: the stored configuration is not the founders'`,
    )
    assertRestore(
      Buffer.from(stored.data).equals(Buffer.from(snapshot.data)),
      `${dir}: the stored state is not the restored one`,
    )
    assertRestore(
      JSON.stringify(state.hardState) === JSON.stringify(hardState),
      `${dir}: the stored hard state is ${JSON.stringify(state.hardState)}`,
    )
    assertRestore(storage.lastIndex() === snapshot.metadata.index, `${dir}: the log holds entries`)
  } finally {
    await storage.close()
  }
  const written = await readIdentity(dir)
  assertRestore(
    written?.clusterId === identity.clusterId && written.replicaId === identity.replicaId,
    `${dir}: replica.json is not the restored identity`,
  )
}

/** A restore that did not come out as built is a bug here, and nothing of it may be used. */
function assertRestore(condition: boolean, message: string): asserts condition {
  if (!condition) throw new BackupError('IO', `restore check failed: ${message}; nothing was restored`)
}
