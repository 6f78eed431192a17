import { rmSync, readFileSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import { leaderOf, makePeerIds, operatorClient, statuses } from './support/cluster-client.ts'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '../packages/cli/src/main.ts')
/** The CLI's exit code for a replica that refuses to start as it is (LOST_STATE, CLUSTER_EXISTS, …). */
const EXIT_REFUSED_START = 7
const EXIT_BAD_INPUT = 2

/**
 * Issue 10, found in an operator's walkthrough: a replica that lost its disk broke the cluster.
 * Each sequence is the operator's, with the project's own commands (processes, as cluster.sh runs them).
 */
describe('a replica that lost its disk never rejoins as the member it was', () => {
  let cluster: ProcessCluster
  let client: AuthorityClient

  beforeAll(async () => {
    cluster = ProcessCluster.create({ replicas: 3 })
    cluster.startAll()
    client = await operatorClient(cluster, 3000)
    await leaderOf(client)
    // Every founder has run: the leader records it (members' `started`).
    await waitUntil(
      'every founder marked started',
      async () =>
        (await statuses(client)).every((status) => status?.members.every((member) => member.started) === true),
      20_000,
    )
  })

  afterAll(async () => {
    await client?.stop()
    await cluster?.stopAll()
  })

  it('stop 3; write (acknowledged by 1 and 2); stop 1 and 2; wipe 2; start 2 and 3: no leader without the write', async () => {
    const [peerId] = await makePeerIds(1)
    await cluster.kill(3)
    const written = await client.submit({ originPeerId: peerId!, seq: 1, fields: { version: 'acknowledged-1-and-2' } })
    await cluster.kill(1)
    await cluster.kill(2)
    rmSync(cluster.file.replicas.find((replica) => replica.id === 2)!.dataDir, { recursive: true, force: true })
    cluster.start(3)
    cluster.start(2)
    // Replica 2 asks 3, which knows 2 has run: it refuses to start, with its own exit code.
    const exit = await cluster.waitExit(2, 30_000)
    expect(exit).toBe(EXIT_REFUSED_START)
    expect(cluster.logText(2)).toContain('LOST_STATE')
    // Replica 3 alone elects nobody.
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    expect((await statuses(client)).some((status) => status?.role === 'leader')).toBe(false)
    // Replica 1 returns: 1 and 3 elect a leader, and the acknowledged write is there.
    cluster.start(1)
    await leaderOf(client, 30_000)
    const read = await client.get(peerId!, { consistency: 'linearizable' })
    expect(read.record?.version).toBe('acknowledged-1-and-2')
    expect(read.index).toBeGreaterThanOrEqual(written.index)
    const all = (await statuses(client)).filter((status) => status !== undefined)
    expect(all.map((status) => status!.id).sort()).toEqual([1, 3])
    // The two that hold the log agree on the registry.
    const caughtUp = await waitUntil(
      'replicas 1 and 3 to apply the same index',
      async () => {
        const live = (await statuses(client)).filter((status) => status !== undefined)
        return live.length === 2 && live[0]!.applied === live[1]!.applied ? live : undefined
      },
      20_000,
    )
    expect(new Set(caughtUp.map((status) => status!.registryDigest)).size).toBe(1)
  })

  it('--initial-cluster-state new does not re-create a wiped founder either', async () => {
    rmSync(cluster.file.replicas.find((replica) => replica.id === 2)!.dataDir, { recursive: true, force: true })
    cluster.start(2, { initialClusterState: 'new' })
    expect(await cluster.waitExit(2, 30_000)).toBe(EXIT_REFUSED_START)
    expect(cluster.logText(2)).toMatch(/LOST_STATE/)
  })

  it('a cluster file written again (cluster init --force) is refused by the data dirs and by the peers', async () => {
    const original = readFileSync(cluster.clusterPath, 'utf8')
    const init = spawnSync(
      process.execPath,
      [CLI, 'cluster', 'init', '--replicas', '5', '--dir', cluster.dir, '--port', portOf(cluster), '--force', '--json'],
      { encoding: 'utf8' },
    )
    expect(init.status).toBe(0)
    try {
      // A running member restarted with the new file: its data dir belongs to the old cluster.
      await cluster.kill(3)
      cluster.start(3)
      expect(await cluster.waitExit(3, 20_000)).toBe(EXIT_BAD_INPUT)
      expect(cluster.logText(3)).toContain('INVALID_CLUSTER')
      // A new replica of the new file, asked to create the cluster: its peers belong to another one.
      cluster.start(5, { initialClusterState: 'new' })
      expect(await cluster.waitExit(5, 20_000)).toBe(EXIT_BAD_INPUT)
      expect(cluster.logText(5)).toContain('belongs to cluster')
    } finally {
      writeFileSync(cluster.clusterPath, original)
    }
    // With its own file back, replica 3 rejoins; the membership of record never changed.
    cluster.start(3)
    const leader = await leaderOf(client, 30_000)
    expect(leader.members.map((member) => member.id)).toEqual([1, 2, 3])
  })
})

function portOf(cluster: ProcessCluster): string {
  return cluster.multiaddrs[0]!.split('/tcp/')[1]!.split('/')[0]!
}
