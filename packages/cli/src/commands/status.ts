import type { AuthorityClient } from '@nodeledger/client'
import type { ClusterFile } from '@nodeledger/authority/cluster-file'
import { CLOCK_AHEAD_WARN_MS } from '@nodeledger/authority/constants'
import type { MemberStatus, StatusResult } from '@nodeledger/protocol'
import { uptimeMs } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
import { CliError, EXIT } from '../exit-codes.ts'
import { err, out, renderTable, stdoutIsTTY } from '../output.ts'
import { formatDuration, shortPeerId, withClient } from './connect.ts'
import type { ClientCommandOptions } from './connect.ts'
import { capabilityList } from './records.ts'

/**
 * `status`: every replica as it answers for itself. Rows are named by who answered (the status
 * result's id and peer id, authenticated by Noise), not by the cluster file's entry that was
 * dialed: a file entry answered by another replica than it names is a MISMATCH (exit 14), never a
 * row with the wrong replica's figures under the right label. Members of record that the file
 * does not list (added later) are asked too, at the address the membership records.
 */

/** One replica's row, in the table and (whole ids, numbers) in --json. */
export interface ReplicaRow {
  /** The id the replica answered with; the file's id when it did not answer. */
  id: number
  /** The cluster file's id for the entry dialed (undefined: a member of record not in the file). */
  fileId: number | undefined
  peerId: string
  multiaddr: string
  answered: boolean
  error?: string
  role?: string
  term?: number
  commit?: number
  applied?: number
  /** Entries the replica's applied index is behind the leader's commit. */
  lag?: number
  leader?: number | null
  records?: number
  snapshotIndex?: number
  firstIndex?: number
  lastIndex?: number
  registryDigest?: string
  version?: string
  /** From the membership of record: voter, learner, or not a member (undefined: unknown). */
  membership?: 'voter' | 'learner' | 'not a member'
  mismatch?: string
}

export interface ClusterView {
  clusterId: string
  leader: StatusResult | undefined
  rows: ReplicaRow[]
  members: readonly MemberStatus[]
  mismatches: string[]
  statuses: Map<number, StatusResult>
}

/** Ask every replica of the file and every member of record not in it; label and check each answer. */
export async function gatherView(client: AuthorityClient, cluster: ClusterFile): Promise<ClusterView> {
  const fromFile = await client.statusAll()
  const answers = fromFile.flatMap((entry) => (entry.status === undefined ? [] : [entry.status]))
  const fileLeader = newestLeader(answers)
  // The membership of record, as the leader holds it (else the replica of the highest term).
  const firstReference = fileLeader ?? [...answers].sort((a, b) => b.term - a.term)[0]
  const members = firstReference?.members ?? []
  const extra = members.filter((member) => !cluster.replicas.some((entry) => entry.peerId === member.peerId))
  const extraAnswers = await Promise.all(
    extra.map(async (member) => {
      try {
        return { member, status: await client.status(member.multiaddr) }
      } catch (error) {
        return { member, error: (error as { code?: string }).code ?? 'UNAVAILABLE' }
      }
    }),
  )
  // The leader may be a member the file does not list (added later): look among every answer.
  const everyAnswer = [
    ...answers,
    ...extraAnswers.flatMap((answer) => (answer.status === undefined ? [] : [answer.status])),
  ]
  const leader = newestLeader(everyAnswer)
  const reference = leader ?? firstReference
  const ofRecord = reference?.members ?? members
  const leaderCommit = leader?.commit ?? Math.max(0, ...everyAnswer.map((s) => s.commit))
  const membership = (id: number): ReplicaRow['membership'] => {
    if (reference === undefined) return undefined
    const member = ofRecord.find((m) => m.id === id)
    return member === undefined ? 'not a member' : member.voter ? 'voter' : 'learner'
  }
  const mismatches: string[] = []
  const rows: ReplicaRow[] = []
  const statuses = new Map<number, StatusResult>()
  const fill = (row: ReplicaRow, s: StatusResult): ReplicaRow => {
    statuses.set(s.id, s)
    return {
      ...row,
      answered: true,
      role: s.role,
      term: s.term,
      commit: s.commit,
      applied: s.applied,
      lag: Math.max(0, leaderCommit - s.applied),
      leader: s.leader?.id ?? null,
      records: s.registryRecords,
      snapshotIndex: s.snapshotIndex,
      firstIndex: s.firstIndex,
      lastIndex: s.lastIndex,
      registryDigest: s.registryDigest,
      version: s.version,
      membership: membership(s.id),
    }
  }
  for (const [position, entry] of fromFile.entries()) {
    const fileEntry = cluster.replicas[position]!
    const base: ReplicaRow = {
      id: fileEntry.id,
      fileId: fileEntry.id,
      peerId: entry.peerId,
      multiaddr: entry.multiaddr,
      answered: false,
    }
    if (entry.status === undefined) {
      rows.push({ ...base, error: entry.error?.code ?? 'UNAVAILABLE', membership: membership(fileEntry.id) })
      continue
    }
    const s = entry.status
    const row = fill({ ...base, id: s.id, peerId: s.peerId }, s)
    const problems: string[] = []
    if (s.clusterId !== cluster.clusterId)
      problems.push(`it belongs to cluster ${s.clusterId}, the file is cluster ${cluster.clusterId}`)
    if (s.id !== fileEntry.id)
      problems.push(
        `the file says replica ${fileEntry.id} is ${fileEntry.multiaddr}, but peer ${s.peerId} answered as replica ${s.id}: replica ${fileEntry.id}'s entry names the wrong peer id`,
      )
    const recorded = ofRecord.find((member) => member.id === fileEntry.id)
    if (recorded !== undefined && recorded.peerId !== fileEntry.peerId)
      problems.push(
        `the membership of record has replica ${fileEntry.id} as ${recorded.peerId}, the file as ${fileEntry.peerId}`,
      )
    if (problems.length > 0) {
      row.mismatch = problems.join('; ')
      mismatches.push(`cluster file entry ${fileEntry.id}: ${row.mismatch}`)
    }
    rows.push(row)
  }
  for (const { member, status, error } of extraAnswers) {
    const base: ReplicaRow = {
      id: member.id,
      fileId: undefined,
      peerId: member.peerId,
      multiaddr: member.multiaddr,
      answered: false,
    }
    if (status === undefined) rows.push({ ...base, error: error ?? 'UNAVAILABLE', membership: membership(member.id) })
    else rows.push(fill(base, status))
  }
  return { clusterId: cluster.clusterId, leader, rows, members: ofRecord, mismatches, statuses }
}

/** The leader of the highest term among the answers (an old leader cut off may still think it leads). */
function newestLeader(answers: readonly StatusResult[]): StatusResult | undefined {
  return answers.filter((s) => s.role === 'leader').sort((a, b) => b.term - a.term)[0]
}

const COLUMNS = ['replica', 'peer', 'role', 'term', 'commit', 'applied', 'lag', 'leader', 'records', 'snapshot', 'note']

function tableRows(view: ClusterView): Array<Record<string, string | number | undefined>> {
  return view.rows.map((row) => ({
    replica: row.id,
    peer: shortPeerId(row.peerId),
    role: row.answered ? row.role : 'unreachable',
    term: row.term,
    commit: row.commit,
    applied: row.applied,
    lag: row.lag,
    leader: row.leader === null ? '-' : row.leader,
    records: row.records,
    snapshot: row.snapshotIndex,
    note: note(row),
  }))
}

function note(row: ReplicaRow): string {
  const notes: string[] = []
  if (row.mismatch !== undefined) notes.push(`MISMATCH (file entry ${row.fileId})`)
  if (!row.answered) notes.push(row.error ?? 'UNAVAILABLE')
  if (row.membership === 'learner') notes.push('learner')
  if (row.membership === 'not a member') notes.push('not a member of record')
  if (row.fileId === undefined) notes.push('not in the cluster file')
  return notes.join(', ')
}

export function renderView(view: ClusterView, options: { color: boolean }): string {
  const lines = renderTable(tableRows(view), COLUMNS).split('\n')
  if (options.color) {
    for (const [i, row] of view.rows.entries()) {
      const line = i + 1
      if (row.mismatch !== undefined || !row.answered) lines[line] = `\x1b[31m${lines[line]}\x1b[0m`
      else if (row.role === 'leader') lines[line] = `\x1b[1;32m${lines[line]}\x1b[0m`
    }
  }
  return lines.join('\n')
}

/** The exit code of a view, said on stderr when it is not 0 (the table alone does not explain a 5). */
export function exitCodeOf(view: ClusterView): number {
  if (view.mismatches.length > 0) return EXIT.MISMATCH
  if (view.leader !== undefined) return EXIT.OK
  err('nodeledger: UNAVAILABLE: no replica leads right now (each row is what that replica says of itself)')
  return EXIT.UNAVAILABLE
}

export interface StatusOptions extends ClientCommandOptions {
  replica?: number
  watch: boolean
  intervalMs: number
}

export async function status(options: StatusOptions): Promise<number> {
  if (options.watch) return watchStatus(options)
  return withClient(options, async ({ client, cluster }) => {
    const view = await gatherView(client, cluster)
    if (options.replica !== undefined) return replicaDetail(view, options.replica, options.json)
    // Nodes are read from the leader; with none, say so at once rather than wait out retries.
    const nodes = view.leader !== undefined ? await nodeSummary(client, options.timeoutMs) : undefined
    if (options.json) {
      out(
        JSON.stringify({
          clusterId: view.clusterId,
          leader: view.leader?.id ?? null,
          term: view.leader?.term ?? null,
          replicas: view.rows,
          members: view.members,
          mismatches: view.mismatches,
          nodes: nodes ?? null,
        }),
      )
      return exitCodeOf(view)
    }
    out(renderView(view, { color: stdoutIsTTY() }))
    for (const mismatch of view.mismatches) err(`nodeledger: MISMATCH: ${mismatch}`)
    if (nodes !== undefined) {
      out()
      out(
        `nodes: ${nodes.active} active, ${nodes.total - nodes.active} inactive${nodes.complete ? '' : ` (first ${nodes.total} counted)`}`,
      )
      if (nodes.shown.length > 0)
        out(
          renderTable(
            nodes.shown.map((node) => ({
              node: shortPeerId(node.peerId),
              active: node.active,
              capabilities: node.capabilities.length === 0 ? '-' : node.capabilities.join(','),
              version: node.version || '-',
              seq: node.seq,
              uptime: formatDuration(node.uptimeMs),
              changed: node.lastUpdatedMs === 0 ? '-' : `${formatDuration(node.changedAgoMs)} ago`,
            })),
            ['node', 'active', 'capabilities', 'version', 'seq', 'uptime', 'changed'],
          ),
        )
      if (nodes.total > nodes.shown.length) out(`... and ${nodes.total - nodes.shown.length} more: nodeledger ls`)
      if (nodes.clockAheadMs > CLOCK_AHEAD_WARN_MS)
        out(
          `\nwarning: the registry's clock (the leader's stamps) runs ${formatDuration(nodes.clockAheadMs)} ahead of this machine's clock; uptimes stand still while a leader's stamps are clamped to it. Check the replicas' clocks (NTP): nodeledger_clock_ahead_seconds on each replica, and its log, say which sees it`,
        )
    } else {
      out('\nnodes: not readable right now (no leader answered)')
    }
    return exitCodeOf(view)
  })
}

/** `status --replica N`: one replica in detail, and how it compares with the leader. */
function replicaDetail(view: ClusterView, id: number, json: boolean): number {
  const row = view.rows.find((candidate) => candidate.id === id)
  if (row === undefined)
    throw new CliError(
      'NOT_FOUND',
      `replica ${id} is neither in the cluster file nor a member of record (members: ${view.members.map((m) => m.id).join(', ') || 'unknown'})`,
    )
  const s = view.statuses.get(id)
  const leader = view.leader
  const digestAgrees =
    s !== undefined && leader !== undefined && s.applied === leader.applied
      ? s.registryDigest === leader.registryDigest
      : undefined
  if (json) {
    out(JSON.stringify({ ...row, members: s?.members ?? null, leaderCommit: leader?.commit ?? null, digestAgrees }))
  } else if (s === undefined) {
    out(`replica ${id}  ${row.multiaddr}\nnot answering: ${row.error ?? 'UNAVAILABLE'}`)
  } else {
    const lines: Array<[string, string]> = [
      ['replica', `${s.id}  peer ${s.peerId}`],
      ['address', row.multiaddr],
      ['cluster', s.clusterId],
      ['version', s.version],
      ['role', `${s.role}, term ${s.term}, leader ${s.leader?.id ?? 'unknown'}`],
      ['membership', row.membership ?? 'unknown'],
      [
        'log',
        `first ${s.firstIndex}, last ${s.lastIndex}, commit ${s.commit}, applied ${s.applied}, snapshot ${s.snapshotIndex}`,
      ],
      [
        'lag',
        leader === undefined
          ? 'unknown (no leader)'
          : `${row.lag} entries behind the leader's commit (${leader.commit})`,
      ],
      [
        'registry',
        `${s.registryRecords} records, digest ${s.registryDigest}${digestAgrees === undefined ? '' : digestAgrees ? ' (the leader has the same at this index)' : ' (DIFFERS from the leader at the same index)'}`,
      ],
    ]
    if (row.mismatch !== undefined) lines.push(['MISMATCH', row.mismatch])
    out(lines.map(([key, value]) => `${key.padEnd(10)}  ${value}`).join('\n'))
    out(`\nmembers of record, as replica ${s.id} holds them:`)
    out(
      renderTable(
        s.members.map((member) => ({
          id: member.id,
          peer: member.peerId,
          multiaddr: member.multiaddr,
          voter: member.voter ? 'voter' : 'learner',
          started: member.started,
        })),
        ['id', 'peer', 'multiaddr', 'voter', 'started'],
      ),
    )
  }
  if (row.mismatch !== undefined) return EXIT.MISMATCH
  if (s === undefined) return EXIT.UNAVAILABLE
  return EXIT.OK
}

/** `status --watch`: the table redrawn in place every interval; leader changes listed as they happen. */
async function watchStatus(options: StatusOptions): Promise<number> {
  return withClient(
    { ...options, timeoutMs: Math.min(options.timeoutMs, options.intervalMs) },
    async ({ client, cluster }) => {
      const tty = process.stdout.isTTY === true
      const changes: string[] = []
      let lastLeader: string | undefined
      let stop = false
      let wake: (() => void) | undefined
      const onSignal = (): void => {
        stop = true
        wake?.()
      }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      try {
        while (!stop) {
          const started = Date.now()
          let text: string
          try {
            const view = await gatherView(client, cluster)
            const leader = view.leader === undefined ? 'none' : `${view.leader.id} (term ${view.leader.term})`
            if (leader !== lastLeader) {
              if (lastLeader !== undefined)
                changes.push(`${new Date().toISOString().slice(11, 23)}  leader ${lastLeader} -> ${leader}`)
              lastLeader = leader
              if (changes.length > WATCH_CHANGES_SHOWN) changes.shift()
              if (!tty && changes.length > 0) console.log(changes.at(-1))
            }
            text = renderView(view, { color: tty })
            if (view.mismatches.length > 0) text += `\n${view.mismatches.map((m) => `MISMATCH: ${m}`).join('\n')}`
          } catch (error) {
            text = `status failed: ${(error as Error).message}`
          }
          const header = `nodeledger status --watch  ${new Date().toISOString().slice(0, 19)}Z  leader ${lastLeader ?? '?'}  (Ctrl-C to stop)`
          const body = [header, '', text, '', 'leader changes:', ...(changes.length === 0 ? ['  none yet'] : changes)]
          // In place on a terminal (home, clear below); a plain sequence of tables elsewhere.
          if (tty) process.stdout.write(`\x1b[H\x1b[J${body.join('\n')}\n`)
          else console.log(`${text}\n`)
          const waitMs = Math.max(0, options.intervalMs - (Date.now() - started))
          await new Promise<void>((resolve) => {
            wake = resolve
            setTimeout(resolve, waitMs).unref()
          })
        }
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
      return EXIT.OK
    },
    // Each refresh is one attempt per replica: a dead replica must not hold the screen up.
    { attemptsMax: 1 },
  )
}

const WATCH_CHANGES_SHOWN = 10

/** Nodes counted and shown by `status`: at most this many are read (pages of 1000), this many shown. */
const STATUS_NODES_COUNTED_MAX = 10_000
const STATUS_NODES_SHOWN_MAX = 12

interface NodeSummary {
  total: number
  active: number
  complete: boolean
  /** How far the newest record stamp (the registry's clock) is ahead of this machine's clock; 0 when not. */
  clockAheadMs: number
  shown: Array<{
    peerId: string
    active: boolean
    capabilities: string[]
    version: string
    seq: number
    uptimeMs: number
    lastUpdatedMs: number
    changedAgoMs: number
  }>
}

/** The registry's nodes at a glance: counts and the most recently changed few. Undefined if unreadable. */
async function nodeSummary(client: AuthorityClient, timeoutMs: number): Promise<NodeSummary | undefined> {
  const records: NodeData[] = []
  const signal = AbortSignal.timeout(timeoutMs * 2)
  let afterPeerId: string | undefined
  try {
    do {
      const page = await client.list(
        { limit: 1000, ...(afterPeerId === undefined ? {} : { afterPeerId }) },
        { consistency: 'linearizable', signal },
      )
      records.push(...page.records)
      afterPeerId = page.nextAfterPeerId
    } while (afterPeerId !== undefined && records.length < STATUS_NODES_COUNTED_MAX)
  } catch {
    return undefined
  }
  const nowMs = Date.now()
  const shown = [...records]
    .sort((a, b) => Number(b.isActive) - Number(a.isActive) || b.lastUpdatedMs - a.lastUpdatedMs)
    .slice(0, STATUS_NODES_SHOWN_MAX)
    .map((record) => ({
      peerId: record.peerId,
      active: record.isActive,
      capabilities: capabilityList(record),
      version: record.version,
      seq: record.originSeq,
      uptimeMs: uptimeMs(record, nowMs),
      lastUpdatedMs: record.lastUpdatedMs,
      changedAgoMs: record.lastUpdatedMs === 0 ? 0 : Math.max(0, nowMs - record.lastUpdatedMs),
    }))
  // Stamps come from the leader's clock and trail this one's by the commit latency: only a clock error puts them ahead.
  const newestStampMs = records.reduce((newest, record) => Math.max(newest, record.lastUpdatedMs), 0)
  return {
    total: records.length,
    active: records.filter((record) => record.isActive).length,
    complete: afterPeerId === undefined,
    clockAheadMs: Math.max(0, newestStampMs - nowMs),
    shown,
  }
}
