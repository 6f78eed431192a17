/**
 * The machine's load around each measurement. The bench loads the machine itself (a workload
 * keeps both cores busy and the 1-minute load average lags by about a minute), and other work may
 * share it: before each system's run of each workload the bench waits, up to `settleS`, for the
 * 1-minute load average to fall to LOADED_PER_CORE per core, then records it. A figure taken above
 * that is marked `loaded`: something else was competing for the CPU.
 */
import { cpus, loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Progress } from './progress.ts'
import { round } from './stats.ts'

/** Above this 1-minute load per core, other work was running: the figure is marked. */
export const LOADED_PER_CORE = 0.5
/** Default wait for the load to settle before a measurement. */
export const SETTLE_S_DEFAULT = 60
const SETTLE_POLL_MS = 1_000

export interface LoadReading {
  /** os.loadavg()[0] when the measurement began. */
  loadAvg1m: number
  /** loadAvg1m above LOADED_PER_CORE per core. */
  loaded: boolean
  /** How long the bench waited for the load to settle (0: it had). */
  settledS: number
}

export function cores(): number {
  return Math.max(1, cpus().length)
}

/** The 1-minute load at which a measurement counts as loaded: 1.0 on 2 cores. */
export function loadedAbove(): number {
  return LOADED_PER_CORE * cores()
}

/** `load average: 9.68, 6.62, 4.84 (2 cores; figures taken above 1.00 are marked !)`, as uptime prints it. */
export function uptimeLine(): string {
  const [one, five, fifteen] = loadavg().map((value) => value.toFixed(2))
  return `load average: ${one}, ${five}, ${fifteen} (${cores()} cores; figures taken above ${loadedAbove().toFixed(2)} are marked !)`
}

/**
 * Waits until the 1-minute load is at most LOADED_PER_CORE per core or `settleS` pass, showing the
 * wait as a progress bar, then reads the load.
 */
export async function settleLoad(what: string, settleS: number, progress: Progress): Promise<LoadReading> {
  const limit = loadedAbove()
  const started = Date.now()
  const deadline = started + settleS * 1000
  let load = loadavg()[0]!
  if (load > limit && settleS > 0) {
    const bar = progress.phase(`load settling before ${what}`, settleS, 's')
    while (load > limit && Date.now() < deadline) {
      bar.update(Math.floor((Date.now() - started) / 1000), `1-min load ${load.toFixed(2)} > ${limit.toFixed(2)}`)
      await sleep(SETTLE_POLL_MS)
      load = loadavg()[0]!
    }
    bar.done(
      load > limit
        ? `still ${load.toFixed(2)} after ${settleS} s: measuring anyway, marked !`
        : `${load.toFixed(2)} after ${Math.round((Date.now() - started) / 1000)} s`,
    )
  }
  return { loadAvg1m: round(load, 2), loaded: load > limit, settledS: round((Date.now() - started) / 1000, 1) }
}
