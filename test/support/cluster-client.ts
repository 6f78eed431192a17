import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { AuthorityClient } from '@nodeledger/client'
import { loadOrCreateKey } from '@nodeledger/authority'
import type { StatusResult } from '@nodeledger/protocol'
import type { Delta } from '@nodeledger/registry'
import { type ProcessCluster, waitUntil } from '@nodeledger/testkit'

/** Shared helpers of the cross-package tests that drive real replica processes. */

export async function makePeerIds(count: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) ids.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
  return ids
}

/** A client holding the cluster file's operator key (it may write any origin's record). */
export async function operatorClient(cluster: ProcessCluster, requestTimeoutMs = 3000): Promise<AuthorityClient> {
  const privateKey = await loadOrCreateKey(cluster.file.operators[0]!.keyFile)
  // Patient: these tests overload a 2-core machine on purpose, and judge durability, not the retry budget.
  const client = new AuthorityClient({ bootstrap: cluster.multiaddrs, privateKey, requestTimeoutMs, attemptsMax: 40 })
  await client.start()
  return client
}

export async function statuses(client: AuthorityClient): Promise<Array<StatusResult | undefined>> {
  return (await client.statusAll()).map((entry) => entry.status)
}

/** A replica that says it leads. Patient: a fresh cluster on a loaded 2-core machine took 13–15 s to elect (a CI flake at 20 s). */
export async function leaderOf(client: AuthorityClient, timeoutMs = 120_000): Promise<StatusResult> {
  return await waitUntil(
    'a leader',
    async () => (await statuses(client)).find((status) => status?.role === 'leader'),
    timeoutMs,
  )
}

/**
 * Wait until every replica listed has applied the leader's commit; returns their statuses. On a
 * timeout the error says where each replica stood (role, term, commit, applied, snapshot) or why
 * it did not answer: a test that fails here must say which replica was behind.
 */
export async function converged(client: AuthorityClient, timeoutMs = 30_000): Promise<StatusResult[]> {
  try {
    return await waitUntil(
      'every replica to apply the leader commit',
      async () => {
        const all = await statuses(client)
        const leader = all.find((status) => status?.role === 'leader')
        if (leader === undefined || all.some((status) => status === undefined || status.applied < leader.commit))
          return undefined
        return all as StatusResult[]
      },
      timeoutMs,
    )
  } catch (error) {
    const where = (await client.statusAll()).map((entry, i) =>
      entry.status === undefined
        ? `#${i + 1} no answer (${entry.error?.code ?? '?'}: ${entry.error?.message ?? ''})`
        : `#${i + 1} id ${entry.status.id} ${entry.status.role} term ${entry.status.term} commit ${entry.status.commit} applied ${entry.status.applied} snapshot ${entry.status.snapshotIndex}`,
    )
    throw new Error(`${(error as Error).message}; replicas: ${where.join('; ')}`)
  }
}

/**
 * Submit `count` deltas with `concurrency` in flight. Each lane owns the peers lane,
 * lane + concurrency, ... so one origin's seqs go out in order. Returns the acknowledged deltas.
 */
export async function submitMany(
  client: AuthorityClient,
  peerIds: readonly string[],
  seqs: Map<string, number>,
  count: number,
  concurrency: number,
  onError?: (error: unknown) => void,
): Promise<Delta[]> {
  const acknowledged: Delta[] = []
  let issued = 0
  const peersPerLane = Math.max(1, Math.floor(peerIds.length / concurrency))
  const worker = async (lane: number): Promise<void> => {
    for (let turn = 0; issued < count; turn++) {
      issued++
      const peerId = peerIds[(lane + concurrency * (turn % peersPerLane)) % peerIds.length]!
      const seq = (seqs.get(peerId) ?? 0) + 1
      seqs.set(peerId, seq)
      const delta: Delta = { originPeerId: peerId, seq, fields: { returnedItems: seq, version: `v${seq}` } }
      try {
        await client.submit(delta)
        acknowledged.push(delta)
      } catch (error) {
        if (onError === undefined) throw error
        onError(error)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, lane) => worker(lane)))
  return acknowledged
}

/** Every acknowledged delta is in the registry: its origin's applied seq is at least the acknowledged one. */
export async function expectAllPresent(
  client: AuthorityClient,
  acknowledged: readonly Delta[],
): Promise<{ checked: number; missing: string[] }> {
  const latest = new Map<string, number>()
  for (const delta of acknowledged)
    latest.set(delta.originPeerId, Math.max(latest.get(delta.originPeerId) ?? 0, delta.seq))
  const missing: string[] = []
  for (const [peerId, seq] of latest) {
    const { record } = await client.get(peerId, { consistency: 'linearizable' })
    if ((record?.originSeq ?? 0) < seq) missing.push(`${peerId} seq ${seq} (registry has ${record?.originSeq ?? 0})`)
  }
  return { checked: latest.size, missing }
}
