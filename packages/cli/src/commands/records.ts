import { peerIdFromString } from '@libp2p/peer-id'
import { ProtocolError } from '@nodeledger/protocol'
import type { Consistency } from '@nodeledger/protocol'
import { SELF_REPORTED_FIELDS } from '@nodeledger/registry'
import type { Delta, ListFilter, NodeData, SelfReported } from '@nodeledger/registry'
import { UsageError } from '../exit-codes.ts'
import { err, out, renderTable } from '../output.ts'
import { formatDuration, withClient } from './connect.ts'
import type { ClientCommandOptions } from './connect.ts'

/** These commands talk to the leader: dial the last one first. */
const LEADER_FIRST = { preferLeader: true }

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
  return withClient(
    options,
    async ({ client }) => {
      // The operator writes on the node's behalf with the next sequence; a concurrent writer makes it
      // STALE, and one fresh read of the sequence settles it.
      for (let attempt = 0; ; attempt++) {
        const current = await client.get(peerId, { consistency: 'linearizable' })
        const delta: Delta = { originPeerId: peerId, seq: (current.record?.originSeq ?? 0) + 1, fields }
        try {
          const result = await client.submit(delta)
          if (options.json) out(JSON.stringify({ peerId, seq: delta.seq, ...result }))
          else out(`${peerId} updated at log index ${result.index} (seq ${delta.seq})`)
          return 0
        } catch (error) {
          if (!(error instanceof ProtocolError) || error.code !== 'STALE' || attempt >= 2) throw error
        }
      }
    },
    LEADER_FIRST,
  )
}

export async function get(
  peerId: string,
  options: ClientCommandOptions & { consistency: Consistency },
): Promise<number> {
  checkPeerId(peerId)
  return withClient(
    options,
    async ({ client }) => {
      const { record, index } = await client.get(peerId, { consistency: options.consistency })
      if (record === null) {
        if (options.json) out(JSON.stringify({ peerId, record: null, index }))
        else err(`${peerId}: not in the registry (as of log index ${index})`)
        return 3
      }
      if (options.json) out(JSON.stringify({ record, index }))
      else out(formatRecord(record, index, Date.now()))
      return 0
    },
    LEADER_FIRST,
  )
}

export function capabilityList(record: NodeData): string[] {
  return [
    record.isTwitterScraper && 'twitter',
    record.isWebScraper && 'web',
    record.isDiscordScraper && 'discord',
    record.isTelegramScraper && 'telegram',
  ].filter((name): name is string => typeof name === 'string')
}

export function capabilities(record: NodeData): string {
  const names = capabilityList(record)
  return names.length === 0 ? '-' : names.join(',')
}

/**
 * Why and since when a node is inactive, for a person: `ttl 3m12s ago`, `left 4.0s ago`,
 * `disconnected 2h5m ago`. `-` while the node is active (its lastLeftMs and lastLeftReason then
 * describe its previous absence, kept as history), `never joined` for a record no replica ever saw
 * connected, and the time alone when the record does not say why (it left before record version 2,
 * or the replica holding it left the cluster). "Ago" is by this machine's clock.
 */
export function inactiveSummary(record: NodeData, nowMs: number): string {
  if (record.isActive) return '-'
  if (record.lastLeftMs === 0) return 'never joined'
  const ago = `${formatDuration(Math.max(0, nowMs - record.lastLeftMs))} ago`
  return record.lastLeftReason === '' ? ago : `${record.lastLeftReason} ${ago}`
}

/** `get`'s text: every field, then the inactive summary with the time it went inactive. */
export function formatRecord(record: NodeData, index: number, nowMs: number): string {
  const lines = Object.entries(record).map(([field, value]) => {
    const text = Array.isArray(value) ? value.join(', ') || '-' : String(value)
    return `${field.padEnd(22)} ${text}`
  })
  const inactive = inactiveSummary(record, nowMs)
  const since =
    record.isActive || record.lastLeftMs === 0 ? '' : ` (since ${new Date(record.lastLeftMs).toISOString()})`
  lines.push(`${'inactive'.padEnd(22)} ${inactive}${since}`)
  return `${lines.join('\n')}\n(as of log index ${index})`
}

export const LS_COLUMNS = ['peer', 'active', 'inactive', 'staked', 'capabilities', 'version', 'seq', 'changed'] as const

/** `ls`'s table rows: one per record, `inactive` saying why and since when (inactiveSummary). */
export function lsRows(
  records: readonly NodeData[],
  nowMs: number,
): Array<Record<(typeof LS_COLUMNS)[number], string | number | boolean>> {
  return records.map((record) => ({
    peer: record.peerId,
    active: record.isActive,
    inactive: inactiveSummary(record, nowMs),
    staked: record.isStaked,
    capabilities: capabilities(record),
    version: record.version || '-',
    seq: record.originSeq,
    changed: record.changedIndex,
  }))
}

/** The server's page size limit (PROTOCOL.md ListFilter.limit): longer listings take several pages. */
const LIST_PAGE_RECORDS_MAX = 1000

export interface LsFilter {
  active?: boolean
  staked?: boolean
  capability?: string
  /** Records to show at most; undefined with `all`. */
  limit: number
  after?: string
  all: boolean
}

/**
 * `ls`: pages through the registry (1000 per request) until `--limit` records are shown, or to
 * the end with `--all`, and says when more follow and how to get them (`--after PEER_ID`).
 */
export async function ls(
  filter: LsFilter,
  options: ClientCommandOptions & { consistency: Consistency },
): Promise<number> {
  if (filter.after !== undefined) checkPeerId(filter.after)
  return withClient(
    options,
    async ({ client }) => {
      const records: NodeData[] = []
      let after = filter.after
      let index = 0
      let more = false
      const wanted = filter.all ? Number.POSITIVE_INFINITY : filter.limit
      while (records.length < wanted) {
        const page = await client.list(
          {
            ...(filter.active !== undefined ? { active: filter.active } : {}),
            ...(filter.staked !== undefined ? { staked: filter.staked } : {}),
            ...(filter.capability !== undefined ? { capability: filter.capability as ListFilter['capability'] } : {}),
            ...(after !== undefined ? { afterPeerId: after } : {}),
            limit: Math.min(LIST_PAGE_RECORDS_MAX, wanted - records.length),
          },
          { consistency: options.consistency },
        )
        records.push(...page.records)
        index = Math.max(index, page.index)
        after = page.nextAfterPeerId
        more = after !== undefined
        if (!more) break
      }
      const nextAfterPeerId = more ? records.at(-1)?.peerId : undefined
      if (options.json) {
        out(JSON.stringify({ records, index, ...(nextAfterPeerId === undefined ? {} : { nextAfterPeerId }) }))
        return 0
      }
      out(renderTable(lsRows(records, Date.now()), LS_COLUMNS))
      const pages = filter.all && records.length > LIST_PAGE_RECORDS_MAX ? ' (several pages: not one moment)' : ''
      out(`${records.length} record(s) as of log index ${index}${pages}`)
      // "May follow": the server says so when its page was full, even if the next page turns out empty.
      if (nextAfterPeerId !== undefined)
        out(`more may follow: nodeledger ls --after ${nextAfterPeerId} (or --all for everything)`)
      return 0
    },
    LEADER_FIRST,
  )
}
