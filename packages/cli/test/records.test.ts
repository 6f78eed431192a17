import { describe, expect, it } from 'vitest'
import { emptyRecord } from '@nodeledger/registry'
import type { LastLeftReason, NodeData } from '@nodeledger/registry'
import { LS_COLUMNS, formatRecord, inactiveSummary, lsRows } from '../src/commands/records.ts'
import { renderTable } from '../src/output.ts'

const PEER = '12D3KooWEDbQ1g11eY4gWPMK2Di2iRyrZDBc18sa9FSzEPZkYFdo'
const T0 = 1_760_000_000_000
const NOW = T0 + 10 * 60_000

/** A node that joined at T0 and went inactive at `leftMs` for `reason`. */
function left(reason: LastLeftReason, leftMs: number): NodeData {
  return {
    ...emptyRecord(PEER),
    firstJoinedMs: T0,
    lastJoinedMs: T0,
    lastLeftMs: leftMs,
    lastLeftReason: reason,
    lastUpdatedMs: leftMs,
    uptimeAccumulatedMs: leftMs - T0,
    version: '1.2.0',
  }
}

describe('get and ls say why and since when a node is inactive', () => {
  it('inactiveSummary: reason and age; the age alone when the reason is not known', () => {
    expect(inactiveSummary(left('ttl', NOW - 3 * 60_000), NOW)).toBe('ttl 3m0s ago')
    expect(inactiveSummary(left('left', NOW - 4_000), NOW)).toBe('left 4.0s ago')
    expect(inactiveSummary(left('disconnected', NOW - 2 * 3_600_000 - 5 * 60_000), NOW)).toBe('disconnected 2h5m ago')
    expect(inactiveSummary(left('', NOW - 60_000), NOW)).toBe('1m0s ago')
    // A clock behind the leader's says 0, never a negative age.
    expect(inactiveSummary(left('ttl', NOW + 5_000), NOW)).toBe('ttl 0ms ago')
    expect(inactiveSummary(emptyRecord(PEER), NOW)).toBe('never joined')
  })

  it('an active node shows -, though its record keeps the last absence as history', () => {
    const back: NodeData = {
      ...left('ttl', NOW - 60_000),
      isActive: true,
      observers: [PEER],
      lastJoinedMs: NOW - 30_000,
      lastUpdatedMs: NOW - 30_000,
    }
    expect(inactiveSummary(back, NOW)).toBe('-')
    expect(formatRecord(back, 7, NOW)).toMatch(/^inactive {15}-$/m)
    expect(formatRecord(back, 7, NOW)).toMatch(/^lastLeftReason {9}ttl$/m)
  })

  it('ls has an inactive column', () => {
    const table = renderTable(lsRows([left('ttl', NOW - 3 * 60_000)], NOW), LS_COLUMNS)
    const [heading, row] = table.split('\n') as [string, string]
    expect(heading).toMatch(/^PEER +ACTIVE +INACTIVE +STAKED +CAPABILITIES +VERSION +SEQ +CHANGED$/)
    expect(row).toContain('false   ttl 3m0s ago')
    expect(lsRows([left('left', NOW - 4_000)], NOW)[0]).toMatchObject({ active: false, inactive: 'left 4.0s ago' })
  })

  it('get shows the reason field and the summary with the time it went inactive', () => {
    const text = formatRecord(left('disconnected', NOW - 3 * 60_000), 42, NOW)
    expect(text).toMatch(/^lastLeftReason {9}disconnected$/m)
    expect(text).toContain(
      `inactive               disconnected 3m0s ago (since ${new Date(NOW - 3 * 60_000).toISOString()})`,
    )
    expect(text.endsWith('(as of log index 42)')).toBe(true)
  })
})
