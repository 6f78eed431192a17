import { ReplicaRequestError } from '../replica-errors.ts'

/**
 * Callers waiting for the applied index to reach some index (reads after ReadIndex, watchers).
 * Kept sorted by index so a release walks only the ones it frees.
 */
export class ApplyWaiters {
  private waiters: Array<{ index: number; resolve: () => void; reject: (error: Error) => void }> = []

  wait(index: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter = { index, resolve, reject }
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((other) => other !== waiter)
        reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed'))
      }
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      waiter.resolve = () => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      let position = this.waiters.length
      while (position > 0 && this.waiters[position - 1]!.index > index) position--
      this.waiters.splice(position, 0, waiter)
    })
  }

  release(appliedIndex: number): void {
    let count = 0
    while (count < this.waiters.length && this.waiters[count]!.index <= appliedIndex) count++
    if (count === 0) return
    const released = this.waiters.splice(0, count)
    for (const waiter of released) waiter.resolve()
  }

  rejectAll(error: Error): void {
    const all = this.waiters
    this.waiters = []
    for (const waiter of all) waiter.reject(error)
  }
}
