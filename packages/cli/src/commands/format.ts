/** Formatting for tables, shared by commands; imports nothing (the agent's admin commands use it). */

/** For tables only (JSON and logs keep full ids): the tail a person can tell apart. */
export function shortPeerId(peerId: string): string {
  return peerId.length <= 16 ? peerId : `…${peerId.slice(-10)}`
}

export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1_000)}s`
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`
}
