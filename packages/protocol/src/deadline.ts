/**
 * Deadlines that cost nothing once a request is done. `AbortSignal.any([longLived, timeout])` per
 * request makes the long-lived signal (a shutdown signal) collect a dependent for every request ever
 * made; profiling a replica under load showed a third of its CPU going to that bookkeeping. This
 * helper listens explicitly and removes its listener and timer in `dispose()`.
 */
/**
 * A signal that aborts when any of `signals` aborts (with its reason) or after `timeoutMs` (with a
 * TimeoutError). `dispose` removes every listener and timer: call it in `finally`.
 */
export function deadline(
  timeoutMs: number | undefined,
  ...signals: Array<AbortSignal | undefined>
): { signal: AbortSignal; dispose: () => void } {
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
