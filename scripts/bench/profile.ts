/**
 * CPU profiles for `pnpm bench --profile`: the bench process's own (the client side), taken with
 * the inspector's Profiler around each workload, and the replicas', written by `node --cpu-prof`
 * when a replica exits and cut here to each workload's window. Both use V8's monotonic clock in
 * microseconds, the clock of process.hrtime, so one window fits every process's profile.
 *
 * A .cpuprofile: `nodes` (the call tree: id, callFrame, children), `samples` (the node on top of
 * the stack at each sample) and `timeDeltas` (microseconds from the previous sample, the first
 * from `startTime`). A node's self time is the time of the samples that name it; a sample lasts
 * until the next one (the last one until `endTime`).
 */
import { Session } from 'node:inspector/promises'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface CallFrame {
  functionName: string
  scriptId: string
  url: string
  lineNumber: number
  columnNumber: number
}

export interface CpuProfileNode {
  id: number
  callFrame: CallFrame
  hitCount?: number
  children?: number[]
}

export interface CpuProfile {
  nodes: CpuProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** A stretch of time on the monotonic clock, in microseconds. */
export interface Window {
  startUs: number
  endUs: number
}

/** Now on V8's profile clock (CLOCK_MONOTONIC, microseconds). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** Sampling interval of both profilers: V8's default for --cpu-prof. */
export const SAMPLING_INTERVAL_US = 1_000

/** The bench process's profile, one workload at a time. */
export class ClientProfiler {
  private session: Session | undefined

  async start(): Promise<void> {
    if (this.session !== undefined) throw new Error('client profiler already running')
    const session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US })
    await session.post('Profiler.start')
    this.session = session
  }

  async stop(): Promise<CpuProfile> {
    const session = this.session
    if (session === undefined) throw new Error('client profiler not running')
    this.session = undefined
    try {
      const { profile } = await session.post('Profiler.stop')
      return profile as CpuProfile
    } finally {
      await session.post('Profiler.disable').catch(() => {})
      session.disconnect()
    }
  }
}

export function readProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
}

/** The .cpuprofile files under `dir` (what --cpu-prof-dir received), oldest first by name. */
export function profileFiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => name.endsWith('.cpuprofile'))
      .sort()
      .map((name) => join(dir, name))
  } catch {
    return []
  }
}

/** The samples of `profile` inside `window`, as a profile of their own (DevTools opens it). */
export function sliceProfile(profile: CpuProfile, window: Window): CpuProfile {
  const samples: number[] = []
  const timeDeltas: number[] = []
  let at = profile.startTime
  let previous = Math.max(profile.startTime, window.startUs)
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    if (at < window.startUs || at > window.endUs) continue
    samples.push(profile.samples[i]!)
    timeDeltas.push(at - previous)
    previous = at
  }
  return {
    nodes: profile.nodes,
    startTime: Math.max(profile.startTime, window.startUs),
    endTime: Math.min(profile.endTime, window.endUs),
    samples,
    timeDeltas,
  }
}

/** True if `profile` covers all of `window` (the replica ran, profiled, throughout). */
export function covers(profile: CpuProfile, window: Window): boolean {
  return profile.startTime <= window.startUs && profile.endTime >= window.endUs
}

export interface FunctionSelf {
  functionName: string
  /** `packages/raft/src/raft.ts:123`, `node:internal/streams/writable:310`, `(native)`, or `-` (V8's own entries). */
  location: string
  samples: number
  /** Share of all samples of the profile (idle included), in %. */
  percent: number
  selfMs: number
}

export interface ProfileSummary {
  samples: number
  durationMs: number
  /** Share of samples not `(idle)`: how busy the thread was, in %. */
  busyPercent: number
  top: FunctionSelf[]
}

/**
 * Self time per call frame (function name + url + line: the same function reached by different
 * paths is one entry), the `limit` largest by sample count.
 */
export function topFunctions(profile: CpuProfile, root: string, limit = 15): ProfileSummary {
  const frameOf = new Map<number, CallFrame>()
  for (const node of profile.nodes) frameOf.set(node.id, node.callFrame)
  const selfUs = new Map<number, number>()
  const selfSamples = new Map<number, number>()
  let at = profile.startTime
  const times: number[] = []
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    times.push(at)
  }
  for (let i = 0; i < profile.samples.length; i++) {
    const node = profile.samples[i]!
    const until = i + 1 < times.length ? times[i + 1]! : Math.max(profile.endTime, times[i]!)
    selfUs.set(node, (selfUs.get(node) ?? 0) + Math.max(0, until - times[i]!))
    selfSamples.set(node, (selfSamples.get(node) ?? 0) + 1)
  }
  const byFrame = new Map<string, { frame: CallFrame; samples: number; us: number }>()
  for (const [node, samples] of selfSamples) {
    const frame = frameOf.get(node)
    if (frame === undefined) continue
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}`
    const entry = byFrame.get(key) ?? { frame, samples: 0, us: 0 }
    entry.samples += samples
    entry.us += selfUs.get(node) ?? 0
    byFrame.set(key, entry)
  }
  const total = profile.samples.length
  const idle = [...byFrame.values()]
    .filter((entry) => entry.frame.functionName === '(idle)')
    .reduce((sum, entry) => sum + entry.samples, 0)
  const top = [...byFrame.values()]
    .sort((a, b) => b.samples - a.samples || b.us - a.us)
    .slice(0, limit)
    .map((entry) => ({
      functionName: entry.frame.functionName === '' ? '(anonymous)' : entry.frame.functionName,
      location: location(entry.frame, root),
      samples: entry.samples,
      percent: total === 0 ? 0 : Math.round((1000 * entry.samples) / total) / 10,
      selfMs: Math.round(entry.us / 100) / 10,
    }))
  return {
    samples: total,
    durationMs: Math.round((profile.endTime - profile.startTime) / 1000),
    busyPercent: total === 0 ? 0 : Math.round((1000 * (total - idle)) / total) / 10,
    top,
  }
}

/**
 * A readable url:line (1-based): the repository root and pnpm's store path cut off. No url: V8's
 * own entries ((idle), (program), (garbage collector)) or a native binding (`writeBuffer`, a
 * socket's write syscall, is one).
 */
function location(frame: CallFrame, root: string): string {
  if (frame.url === '') return frame.functionName.startsWith('(') ? '-' : '(native)'
  let url = frame.url.replace(/^file:\/\//, '')
  const store = url.lastIndexOf('/node_modules/')
  if (store !== -1) url = url.slice(store + '/node_modules/'.length)
  else if (url.startsWith(`${root}/`)) url = url.slice(root.length + 1)
  return `${url}:${frame.lineNumber + 1}`
}

/** The summary as lines: `  12.3%  45.6 ms  functionName  url:line`. */
export function formatTop(title: string, summary: ProfileSummary): string {
  const lines = [
    `${title}: ${summary.samples} samples over ${summary.durationMs} ms, busy ${summary.busyPercent}% (not idle)`,
    '   % samples   self ms  function                                  location',
  ]
  for (const entry of summary.top) {
    lines.push(
      `  ${`${entry.percent.toFixed(1)}%`.padStart(10)}  ${entry.selfMs.toFixed(1).padStart(8)}  ${entry.functionName.slice(0, 40).padEnd(40)}  ${entry.location}`,
    )
  }
  return lines.join('\n')
}
