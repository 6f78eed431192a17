import { resolve } from 'node:path'
import cliProgress from 'cli-progress'
import {
  SNAPSHOT_FILE_VERSION,
  SOFTWARE_VERSION,
  decodeSnapshotFile,
  encodeSnapshotFile,
  inspectSnapshotFile,
  loadClusterFile,
  loadOrCreateKey,
  readSnapshotFile,
  restoreSnapshot,
  writeSnapshotFileAtomic,
} from '@nodeledger/authority'
import type { SnapshotContents, SnapshotFile, SnapshotFileHeader } from '@nodeledger/authority'
import { AuthorityClient } from '@nodeledger/client'
import { EXIT, UsageError, exitCodeFor } from '../exit-codes.ts'
import { renderTable } from '../output.ts'

/**
 * `nodeledger snapshot save | status | restore`: backup and disaster recovery, as etcd's
 * `etcdctl snapshot save` and `etcdutl snapshot status | restore` (docs/PROTOCOL.md "Snapshot",
 * "Snapshot file", "Restore"). Results on stdout (a table, or one JSON object with --json),
 * progress and steps on stderr.
 *
 * Exit codes as every command's (exit-codes.ts): 0 ok, 2 bad input (INVALID, INVALID_CLUSTER,
 * NOT_EMPTY), 3 the file does not exist, 5 no leader answered, 6 not an operator, 9 CORRUPT or
 * UNSUPPORTED_VERSION, 10 IO.
 */

// -------------------------------------------------------------------------------------------------
// save

export interface SnapshotSaveOptions {
  readonly cluster: string
  readonly timeoutMs: number
  readonly frameTimeoutMs: number
  readonly json: boolean
}

export async function snapshotSave(path: string, options: SnapshotSaveOptions): Promise<number> {
  const target = resolve(path)
  const cluster = await loadClusterFile(options.cluster)
  const operator = cluster.operators[0]
  if (operator === undefined) {
    throw new UsageError(`${options.cluster} names no operator: only an operator may take a snapshot`)
  }
  const client = new AuthorityClient({
    bootstrap: cluster.replicas.map((replica) => replica.multiaddr),
    requestTimeoutMs: options.timeoutMs,
    privateKey: await loadOrCreateKey(operator.keyFile),
  })
  await client.start()
  const progress = byteProgress('receiving snapshot')
  let taken: Awaited<ReturnType<AuthorityClient['snapshot']>>
  try {
    taken = await client.snapshot({
      frameTimeoutMs: options.frameTimeoutMs,
      onProgress: (received, total) => progress.update(received, total),
    })
  } finally {
    progress.stop()
    await client.stop()
  }
  const { totalBytes, ...leaderHeader } = taken.header
  const header: SnapshotFileHeader = {
    ...leaderHeader,
    dataBytes: totalBytes,
    dataSha256: taken.sha256,
    savedMs: Date.now(),
    writer: SOFTWARE_VERSION,
  }
  step(`checking the snapshot (${header.records} records, ${header.dataBytes} bytes) before writing it`)
  const bytes = encodeSnapshotFile(header, taken.data)
  // A backup that restore would refuse is no backup: the whole state is decoded and counted now.
  const file = decodeSnapshotFile(bytes)
  const contents = inspectSnapshotFile(file)
  step(`writing ${target}`)
  await writeSnapshotFileAtomic(target, bytes)
  const report = describe(target, file, contents)
  if (options.json) console.log(JSON.stringify(report))
  else
    console.log(
      `saved ${target}: index ${header.index}, term ${header.term}, ${header.records} records, ${file.fileBytes} bytes, sha256 ${report.sha256}`,
    )
  return EXIT.OK
}

// -------------------------------------------------------------------------------------------------
// status

export async function snapshotStatus(path: string, options: { readonly json: boolean }): Promise<number> {
  const target = resolve(path)
  const file = await readSnapshotFile(target)
  const contents = inspectSnapshotFile(file)
  const report = describe(target, file, contents)
  if (options.json) {
    console.log(JSON.stringify(report))
    return EXIT.OK
  }
  const lines: Array<[string, string]> = [
    ['file', report.file],
    [
      'format',
      `nodeledger snapshot file v${report.format.file} (state machine v${report.format.stateMachine}, registry codec v${report.format.registry}), written by nodeledger ${report.writer}`,
    ],
    ['cluster', report.clusterId],
    ['saved', `${report.savedAt}, from replica ${report.leader} (the leader)`],
    ['index', String(report.index)],
    ['term', String(report.term)],
    ['records', String(report.records)],
    ['registry digest', report.registryDigest],
    ['bytes', `${report.fileBytes} (state ${report.dataBytes})`],
    ['checksum', `sha256 ${report.sha256} OK (state sha256 ${report.dataSha256} OK)`],
  ]
  const width = Math.max(...lines.map(([name]) => name.length))
  for (const [name, value] of lines) console.log(`${name.padEnd(width)}  ${value}`)
  console.log()
  console.log(
    renderTable(
      report.members.map((member) => ({
        id: member.id,
        'peer id': member.peerId,
        address: member.multiaddr.replace(/\/p2p\/[^/]+$/, ''),
        voter: member.voter,
        started: member.started,
      })),
      ['id', 'peer id', 'address', 'voter', 'started'],
    ),
  )
  return EXIT.OK
}

// -------------------------------------------------------------------------------------------------
// restore

export async function snapshotRestore(
  path: string,
  options: { readonly cluster: string; readonly json: boolean },
): Promise<number> {
  const target = resolve(path)
  step(`checking ${target}`)
  // The whole file, then the whole state, before the cluster file or any data dir is touched.
  const file = await readSnapshotFile(target)
  step(`checking the snapshot's state (${file.header.records} records, ${file.header.dataBytes} bytes)`)
  const contents = inspectSnapshotFile(file)
  const cluster = await loadClusterFile(options.cluster)
  const result = await restoreSnapshot({ file, cluster, contents, onStep: step })
  const clusterPath = resolve(options.cluster)
  if (options.json) {
    console.log(JSON.stringify({ ...result, clusterFile: clusterPath }))
    return EXIT.OK
  }
  console.log(
    `restored ${target} (cluster ${result.fromClusterId}, index ${result.index}, term ${result.term}, ${result.records} records) into cluster ${result.clusterId}:`,
  )
  console.log(
    renderTable(
      result.replicas.map((replica) => ({ id: replica.id, 'peer id': replica.peerId, 'data dir': replica.dataDir })),
      ['id', 'peer id', 'data dir'],
    ),
  )
  console.log()
  console.log('Start every replica of the new cluster (its data dir holds the restored state):')
  for (const replica of result.replicas) {
    console.log(`  nodeledger authority --cluster ${clusterPath} --id ${replica.id}`)
  }
  console.log(`Then check: nodeledger status --cluster ${clusterPath} (every replica's records ${result.records})`)
  return EXIT.OK
}

// -------------------------------------------------------------------------------------------------

/** What status (and save's --json) reports about a file, every checksum already verified. */
function describe(path: string, file: SnapshotFile, contents: SnapshotContents) {
  const { header } = file
  return {
    file: path,
    format: { file: SNAPSHOT_FILE_VERSION, stateMachine: contents.stateVersion, registry: contents.registryVersion },
    writer: header.writer,
    clusterId: header.clusterId,
    savedMs: header.savedMs,
    savedAt: new Date(header.savedMs).toISOString(),
    leader: header.leader,
    index: header.index,
    term: header.term,
    records: header.records,
    registryDigest: header.registryDigest,
    dataBytes: header.dataBytes,
    fileBytes: file.fileBytes,
    sha256: Buffer.from(file.fileSha256).toString('hex'),
    dataSha256: Buffer.from(header.dataSha256).toString('hex'),
    checksumOk: true,
    members: header.members.map((member) => ({ ...member })),
  }
}

/** A step of a long job, on stderr (stdout carries only the result). */
function step(message: string): void {
  process.stderr.write(`nodeledger snapshot: ${message}\n`)
}

/** A byte count as it arrives, on stderr: a bar on a terminal, a line every few seconds elsewhere. */
function byteProgress(label: string): { update(received: number, total: number): void; stop(): void } {
  let bar: cliProgress.SingleBar | undefined
  return {
    update(received, total) {
      if (bar === undefined) {
        bar = new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: `${label} |{bar}| {percentage}% {value}/{total} bytes`,
            barsize: 24,
            hideCursor: true,
            noTTYOutput: true,
            notTTYSchedule: 5_000,
          },
          cliProgress.Presets.shades_classic,
        )
        bar.start(Math.max(1, total), 0)
      }
      bar.update(received)
    },
    stop() {
      bar?.stop()
    },
  }
}

/**
 * As main.ts's `run`: the command's exit code, or the error printed with its code and mapped to an
 * exit code (NOT_EMPTY, a target data dir holds something, is bad input like INVALID).
 */
export async function runSnapshotCommand(action: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await action()
  } catch (error) {
    const code = (error as { code?: string }).code
    console.error(`nodeledger: ${code !== undefined ? `${code}: ` : ''}${(error as Error).message}`)
    if (process.env.NODELEDGER_DEBUG === '1') console.error(error)
    process.exitCode = exitCodeFor(error)
  }
}
