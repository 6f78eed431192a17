/**
 * The server's side of a failover, from the members' own logs: nodeledger's replicas log every
 * role change (pino JSON lines: `time`, `msg` "became leader" or "role changed", `role`, `term`),
 * etcd its raft's (zap JSON lines at info level: `ts`, `msg` "<id> became leader at term 5").
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Election, RoleChange } from './target.ts'

const POLL_MS = 20

/** The size of `path` now (0 if it does not exist yet). */
export function logSize(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}

/** The complete lines of `path` from byte `offset` on. */
export function linesFrom(path: string, offset: number): string[] {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return []
  }
  try {
    const size = statSync(path).size
    if (size <= offset) return []
    const buffer = Buffer.alloc(size - offset)
    readSync(fd, buffer, 0, buffer.length, offset)
    const text = buffer.toString('utf8')
    // The last line may still be on its way.
    return text.slice(0, text.lastIndexOf('\n') + 1).split('\n')
  } finally {
    closeSync(fd)
  }
}

const ROLES = new Set(['follower', 'pre-candidate', 'candidate', 'leader'])

/** nodeledger: `{"time":1764622383693,"msg":"role changed","role":"candidate","term":4,...}`. */
export function nodeledgerRoleChange(member: number, line: string): RoleChange | undefined {
  if (!line.includes('"role"')) return undefined
  try {
    const entry = JSON.parse(line) as { time?: unknown; msg?: unknown; role?: unknown; term?: unknown }
    if (entry.msg !== 'became leader' && entry.msg !== 'role changed') return undefined
    if (typeof entry.time !== 'number' || typeof entry.term !== 'number' || typeof entry.role !== 'string')
      return undefined
    if (!ROLES.has(entry.role)) return undefined
    return { member, atMs: entry.time, role: entry.role as RoleChange['role'], term: entry.term }
  } catch {
    return undefined
  }
}

const ETCD_ROLE = /became (follower|pre-candidate|candidate|leader) at term (\d+)/

/** etcd: `{"level":"info","ts":"2026-12-01T20:53:04.108Z","msg":"c864e1fe68f34373 became leader at term 2"}`. */
export function etcdRoleChange(member: number, line: string): RoleChange | undefined {
  const match = ETCD_ROLE.exec(line)
  if (match === null) return undefined
  try {
    const entry = JSON.parse(line) as { ts?: unknown }
    const atMs = typeof entry.ts === 'string' ? Date.parse(entry.ts) : Number.NaN
    if (!Number.isFinite(atMs)) return undefined
    return { member, atMs, role: match[1] as RoleChange['role'], term: Number(match[2]) }
  } catch {
    return undefined
  }
}

/**
 * The election after a kill, from the role changes logged since just before it. `fastPathBelowMs`:
 * a campaign that began sooner than this after the kill cannot have been started by an election
 * timeout (the followers heard the leader until the kill), so it took the leader-lost path.
 */
export function electionFrom(
  changes: readonly RoleChange[],
  killed: number,
  killedAtMs: number,
  fastPathBelowMs: number | undefined,
): Election | undefined {
  const others = changes.filter((change) => change.member !== killed).sort((a, b) => a.atMs - b.atMs)
  const won = others.find((change) => change.role === 'leader')
  if (won === undefined) return undefined
  const before = others.filter((change) => change.atMs <= won.atMs)
  const campaigns = countCampaigns(before)
  // The winner's last campaign: its candidate step right before it led, and the pre-candidate step
  // (PreVote) right before that if there is one.
  const mine = before.filter((change) => change.member === won.member)
  let start = mine.indexOf(won)
  if (mine[start - 1]?.role === 'candidate') start--
  if (mine[start - 1]?.role === 'pre-candidate') start--
  const campaignMs = start < mine.indexOf(won) ? mine[start]!.atMs - killedAtMs : null
  const election: Election = {
    newLeader: won.member,
    term: won.term,
    electedMs: won.atMs - killedAtMs,
    campaignMs,
    campaigns,
    timeline: before
      .map((change) => `${change.member} ${change.role} +${Math.round(change.atMs - killedAtMs)}`)
      .join(', '),
  }
  if (fastPathBelowMs !== undefined && campaignMs !== null)
    election.path = campaignMs < fastPathBelowMs ? 'leader-lost' : 'timeout'
  return election
}

/** Campaigns begun: a step to pre-candidate, or to candidate not straight after the member's pre-candidate step. */
function countCampaigns(changes: readonly RoleChange[]): number {
  const previous = new Map<number, RoleChange['role']>()
  let campaigns = 0
  for (const change of changes) {
    if (
      change.role === 'pre-candidate' ||
      (change.role === 'candidate' && previous.get(change.member) !== 'pre-candidate')
    )
      campaigns++
    previous.set(change.member, change.role)
  }
  return campaigns
}

/**
 * Polls `read` (the role changes since the mark) until one names a leader other than `killed`,
 * or `timeoutMs` passes.
 */
export async function waitForElection(
  read: () => RoleChange[],
  killed: number,
  killedAtMs: number,
  fastPathBelowMs: number | undefined,
  timeoutMs: number,
): Promise<Election | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const election = electionFrom(read(), killed, killedAtMs, fastPathBelowMs)
    if (election !== undefined || Date.now() >= deadline) return election
    await sleep(POLL_MS)
  }
}
