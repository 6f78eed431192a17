import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreateKey } from '@nodeledger/authority'
import { AuthorityClient } from '@nodeledger/client'
import { HistoryRecorder, ProcessCluster, checkHistory, waitUntil } from '@nodeledger/testkit'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'
import { nodeledger } from './cli-support.ts'

/**
 * Growing a cluster from 3 to 5 voters and shrinking it back to 3 with the CLI (member add,
 * member promote --wait, transfer-leader, member remove), while clients keep writing and reading
 * a few keys. The history every client saw is judged linearizable by the testkit's checker (the
 * registry's highest-seq-wins register), and every acknowledged write is in the final state. The
 * shrink removes two founders, one of them the leader, so the cluster ends on members 3, 4, 5.
 */

const KEYS = 5
const WRITERS = 4
const READERS = 2
/** Between a client's operations: enough load to interleave with every change, not enough to starve it. */
const THINK_MS = 5
/** After a failed operation, as in the chaos workload: a failing client must not flood the history with info ops. */
const PAUSE_AFTER_FAILURE_MS = 200
const REQUEST_TIMEOUT_MS = 2_000
const ATTEMPTS_MAX = 4

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('grow 3 → 5 and shrink 5 → 3 under write load, from the CLI', () => {
  let cluster: ProcessCluster
  let port: string
  const extra = new Map<number, { multiaddr: string; keyFile: string; dataDir: string }>()
  const clients: AuthorityClient[] = []

  beforeAll(async () => {
    cluster = ProcessCluster.create({ replicas: 3, snapshotEveryEntries: 500 })
    cluster.startAll()
    port = cluster.multiaddrs[0]!.split('/tcp/')[1]!.split('/')[0]!
    for (const id of [4, 5]) {
      const keyFile = join(cluster.dir, `replica-${id}`, 'peer.key')
      const peerId = peerIdFromPrivateKey(await loadOrCreateKey(keyFile)).toString()
      extra.set(id, {
        multiaddr: `/ip4/127.0.0.${10 + id}/tcp/${port}/p2p/${peerId}`,
        keyFile,
        dataDir: join(cluster.dir, `replica-${id}`, 'data'),
      })
    }
    const ok = await waitUntil(
      'a leader',
      async () => (await cli('status', '--json')).code === 0 || undefined,
      150_000,
      500,
    )
    expect(ok).toBe(true)
  }, 180_000)

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.stop()))
    await cluster?.stopAll()
  })

  const cli = (...args: string[]) =>
    nodeledger([...args, '--cluster', cluster.clusterPath, '--timeout-ms', '5000'], { timeoutMs: 300_000 })

  async function newClient(): Promise<AuthorityClient> {
    const client = new AuthorityClient({
      // The founders and the members to come: after the shrink, two founders are gone.
      bootstrap: [...cluster.multiaddrs, ...[...extra.values()].map((member) => member.multiaddr)],
      privateKey: await loadOrCreateKey(cluster.file.operators[0]!.keyFile),
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      attemptsMax: ATTEMPTS_MAX,
    })
    await client.start()
    clients.push(client)
    return client
  }

  it('keeps the history linearizable and every acknowledged write', async () => {
    const keys = Array.from({ length: KEYS }, (_, i) => peerIdFromSeed(7_000 + i))
    const history = new HistoryRecorder()
    const acknowledged = new Map<string, number>()
    let seq = 0
    let running = true
    const counts = { ok: 0, info: 0, fail: 0 }

    const loop = async (client: AuthorityClient, writes: boolean): Promise<void> => {
      let process = history.newProcess()
      while (running) {
        const key = keys[Math.floor(Math.random() * keys.length)]!
        let failed = false
        if (writes) {
          const value = { seq: ++seq, value: `w${seq}` }
          history.invoke(process, 'write', key, value)
          try {
            await client.submit({ originPeerId: key, seq: value.seq, fields: { version: value.value } })
            history.ok(process)
            counts.ok++
            acknowledged.set(key, Math.max(acknowledged.get(key) ?? 0, value.seq))
          } catch {
            // Unknown outcome (a timeout may still apply; STALE after a retry): info, and a new process.
            history.info(process)
            counts.info++
            process = history.newProcess()
            failed = true
          }
        } else {
          history.invoke(process, 'read', key)
          try {
            const { record } = await client.get(key, { consistency: 'linearizable' })
            history.ok(process, record === null ? null : { seq: record.originSeq, value: record.version })
            counts.ok++
          } catch {
            history.fail(process)
            counts.fail++
            failed = true
          }
        }
        await sleep(failed ? PAUSE_AFTER_FAILURE_MS : THINK_MS)
      }
    }

    const readers = await Promise.all(Array.from({ length: READERS }, () => newClient()))
    const writers = await Promise.all(Array.from({ length: WRITERS }, () => newClient()))
    const loops = [...writers.map((client) => loop(client, true)), ...readers.map((client) => loop(client, false))]

    const expectCli = async (...args: string[]): Promise<string> => {
      const result = await cli(...args)
      expect(result.code, `nodeledger ${args.join(' ')}: ${result.stderr}`).toBe(0)
      return result.stdout
    }
    // Under this load a status round may time out (exit 5): ask again, as an operator would.
    const voters = (): Promise<number[]> =>
      waitUntil(
        'the membership',
        async () => {
          const result = await cli('member', 'list', '--json')
          if (result.code !== 0) throw new Error(result.stderr)
          return (JSON.parse(result.stdout) as { members: Array<{ id: number; voter: boolean }> }).members
            .filter((member) => member.voter)
            .map((member) => member.id)
            .sort()
        },
        60_000,
        500,
      )
    const leaderId = (): Promise<number> =>
      waitUntil(
        'a leader',
        async () =>
          (JSON.parse((await cli('status', '--json')).stdout) as { leader: number | null }).leader ?? undefined,
        60_000,
        500,
      )

    try {
      await sleep(2_000)
      // Grow: each new member added as a learner, started empty, promoted once caught up.
      for (const [id, member] of extra) {
        await expectCli('member', 'add', '--id', String(id), '--multiaddr', member.multiaddr, '--key', member.keyFile)
        cluster.start(id, { self: member })
        await expectCli('member', 'promote', String(id), '--wait', '--wait-timeout-s', '240')
      }
      expect(await voters()).toEqual([1, 2, 3, 4, 5])
      await sleep(2_000)
      // Shrink: two founders go, the leader among them if it is one (it hands over first).
      for (const id of [1, 2]) {
        if ((await leaderId()) === id) await expectCli('transfer-leader', '--to', '5')
        await expectCli('member', 'remove', String(id))
        await cluster.kill(id)
      }
      expect(await voters()).toEqual([3, 4, 5])
      await sleep(2_000)
    } finally {
      running = false
      await Promise.all(loops)
    }

    // Final reads, patient: they decide whether an acknowledged write was lost.
    const reader = await newClient()
    const final = new Map<string, number>()
    for (const key of keys) {
      const process = history.newProcess()
      history.invoke(process, 'read', key)
      const { record } = await reader.get(key, { consistency: 'linearizable' })
      history.ok(process, record === null ? null : { seq: record.originSeq, value: record.version })
      final.set(key, record?.originSeq ?? 0)
    }
    const lost = [...acknowledged].filter(([key, acked]) => (final.get(key) ?? 0) < acked)
    expect(lost, 'acknowledged writes missing from the final state').toEqual([])
    expect(counts.ok).toBeGreaterThan(100)
    const verdict = checkHistory(history.events)
    console.log(
      `grow-shrink: ${verdict.operations} operations on ${verdict.keys} keys (ok ${counts.ok}, info ${counts.info}, fail ${counts.fail}), ${acknowledged.size} keys with acknowledged writes, verdict ${verdict.valid}`,
    )
    expect(verdict.failures, JSON.stringify(verdict.failures)).toEqual([])
    expect(verdict.valid).toBe(true)
    // The three members left agree on the registry.
    const statuses = await waitUntil(
      'members 3, 4, 5 to apply the same index',
      async () => {
        const all = await Promise.all(
          [cluster.multiaddrOf(3), extra.get(4)!.multiaddr, extra.get(5)!.multiaddr].map((address) =>
            reader.status(address),
          ),
        )
        return new Set(all.map((status) => status.applied)).size === 1 ? all : undefined
      },
      60_000,
      200,
    )
    expect(new Set(statuses.map((status) => status.registryDigest)).size).toBe(1)
  })
})
