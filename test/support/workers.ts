import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { ProcessCluster } from '@nodeledger/testkit'
import { NodeEventTracker } from '@nodeledger/worker'
import type { NodeEventTrackerOptions } from '@nodeledger/worker'
import { pino } from 'pino'

/** Shared helpers of the worker integration tests: a cluster with short leases, and workers. */

export function clusterWithLeases(
  replicas: 3 | 5,
  liveness: { ttlMs: number; disconnectGraceMs: number },
): ProcessCluster {
  const cluster = ProcessCluster.create({ replicas })
  // Replicas read the file when they start: set the lease before startAll.
  const file = JSON.parse(readFileSync(cluster.clusterPath, 'utf8')) as Record<string, unknown>
  writeFileSync(cluster.clusterPath, JSON.stringify({ ...file, liveness }, null, 2))
  return cluster
}

export interface WorkerSlot {
  readonly dataDir: string
  readonly privateKey: PrivateKey
  tracker: NodeEventTracker | undefined
}

/** Identities and data dirs for `count` workers; start them with `startWorker`. */
export async function workerSlots(count: number): Promise<{ root: string; slots: WorkerSlot[] }> {
  const root = mkdtempSync(join(tmpdir(), 'nodeledger-workers-'))
  const slots: WorkerSlot[] = []
  for (let i = 0; i < count; i++)
    slots.push({ dataDir: join(root, `worker-${i}`), privateKey: await generateKeyPair('Ed25519'), tracker: undefined })
  return { root, slots }
}

export async function startWorker(
  slot: WorkerSlot,
  bootstrap: readonly string[],
  options: Partial<NodeEventTrackerOptions> = {},
): Promise<NodeEventTracker> {
  slot.tracker = await NodeEventTracker.start({
    dataDir: slot.dataDir,
    bootstrap,
    privateKey: slot.privateKey,
    heartbeatIntervalMs: 500,
    antiEntropyIntervalMs: 1_000,
    logger: pino({ level: process.env.NODELEDGER_TEST_LOG ?? 'silent' }),
    ...options,
  })
  return slot.tracker
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
