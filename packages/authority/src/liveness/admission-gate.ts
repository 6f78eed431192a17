import { ProtocolError } from '@nodeledger/protocol'

export interface AdmissionGateOptions {
  /** Admitted at once, at most. */
  readonly inflightMax: number
  /** Waiting for a slot, at most; one more is refused UNAVAILABLE with a retry hint. */
  readonly queuedMax: number
  /** What the refusal suggests waiting before the retry. */
  readonly retryAfterMs: number
  /** What is being admitted, for the refusal's message ("activations"). */
  readonly what: string
}

/**
 * Back-pressure for a burst (issue 13: a join storm of 1,000 workers): at most `inflightMax` jobs
 * run at once, the next `queuedMax` wait their turn in arrival order, and any more are refused
 * `UNAVAILABLE` with a retry hint in the message (the client retries UNAVAILABLE after a backoff).
 * A waiter whose signal aborts leaves the queue with `TIMEOUT`.
 */
export class AdmissionGate {
  readonly #options: AdmissionGateOptions
  #inflight = 0
  readonly #queue: Array<{ admit: () => void; signal: AbortSignal; onAbort: () => void }> = []
  /** Refused so far (for the metrics). */
  refused = 0

  constructor(options: AdmissionGateOptions) {
    if (options.inflightMax < 1 || options.queuedMax < 0) throw new RangeError('inflightMax >= 1, queuedMax >= 0')
    this.#options = options
  }

  get inflight(): number {
    return this.#inflight
  }

  get queued(): number {
    return this.#queue.length
  }

  /** Runs `job` once admitted, and frees its slot when it settles. */
  async run<T>(signal: AbortSignal, job: () => Promise<T>): Promise<T> {
    await this.#admit(signal)
    try {
      return await job()
    } finally {
      this.#release()
    }
  }

  #admit(signal: AbortSignal): Promise<void> {
    if (this.#inflight < this.#options.inflightMax) {
      this.#inflight++
      return Promise.resolve()
    }
    const { queuedMax, retryAfterMs, what, inflightMax } = this.#options
    if (this.#queue.length >= queuedMax) {
      this.refused++
      return Promise.reject(
        new ProtocolError(
          'UNAVAILABLE',
          `busy: ${inflightMax} ${what} in flight and ${queuedMax} waiting; retry in ${retryAfterMs} ms`,
        ),
      )
    }
    if (signal.aborted) return Promise.reject(new ProtocolError('TIMEOUT', `gave up waiting for ${what}`))
    return new Promise((resolve, reject) => {
      const waiter = {
        signal,
        admit: () => {
          signal.removeEventListener('abort', waiter.onAbort)
          resolve()
        },
        onAbort: () => {
          const position = this.#queue.indexOf(waiter)
          if (position !== -1) this.#queue.splice(position, 1)
          reject(new ProtocolError('TIMEOUT', `gave up waiting for ${what}`))
        },
      }
      signal.addEventListener('abort', waiter.onAbort, { once: true })
      this.#queue.push(waiter)
    })
  }

  /** A slot is free: hand it to the first waiter (the count stays), or give it back. */
  #release(): void {
    const next = this.#queue.shift()
    if (next !== undefined) next.admit()
    else this.#inflight--
  }
}
