import { describe, expect, it } from 'vitest'
import { ProtocolError } from '@nodeledger/protocol'
import { AdmissionGate } from '../src/liveness/admission-gate.ts'

/** A job the test finishes when it says. */
function held(): { promise: Promise<string>; finish: (value: string) => void } {
  let finish!: (value: string) => void
  const promise = new Promise<string>((resolve) => {
    finish = resolve
  })
  return { promise, finish }
}

const forever = (): AbortSignal => new AbortController().signal

describe('AdmissionGate: back-pressure on a burst', () => {
  it('runs inflightMax at once, queues the next in order, refuses beyond the queue with a retry hint', async () => {
    const gate = new AdmissionGate({ inflightMax: 2, queuedMax: 2, retryAfterMs: 500, what: 'activations' })
    const jobs = Array.from({ length: 4 }, () => held())
    const started: number[] = []
    const runs = jobs.map((job, i) =>
      gate.run(forever(), async () => {
        started.push(i)
        return await job.promise
      }),
    )
    await Promise.resolve()
    expect(started).toEqual([0, 1])
    expect(gate.inflight).toBe(2)
    expect(gate.queued).toBe(2)
    const refused = await gate.run(forever(), async () => 'never').catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(ProtocolError)
    expect((refused as ProtocolError).code).toBe('UNAVAILABLE')
    expect((refused as ProtocolError).message).toContain('retry in 500 ms')
    expect(gate.refused).toBe(1)
    // A slot freed goes to the first waiter.
    jobs[1]!.finish('b')
    await runs[1]
    await new Promise((resolve) => setImmediate(resolve))
    expect(started).toEqual([0, 1, 2])
    for (const job of jobs) job.finish('x')
    await Promise.all(runs)
    expect(gate.inflight).toBe(0)
    expect(gate.queued).toBe(0)
  })

  it('a waiter whose signal aborts leaves the queue with TIMEOUT and takes no slot', async () => {
    const gate = new AdmissionGate({ inflightMax: 1, queuedMax: 4, retryAfterMs: 500, what: 'activations' })
    const first = held()
    const running = gate.run(forever(), () => first.promise)
    const controller = new AbortController()
    const waiting = gate.run(controller.signal, async () => 'never').catch((error: unknown) => error)
    await Promise.resolve()
    expect(gate.queued).toBe(1)
    controller.abort()
    const error = await waiting
    expect((error as ProtocolError).code).toBe('TIMEOUT')
    expect(gate.queued).toBe(0)
    first.finish('a')
    await running
    expect(gate.inflight).toBe(0)
  })

  it('a job that throws frees its slot', async () => {
    const gate = new AdmissionGate({ inflightMax: 1, queuedMax: 0, retryAfterMs: 500, what: 'activations' })
    await expect(gate.run(forever(), async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(await gate.run(forever(), async () => 'ok')).toBe('ok')
  })
})
