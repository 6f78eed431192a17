/**
 * Jittered exponential backoff ("equal jitter"): before attempt n (n >= 1) wait a uniformly random
 * time in [cap / 2, cap], cap = min(maxMs, baseMs * 2^(n - 1)). The lower half keeps a storm of
 * retrying clients from hammering a new leader at once; the random half spreads them.
 */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  if (attempt <= 0) return 0
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30))
  return cap / 2 + random() * (cap / 2)
}

/** Sleeps `ms`, or rejects with the signal's reason as soon as it aborts; the timer is always cleared. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

// The deadline helper lives in @nodeledger/protocol: replicas and clients share it.
export { deadline } from '@nodeledger/protocol'
