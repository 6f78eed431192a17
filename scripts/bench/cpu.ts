import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'

/**
 * CPU time per operation, the figure a shared machine's load does not bend much: another process
 * stretches a workload's wall time, not the CPU seconds each of our processes spends on one write.
 * Read from /proc/<pid>/stat (utime + stime) before and after a workload, for every member, and
 * process.cpuUsage() for the bench process (the client).
 */

/** Clock ticks per second of /proc's utime/stime (USER_HZ; 100 on every Linux we run on). */
const CLOCK_TICKS_PER_S = (() => {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const ticks = Number.parseInt(result.stdout ?? '', 10)
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100
})()

/** CPU ms a process spent so far (user + system), undefined if it is gone or /proc is not there. */
export function processCpuMs(pid: number): number | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name is in parentheses and may hold spaces: count fields after its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // After the name: state(3) ppid(4) ... utime(14) stime(15), so utime is at 14 - 3 = 11.
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_S
}

/** A reading of every member's and the client's CPU ms, to subtract from a later one. */
export interface CpuReading {
  readonly members: ReadonlyMap<number, number>
  readonly clientMs: number
}

export function readCpu(pids: ReadonlyMap<number, number>): CpuReading {
  const members = new Map<number, number>()
  for (const [member, pid] of pids) {
    const ms = processCpuMs(pid)
    if (ms !== undefined) members.set(member, ms)
  }
  const usage = process.cpuUsage()
  return { members, clientMs: (usage.user + usage.system) / 1000 }
}

/** CPU ms per 1,000 operations over a workload: the leader's, the followers' together, the client's. */
export interface CpuPerOps {
  leaderCpuMsPer1k: number
  followersCpuMsPer1k: number
  clientCpuMsPer1k: number
  /** The leader's CPU over the workload's wall time, %: 100 is one core busy. */
  leaderCpuPct: number
}

export function cpuPerOps(
  before: CpuReading,
  after: CpuReading,
  leader: number,
  operations: number,
  wallS: number,
): CpuPerOps | undefined {
  if (operations <= 0 || wallS <= 0) return undefined
  let leaderMs: number | undefined
  let followersMs = 0
  for (const [member, endMs] of after.members) {
    const startMs = before.members.get(member)
    if (startMs === undefined) continue
    if (member === leader) leaderMs = endMs - startMs
    else followersMs += endMs - startMs
  }
  if (leaderMs === undefined) return undefined
  const per1k = (ms: number): number => Math.round((ms * 1000 * 10) / operations) / 10
  return {
    leaderCpuMsPer1k: per1k(leaderMs),
    followersCpuMsPer1k: per1k(followersMs),
    clientCpuMsPer1k: per1k(after.clientMs - before.clientMs),
    leaderCpuPct: Math.round(leaderMs / (wallS * 10)),
  }
}

/** Resident set size of a process in bytes (VmRSS of /proc/<pid>/status), undefined if it is gone. */
export function processRssBytes(pid: number): number | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(text)
  return match === null ? undefined : Number(match[1]) * 1024
}

/** The whole machine's CPU so far, in clock ticks: busy (all but idle and iowait) and total, from /proc/stat. */
export function machineCpuTicks(): { busy: number; total: number } | undefined {
  let text: string
  try {
    text = readFileSync('/proc/stat', 'utf8')
  } catch {
    return undefined
  }
  const line = text.split('\n').find((row) => row.startsWith('cpu '))
  if (line === undefined) return undefined
  const fields = line.trim().split(/\s+/).slice(1).map(Number)
  const total = fields.reduce((sum, value) => sum + value, 0)
  // user nice system idle iowait irq softirq steal ...: idle is the 4th, iowait the 5th.
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
  return { busy: total - idle, total }
}
