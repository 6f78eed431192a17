import { describe, expect, it } from 'vitest'
import { parsePromText } from '@nodeledger/metrics'
import type { Readiness } from '@nodeledger/metrics'
import { WorkerMetrics } from '../src/metrics/worker-metrics.ts'
import type { TrackerView } from '../src/metrics/worker-metrics.ts'
import { startWorkerHttp } from '../src/metrics/worker-http.ts'

function view(peerId: string, readiness: Readiness, figures: Partial<TrackerView> = {}): TrackerView {
  return {
    peerId,
    size: 0,
    appliedIndex: 0,
    leaderIndex: 0,
    gossipPeers: () => 0,
    readiness: () => readiness,
    ...figures,
  }
}

describe('WorkerMetrics: one registry per process, one worker label per tracker', () => {
  it('renders each tracker under its label, with its peer id in nodeledger_worker_info', async () => {
    const metrics = new WorkerMetrics()
    const one = metrics.tracker('1')
    const two = metrics.tracker('2')
    expect(metrics.tracker('1')).toBe(one)
    one.source = view('peer-a', { ready: true }, { size: 20, appliedIndex: 90, leaderIndex: 100 })
    two.source = view('peer-b', { ready: false, reason: 'catching up with the log' })
    one.gossipAccepted += 3
    one.gossipRejected += 1
    two.gossipPublished += 2
    two.watchReconnects += 1
    const text = parsePromText(await metrics.registry.metrics())
    expect(text.value('nodeledger_worker_info', { worker: '1', peer_id: 'peer-a' })).toBe(1)
    expect(text.value('nodeledger_worker_records', { worker: '1' })).toBe(20)
    expect(text.value('nodeledger_worker_applied_lag_entries', { worker: '1' })).toBe(10)
    expect(text.value('nodeledger_worker_ready', { worker: '1' })).toBe(1)
    expect(text.value('nodeledger_worker_ready', { worker: '2' })).toBe(0)
    expect(text.value('nodeledger_worker_gossip_received_total', { worker: '1', result: 'accepted' })).toBe(3)
    expect(text.value('nodeledger_worker_gossip_received_total', { worker: '1', result: 'rejected' })).toBe(1)
    expect(text.value('nodeledger_worker_gossip_published_total', { worker: '2' })).toBe(2)
    expect(text.value('nodeledger_worker_watch_reconnects_total', { worker: '2' })).toBe(1)
  })

  it('the process is ready when every expected tracker is; /ready says which is not', async () => {
    const metrics = new WorkerMetrics()
    expect(metrics.readiness(2)).toMatchObject({ ready: false, reason: '0 of 2 workers started' })
    const one = metrics.tracker('1')
    one.source = view('peer-a', { ready: true })
    expect(metrics.readiness(2)).toMatchObject({ ready: false, reason: '1 of 2 workers started', workers: 1 })
    const two = metrics.tracker('2')
    two.source = view('peer-b', { ready: false, reason: 'no leader acknowledged a heartbeat for 9500 ms' })
    const http = await startWorkerHttp({ metrics, address: { host: '127.0.0.1', port: 0 }, expected: 2 })
    try {
      const base = `http://127.0.0.1:${http.address.port}`
      let probe = await fetch(`${base}/ready`)
      expect(probe.status).toBe(503)
      expect(await probe.json()).toMatchObject({ reason: 'worker 2: no leader acknowledged a heartbeat for 9500 ms' })
      two.source = view('peer-b', { ready: true })
      probe = await fetch(`${base}/ready`)
      expect(probe.status).toBe(200)
      expect(await probe.json()).toEqual({ ready: true, workers: 2 })
      expect((await fetch(`${base}/health`)).status).toBe(200)
    } finally {
      await http.close()
    }
  })
})
