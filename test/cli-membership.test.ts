import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import { ProcessCluster } from '@nodeledger/testkit'
import { killStartedBeside, nodeledger } from './cli-support.ts'
import { leaderOf, makePeerIds, operatorClient, submitMany } from './support/cluster-client.ts'

/**
 * `nodeledger member …` and `transfer-leader`, the real CLI spawned against replica processes:
 * the membership table, every refusal with its own exit code, a leadership transfer, and the
 * lost-disk runbook (`member replace --start`) end to end, re-run safely.
 */
describe('nodeledger member and transfer-leader', () => {
  let cluster: ProcessCluster
  let client: AuthorityClient
  let file: string
  let port: string
  const scratch = mkdtempSync(join(tmpdir(), 'nodeledger-cli-members-'))

  beforeAll(async () => {
    cluster = ProcessCluster.create({ replicas: 3, snapshotEveryEntries: 500 })
    cluster.startAll()
    file = cluster.clusterPath
    port = cluster.multiaddrs[0]!.split('/tcp/')[1]!.split('/')[0]!
    client = await operatorClient(cluster, 5000)
    // Patient: replicas that start on a loaded 2-core machine take a while to import and elect.
    await leaderOf(client, 150_000)
  }, 180_000)

  afterAll(async () => {
    await client?.stop()
    if (cluster !== undefined) killStartedBeside(cluster.dir)
    await cluster?.stopAll()
  })

  const run = (...args: string[]) => nodeledger([...args, '--cluster', file], { timeoutMs: 120_000 })

  it('member list: every member of record with voter, started, match and lag (table and --json)', async () => {
    const table = await run('member', 'list')
    expect(table.code, table.stderr).toBe(0)
    expect(table.stdout).toMatch(/^ID\s+PEER\s+ADDRESS\s+MEMBER\s+STARTED\s+ROLE\s+MATCH\s+LAG/m)
    expect(table.stdout.match(/ voter /g)).toHaveLength(3)
    const json = await run('member', 'list', '--json')
    expect(json.code).toBe(0)
    const listed = JSON.parse(json.stdout) as {
      members: Array<{ id: number; peerId: string; voter: boolean; lag: number }>
    }
    expect(listed.members.map((member) => member.id)).toEqual([1, 2, 3])
    for (const member of listed.members) {
      expect(member.peerId).toBe(
        cluster.file.replicas.find((replica) => replica.id === member.id)!.multiaddr.split('/p2p/')[1],
      )
      expect(member.voter).toBe(true)
      expect(typeof member.lag).toBe('number')
    }
  })

  it('refuses with CONFLICT 11, NOT_READY 12, REFUSED 13 and NOT_FOUND 3, each saying what to do', async () => {
    const leader = await leaderOf(client, 60_000)
    const follower = leader.members.find((member) => member.id !== leader.id)!
    const key5 = join(scratch, 'five.key')
    const five = `/ip4/127.0.0.15/tcp/${port}`
    // An id in use.
    const inUse = await run('member', 'add', '--id', String(follower.id), '--multiaddr', five, '--key', key5)
    expect(inUse.code, inUse.stderr).toBe(11)
    expect(inUse.stderr).toContain('CONFLICT')
    // Promoting a voter.
    const voter = await run('member', 'promote', String(follower.id))
    expect(voter.code, voter.stderr).toBe(11)
    // A learner that never started is not caught up once the log has moved on.
    const added = await run('member', 'add', '--id', '5', '--multiaddr', five, '--key', key5)
    expect(added.code, added.stderr).toBe(0)
    expect(added.stdout).toContain('added as a learner')
    expect(added.stdout).toContain(`nodeledger authority --cluster ${file} --id 5 --multiaddr ${five}/p2p/`)
    await submitMany(client, await makePeerIds(32), new Map(), 1_100, 16)
    const notReady = await run('member', 'promote', '5')
    expect(notReady.code, notReady.stderr).toBe(12)
    expect(notReady.stderr).toMatch(/NOT_READY: replica 5 is not caught up: .*pass --wait/)
    const removed = await run('member', 'remove', '5')
    expect(removed.code, removed.stderr).toBe(0)
    // Its id is retired for good.
    const retired = await run('member', 'add', '--id', '5', '--multiaddr', five, '--key', join(scratch, 'other.key'))
    expect(retired.code, retired.stderr).toBe(11)
    // The leader cannot remove itself.
    const self = await run('member', 'remove', String(leader.id))
    expect(self.code, self.stderr).toBe(13)
    expect(self.stderr).toContain('transfer-leader --to')
    // No such member.
    expect((await run('member', 'remove', '99')).code).toBe(3)
    expect((await run('transfer-leader', '--to', '99')).code).toBe(3)
    // Bad input is 2, whatever the command.
    expect((await run('member', 'promote', 'x')).code).toBe(2)
    expect((await run('member', 'add', '--id', '7', '--multiaddr', 'nonsense', '--key', key5)).code).toBe(2)
  })

  it('transfer-leader --to N: N leads once it answers', async () => {
    const before = await leaderOf(client, 60_000)
    const target = before.members.find((member) => member.id !== before.id && member.voter)!
    const moved = await run('transfer-leader', '--to', String(target.id))
    expect(moved.code, moved.stderr).toBe(0)
    expect(moved.stdout).toContain(`replica ${target.id} leads now (was replica ${before.id}`)
    expect((await leaderOf(client, 60_000)).id).toBe(target.id)
    const again = await run('transfer-leader', '--to', String(target.id))
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('leads already')
  })

  it('member replace --start: add, start, catch up, promote, remove the old one; a re-run changes nothing', async () => {
    const leader = await leaderOf(client, 60_000)
    const victim = leader.members.find((member) => member.id !== leader.id)!.id
    const key = join(scratch, 'replacement', 'peer.key')
    const data = join(scratch, 'replacement', 'data')
    const args = ['member', 'replace', String(victim), '--multiaddr', `/ip4/127.0.0.16/tcp/${port}`, '--key', key]
    const replaced = await run(...args, '--data', data, '--start')
    expect(replaced.code, replaced.stderr).toBe(0)
    for (const step of [
      '[1/7] key',
      '[2/7] id',
      '[3/7] add as learner',
      '[4/7] start',
      '[5/7] catch up',
      '[6/7] promote',
      '[7/7] remove the old member',
    ])
      expect(replaced.stderr).toContain(step)
    expect(replaced.stderr).toContain('generated')
    const list = JSON.parse((await run('member', 'list', '--json')).stdout) as {
      members: Array<{ id: number; voter: boolean; multiaddr: string }>
    }
    expect(list.members.map((member) => member.id)).not.toContain(victim)
    const added = list.members.find((member) => member.multiaddr.startsWith('/ip4/127.0.0.16/'))!
    expect(added.voter).toBe(true)
    // Never an id that was a member: not a founder's, not the retired 5.
    expect([1, 2, 3, 5]).not.toContain(added.id)
    expect(readFileSync(join(cluster.dir, 'logs', `replica-${added.id}.log`), 'utf8')).toContain('replica started')
    await cluster.kill(victim)
    // Interrupted or not, the same command again finds everything done.
    const rerun = await run(...args, '--data', data, '--start')
    expect(rerun.code, rerun.stderr).toBe(0)
    expect(rerun.stderr).toContain('resuming')
    expect(rerun.stderr).toContain(`replica ${victim} is no longer a member`)
    // The new membership serves writes.
    expect(await submitMany(client, await makePeerIds(8), new Map(), 50, 4)).toHaveLength(50)
  })
})
