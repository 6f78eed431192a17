import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import { ProcessCluster, faketimeEnv, waitUntil } from '@nodeledger/testkit'
import { converged, leaderOf, makePeerIds, operatorClient, submitMany } from './support/cluster-client.ts'
import { scrape } from './support/metrics.ts'

/**
 * The walkthrough's frozen uptimes: a leader whose clock runs hours ahead stamps the log with its
 * clock, and the registry (which never lets time run backwards) clamps every later stamp to it.
 * Replica 3 runs 3 h ahead under libfaketime (Debian's `faketime`; .ci/run installs it) and is made
 * leader; its followers must see it, say it in their logs and metrics, and `nodeledger status`
 * must warn. Then a leader with a true clock takes over: its own stamps are clamped, and it says so.
 */
const CLI = join(dirname(fileURLToPath(import.meta.url)), '../packages/cli/src/main.ts')
const AHEAD_MS = 3 * 3_600_000
const SKEWED = 3

let cluster: ProcessCluster
let client: AuthorityClient
let peerIds: string[]
const seqs = new Map<string, number>()

beforeAll(async () => {
  cluster = ProcessCluster.create({ replicas: 3, http: true })
  cluster.start(1)
  cluster.start(2)
  cluster.start(SKEWED, { env: faketimeEnv(AHEAD_MS) })
  client = await operatorClient(cluster)
  peerIds = await makePeerIds(8)
  await leaderOf(client)
}, 60_000)

afterAll(async () => {
  await client?.stop()
  await cluster?.stopAll()
})

/** Writes one delta at a time until `done` holds: each apply gives the replicas a fresh stamp to compare. */
async function writeUntil(what: string, done: () => Promise<boolean>): Promise<void> {
  await waitUntil(
    what,
    async () => {
      await submitMany(client, peerIds, seqs, 1, 1)
      return await done()
    },
    30_000,
    250,
  )
}

describe("a leader's clock hours ahead (issue 12, from the walkthrough)", () => {
  it('its followers see its stamps ahead of their clocks: nodeledger_clock_ahead_seconds, a warning in their logs, and in status', async () => {
    const leader = await leaderOf(client)
    if (leader.id !== SKEWED) await client.transferLeader(SKEWED)
    await waitUntil(`replica ${SKEWED} to lead`, async () => (await leaderOf(client)).id === SKEWED)
    await writeUntil('replica 1 to warn', async () => {
      return ((await scrape(cluster.httpUrl(1))).value('nodeledger_clock_ahead_warnings_total') ?? 0) >= 1
    })
    await converged(client)
    const follower = await scrape(cluster.httpUrl(1))
    // Ahead by the skew, less the time since the newest stamp was taken (and faketime's rounding).
    expect(follower.value('nodeledger_clock_ahead_seconds')).toBeGreaterThan(AHEAD_MS / 1000 - 120)
    expect(follower.value('nodeledger_clock_ahead_seconds')).toBeLessThan(AHEAD_MS / 1000 + 120)
    // The leader cannot see its own clock run ahead: its stamps are its clock.
    expect((await scrape(cluster.httpUrl(SKEWED))).value('nodeledger_clock_ahead_seconds')).toBeLessThan(60)
    expect(cluster.logText(1)).toMatch(/the leader's stamps run ahead of this replica's clock/)

    const status = spawnSync(process.execPath, [CLI, 'status', '--cluster', cluster.clusterPath], {
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(status.stdout).toMatch(/warning: the registry's clock \(the leader's stamps\) runs (2h59m|3h0m) ahead/)
  })

  it('a leader with a true clock that takes over finds its own stamps clamped, and says so in its log', async () => {
    await client.transferLeader(1)
    await waitUntil('replica 1 to lead', async () => (await leaderOf(client)).id === 1)
    await writeUntil("replica 1's warning as leader", async () =>
      /this leader's stamps are clamped to it/.test(cluster.logText(1)),
    )
    const leader = await scrape(cluster.httpUrl(1))
    expect(leader.value('nodeledger_raft_role', { role: 'leader' })).toBe(1)
    expect(leader.value('nodeledger_clock_ahead_seconds')).toBeGreaterThan(AHEAD_MS / 1000 - 120)
  })
})
