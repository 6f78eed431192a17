import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { DEFAULT_LIVENESS } from '@nodeledger/authority'
import { WorkerConfigError, trackerDefaults } from '@nodeledger/worker'
import { checkWorkerHeartbeat, clusterOf } from '../src/commands/worker.ts'
import { EXIT, exitCodeFor } from '../src/exit-codes.ts'

const PEER = '12D3KooWEDbQ1g11eY4gWPMK2Di2iRyrZDBc18sa9FSzEPZkYFdo'
const OTHER = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'
const REPLICA = `/ip4/127.0.0.11/tcp/7001/p2p/${PEER}`

const root = mkdtempSync(join(tmpdir(), 'nodeledger-worker-options-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

function clusterFile(name: string, liveness?: { ttlMs: number }): string {
  const path = join(root, name)
  writeFileSync(
    path,
    JSON.stringify({
      version: 1,
      clusterId: 'c-1',
      replicas: [{ id: 1, multiaddr: REPLICA, dataDir: 'r1', keyFile: 'r1.key' }],
      operators: [],
      timing: { tickIntervalMs: 10, heartbeatTicks: 5, electionTimeoutTicks: 30 },
      snapshotEveryEntries: 10_000,
      ...(liveness === undefined ? {} : { liveness }),
    }),
  )
  return path
}

function refusal(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(WorkerConfigError)
    expect(exitCodeFor(error)).toBe(EXIT.BAD_INPUT)
    return (error as Error).message
  }
  throw new Error('expected a refusal')
}

describe('nodeledger worker --heartbeat-ms against the cluster lease TTL (issue 12)', () => {
  it('the worker default TTL is the authority default', () => {
    expect(trackerDefaults.LEASE_TTL_MS_DEFAULT).toBe(DEFAULT_LIVENESS.ttlMs)
  })

  it('takes the TTL from the cluster file and refuses an interval at or above it (exit 2), naming both and the source', async () => {
    const file = clusterFile('short.json', { ttlMs: 4_000 })
    const cluster = await clusterOf({ bootstrap: [], cluster: file })
    expect(cluster).toMatchObject({ bootstrap: [REPLICA], leaseTtlMs: 4_000 })
    const message = refusal(() => checkWorkerHeartbeat(4_000, cluster))
    expect(message).toContain('--heartbeat-ms 4000')
    expect(message).toContain('lease TTL 4000 ms')
    expect(message).toContain(`liveness.ttlMs of ${file}`)
    expect(() => checkWorkerHeartbeat(3_000, cluster)).not.toThrow() // warned by the tracker, not refused
    expect(() => checkWorkerHeartbeat(1_000, cluster)).not.toThrow()
    // The default interval (3 s) against a 2 s TTL: refused, though --heartbeat-ms was not given.
    const tight = await clusterOf({ bootstrap: [], cluster: clusterFile('tight.json', { ttlMs: 2_000 }) })
    expect(refusal(() => checkWorkerHeartbeat(undefined, tight))).toContain('--heartbeat-ms 3000')
  })

  it('a file without liveness has the default TTL: 10 s', async () => {
    const cluster = await clusterOf({ bootstrap: [], cluster: clusterFile('plain.json') })
    expect(cluster.leaseTtlMs).toBe(10_000)
    refusal(() => checkWorkerHeartbeat(10_000, cluster))
  })

  it('with --bootstrap: the --cluster file when it names a bootstrap replica, else the default, said so', async () => {
    const file = clusterFile('bootstrap.json', { ttlMs: 60_000 })
    const named = await clusterOf({ bootstrap: [REPLICA], cluster: file })
    expect(named).toMatchObject({ bootstrap: [REPLICA], leaseTtlMs: 60_000 })
    expect(() => checkWorkerHeartbeat(20_000, named)).not.toThrow()
    const elsewhere = await clusterOf({ bootstrap: [`/ip4/10.0.0.1/tcp/7001/p2p/${OTHER}`], cluster: file })
    expect(elsewhere.leaseTtlMs).toBe(DEFAULT_LIVENESS.ttlMs)
    const missing = await clusterOf({ bootstrap: [REPLICA], cluster: join(root, 'none.json') })
    expect(missing.leaseTtlMs).toBe(DEFAULT_LIVENESS.ttlMs)
    expect(refusal(() => checkWorkerHeartbeat(20_000, missing))).toContain('the default liveness.ttlMs')
  })
})
