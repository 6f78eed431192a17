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

/**
 * A signal that aborts when any of `signals` aborts (with its reason) or after `timeoutMs` (with a
 * TimeoutError). `dispose` removes every listener and timer: call it in `finally`.
 */
export function deadline(timeoutMs: number | undefined, ...signals: Array<AbortSignal | undefined>): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController()
  const listeners: Array<[AbortSignal, () => void]> = []
  let timer: ReturnType<typeof setTimeout> | undefined
  const dispose = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    for (const [signal, listener] of listeners) signal.removeEventListener('abort', listener)
    listeners.length = 0
  }
  for (const signal of signals) {
    if (signal === undefined) continue
    if (signal.aborted) {
      controller.abort(signal.reason)
      return { signal: controller.signal, dispose }
    }
    const listener = (): void => {
      controller.abort(signal.reason)
      dispose()
    }
    signal.addEventListener('abort', listener, { once: true })
    listeners.push([signal, listener])
  }
  if (timeoutMs !== undefined) {
    timer = setTimeout(() => {
      controller.abort(new DOMException(`deadline of ${timeoutMs} ms passed`, 'TimeoutError'))
      dispose()
    }, timeoutMs)
  }
  return { signal: controller.signal, dispose }
}
