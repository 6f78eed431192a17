/**
 * Reconnect delay after `attempt` consecutive failures (attempt >= 1): exponential from `baseMs`,
 * capped at `maxMs`, with "equal jitter" (half fixed, half random) so that replicas that lost the
 * same peer do not redial in lockstep, yet never redial in a tight loop.
 */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  if (!Number.isInteger(attempt) || attempt < 1)
    throw new Error(`backoffDelayMs: attempt must be an integer >= 1, got ${attempt}`)
  const ceilingMs = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30))
  const delayMs = ceilingMs / 2 + random() * (ceilingMs / 2)
  if (!(delayMs >= 0 && delayMs <= maxMs)) throw new Error(`backoffDelayMs: ${delayMs} outside [0, ${maxMs}]`)
  return Math.round(delayMs)
}
