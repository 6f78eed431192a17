import { peerIdFromString } from '@libp2p/peer-id'
import { AuthorityClient } from '@nodeledger/client'
import { ProtocolError } from '@nodeledger/protocol'
import type { Consistency } from '@nodeledger/protocol'
import { loadClusterFile, loadOrCreateKey } from '@nodeledger/authority'
import type { ClusterFile } from '@nodeledger/authority'
import { SELF_REPORTED_FIELDS, uptimeMs } from '@nodeledger/registry'
import type { Delta, NodeData, SelfReported } from '@nodeledger/registry'
import { UsageError } from '../exit-codes.ts'
import { renderTable } from '../output.ts'

export interface ClientCommandOptions {
  cluster: string
  json: boolean
  timeoutMs: number
}

/** A client acting as the cluster file's operator (it may write any node's record). */
async function openClient(options: ClientCommandOptions): Promise<{ client: AuthorityClient; cluster: ClusterFile }> {
  const cluster = await loadClusterFile(options.cluster)
  const operator = cluster.operators[0]
  const privateKey = operator === undefined ? undefined : await loadOrCreateKey(operator.keyFile)
  const client = new AuthorityClient({
    bootstrap: cluster.replicas.map((replica) => replica.multiaddr),
    requestTimeoutMs: options.timeoutMs,
    ...(privateKey !== undefined ? { privateKey } : {}),
  })
  await client.start()
  return { client, cluster }
}

export async function status(options: ClientCommandOptions): Promise<number> {
  const { client, cluster } = await openClient(options)
  try {
    const results = await client.statusAll()
    const leaderCommit = Math.max(
      0,
      ...results.map((result) => ('status' in result && result.status !== undefined ? result.status.commit : 0)),
    )
    const rows = cluster.replicas.map((replica) => {
      const result = results.find((entry) => entry.multiaddr === replica.multiaddr)
      const s = result !== undefined && 'status' in result ? result.status : undefined
      if (s === undefined)
        return {
          id: replica.id,
          replica: `${replica.id}`,
          role: 'unreachable',
          error:
            result !== undefined && 'error' in result ? String(result.error?.code ?? 'UNAVAILABLE') : 'UNAVAILABLE',
        }
      return {
        id: replica.id,
        replica: `${replica.id}`,
        role: s.role,
        term: s.term,
        commit: s.commit,
        applied: s.applied,
        lag: leaderCommit - s.applied,
        leader: s.leader === null ? '-' : String(s.leader.id),
        records: s.registryRecords,
        snapshot: s.snapshotIndex,
      }
    })
    // Nodes are read from the leader; with none, say so at once rather than wait out retries.
    const nodes = rows.some((row) => row.role === 'leader') ? await nodeSummary(client, options.timeoutMs) : undefined
    if (options.json) {
      console.log(JSON.stringify({ replicas: rows, nodes }))
    } else {
      console.log(
        renderTable(rows, ['replica', 'role', 'term', 'commit', 'applied', 'lag', 'leader', 'records', 'snapshot']),
      )
      if (nodes !== undefined) {
        console.log()
        console.log(
          `nodes: ${nodes.active} active, ${nodes.total - nodes.active} inactive${nodes.complete ? '' : ` (first ${nodes.total} counted)`}`,
        )
        if (nodes.shown.length > 0)
          console.log(
            renderTable(nodes.shown, ['node', 'active', 'capabilities', 'version', 'seq', 'uptime', 'changed']),
          )
        if (nodes.total > nodes.shown.length)
          console.log(`... and ${nodes.total - nodes.shown.length} more: nodeledger ls`)
      } else {
        console.log('\nnodes: not readable right now (no leader answered)')
      }
    }
    return rows.some((row) => row.role === 'leader') ? 0 : 5
  } finally {
    await client.stop()
  }
}

/** Nodes counted and shown by `status`: at most this many are read (pages of 1000), this many shown. */
const STATUS_NODES_COUNTED_MAX = 10_000
const STATUS_NODES_SHOWN_MAX = 12

interface NodeSummary {
  total: number
  active: number
  complete: boolean
  shown: Array<Record<string, string | number | boolean>>
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
      node: shortPeerId(record.peerId),
      active: record.isActive,
      capabilities: capabilities(record),
      version: record.version || '-',
      seq: record.originSeq,
      uptime: formatDuration(uptimeMs(record, nowMs)),
      changed: record.lastUpdatedMs === 0 ? '-' : `${formatDuration(Math.max(0, nowMs - record.lastUpdatedMs))} ago`,
    }))
  return {
    total: records.length,
    active: records.filter((record) => record.isActive).length,
    complete: afterPeerId === undefined,
    shown,
  }
}

/** For tables only (JSON and logs keep full ids): the tail a person can tell apart. */
function shortPeerId(peerId: string): string {
  return peerId.length <= 16 ? peerId : `…${peerId.slice(-10)}`
}

function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1_000)}s`
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`
}

/** FIELD=VALUE pairs to a typed delta: booleans, numbers, a comma-separated multiaddr list, strings. */
export function parseAssignments(assignments: readonly string[]): Partial<SelfReported> {
  const fields: Record<string, unknown> = {}
  const known = new Set<string>(SELF_REPORTED_FIELDS)
  for (const assignment of assignments) {
    const equals = assignment.indexOf('=')
    if (equals <= 0) throw new UsageError(`"${assignment}" is not FIELD=VALUE`)
    const field = assignment.slice(0, equals)
    const value = assignment.slice(equals + 1)
    if (!known.has(field))
      throw new UsageError(`unknown field "${field}"; a node reports: ${SELF_REPORTED_FIELDS.join(', ')}`)
    if (field === 'multiaddrs') fields[field] = value === '' ? [] : value.split(',')
    else if (field.startsWith('is')) {
      if (value !== 'true' && value !== 'false') throw new UsageError(`${field} takes true or false (got "${value}")`)
      fields[field] = value === 'true'
    } else if (field === 'version' || field === 'ethAddress') fields[field] = value
    else {
      const number = Number(value)
      if (!Number.isSafeInteger(number) || number < 0)
        throw new UsageError(`${field} takes a non-negative integer (got "${value}")`)
      fields[field] = number
    }
  }
  if (Object.keys(fields).length === 0) throw new UsageError('give at least one FIELD=VALUE')
  return fields as Partial<SelfReported>
}

function checkPeerId(peerId: string): void {
  try {
    peerIdFromString(peerId)
  } catch {
    throw new UsageError(`"${peerId}" is not a libp2p peer id`)
  }
}

export async function put(
  peerId: string,
  assignments: readonly string[],
  options: ClientCommandOptions,
): Promise<number> {
  checkPeerId(peerId)
  const fields = parseAssignments(assignments)
  const { client } = await openClient(options)
  try {
    // The operator writes on the node's behalf with the next sequence; a concurrent writer makes it
    // STALE, and one fresh read of the sequence settles it.
    for (let attempt = 0; ; attempt++) {
      const current = await client.get(peerId, { consistency: 'linearizable' })
      const delta: Delta = { originPeerId: peerId, seq: (current.record?.originSeq ?? 0) + 1, fields }
      try {
        const result = await client.submit(delta)
        if (options.json) console.log(JSON.stringify({ peerId, seq: delta.seq, ...result }))
        else console.log(`${peerId} updated at log index ${result.index} (seq ${delta.seq})`)
        return 0
      } catch (error) {
        if (!(error instanceof ProtocolError) || error.code !== 'STALE' || attempt >= 2) throw error
      }
    }
  } finally {
    await client.stop()
  }
}

export async function get(
  peerId: string,
  options: ClientCommandOptions & { consistency: Consistency },
): Promise<number> {
  checkPeerId(peerId)
  const { client } = await openClient(options)
  try {
    const { record, index } = await client.get(peerId, { consistency: options.consistency })
    if (record === null) {
      if (options.json) console.log(JSON.stringify({ peerId, record: null, index }))
      else console.error(`${peerId}: not in the registry (as of log index ${index})`)
      return 3
    }
    if (options.json) console.log(JSON.stringify({ record, index }))
    else console.log(formatRecord(record, index))
    return 0
  } finally {
    await client.stop()
  }
}

export async function ls(
  filter: { active?: boolean; staked?: boolean; capability?: string; limit: number },
  options: ClientCommandOptions & { consistency: Consistency },
): Promise<number> {
  const { client } = await openClient(options)
  try {
    const { records, index } = await client.list(
      {
        ...(filter.active !== undefined ? { active: filter.active } : {}),
        ...(filter.staked !== undefined ? { staked: filter.staked } : {}),
        ...(filter.capability !== undefined ? { capability: filter.capability as 'twitter' } : {}),
        limit: filter.limit,
      },
      { consistency: options.consistency },
    )
    if (options.json) {
      console.log(JSON.stringify({ records, index }))
      return 0
    }
    console.log(
      renderTable(
        records.map((record) => ({
          peer: record.peerId,
          active: record.isActive,
          staked: record.isStaked,
          capabilities: capabilities(record),
          version: record.version || '-',
          seq: record.originSeq,
          changed: record.changedIndex,
        })),
        ['peer', 'active', 'staked', 'capabilities', 'version', 'seq', 'changed'],
      ),
    )
    console.log(`${records.length} record(s) as of log index ${index}`)
    return 0
  } finally {
    await client.stop()
  }
}

function capabilities(record: NodeData): string {
  const names = [
    record.isTwitterScraper && 'twitter',
    record.isWebScraper && 'web',
    record.isDiscordScraper && 'discord',
    record.isTelegramScraper && 'telegram',
  ].filter(Boolean)
  return names.length === 0 ? '-' : names.join(',')
}

function formatRecord(record: NodeData, index: number): string {
  const lines = Object.entries(record).map(
    ([field, value]) => `${field.padEnd(22)} ${Array.isArray(value) ? value.join(', ') || '-' : String(value)}`,
  )
  return `${lines.join('\n')}\n(as of log index ${index})`
}
