import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadOrCreateKey } from '@nodeledger/authority'
import { AuthorityClient } from '@nodeledger/client'
import { waitUntil } from '@nodeledger/testkit'
import { BIN, nodeledger, spawnNodeledger } from './cli-support.ts'
import { makePeerIds } from './support/cluster-client.ts'

/**
 * What an operator's walkthrough found, each on a real cluster made by `cluster init --hosts` on
 * three loopback "hosts" (127.0.0.21-23): rows named by who answered (a wrong peer id in the file
 * is a MISMATCH, exit 14), status --replica, whole ids and numbers in --json, ls paging, watch
 * and status --watch ending 0 on Ctrl-C, --version, and the exit codes of operator mistakes
 * (LOCKED 8, ADDRESS_IN_USE 15, bad flags 2).
 */

interface InitJson {
  clusterFile: string
  replicas: Array<{ id: number; multiaddr: string }>
  operators: Array<{ peerId: string; keyFile: string }>
}

describe('nodeledger for an operator, on a cluster of three hosts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeledger-cli-operator-'))
  const port = 20000 + Math.floor(Math.random() * 20000)
  const children: ChildProcess[] = []
  let init: InitJson
  let file: string
  let client: AuthorityClient

  const start = (clusterFile: string, id: number, log: string): ChildProcess => {
    const child = spawn(
      process.execPath,
      [BIN, 'authority', '--cluster', clusterFile, '--id', String(id), '--initial-cluster-state', 'new'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const out = createWriteStream(log, { flags: 'a' })
    child.stdout!.pipe(out)
    child.stderr!.pipe(out)
    children.push(child)
    return child
  }
  const exitOf = (child: ChildProcess): Promise<number | null> =>
    child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', resolve))
  const run = (...args: string[]) => nodeledger([...args, '--cluster', file], { timeoutMs: 60_000 })

  beforeAll(async () => {
    const made = await nodeledger([
      'cluster',
      'init',
      '--hosts',
      '127.0.0.21,127.0.0.22,127.0.0.23',
      '--port',
      String(port),
      '--dir',
      dir,
      '--json',
    ])
    expect(made.code, made.stderr).toBe(0)
    init = JSON.parse(made.stdout) as InitJson
    file = init.clusterFile
    for (const replica of init.replicas) start(file, replica.id, join(dir, `replica-${replica.id}.log`))
    client = new AuthorityClient({
      bootstrap: init.replicas.map((replica) => replica.multiaddr),
      privateKey: await loadOrCreateKey(join(dir, init.operators[0]!.keyFile)),
      requestTimeoutMs: 5_000,
      attemptsMax: 40,
    })
    await client.start()
    // Patient: replicas that start on a loaded 2-core machine take a while to import and elect.
    await waitUntil('a leader', async () => (await run('status', '--json')).code === 0, 150_000, 250)
  }, 180_000)

  afterAll(async () => {
    await client?.stop()
    for (const child of children) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })

  it('cluster init --hosts puts each replica on its host and port, and they form a cluster', async () => {
    expect(init.replicas.map((replica) => replica.multiaddr.split('/p2p/')[0])).toEqual(
      [21, 22, 23].map((host) => `/ip4/127.0.0.${host}/tcp/${port}`),
    )
    const status = JSON.parse((await run('status', '--json')).stdout) as {
      leader: number
      replicas: Array<{ id: number; role: string; multiaddr: string }>
    }
    expect(status.replicas.filter((row) => row.role === 'leader')).toHaveLength(1)
    expect(status.replicas.map((row) => row.multiaddr)).toEqual(init.replicas.map((replica) => replica.multiaddr))
  })

  it('status names each row by who answered: a wrong peer id in the file is a MISMATCH (exit 14)', async () => {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as { replicas: Array<{ multiaddr: string }> }
    const peer3 = raw.replicas[2]!.multiaddr.split('/p2p/')[1]!
    raw.replicas[1]!.multiaddr = `${raw.replicas[1]!.multiaddr.split('/p2p/')[0]}/p2p/${peer3}`
    const wrong = join(dir, 'wrong-peer.json')
    writeFileSync(wrong, JSON.stringify(raw))
    const json = await nodeledger(['status', '--json', '--cluster', wrong])
    expect(json.code, json.stderr).toBe(14)
    const rows = (JSON.parse(json.stdout) as { replicas: Array<{ id: number; fileId: number; mismatch?: string }> })
      .replicas
    const entry2 = rows.find((row) => row.fileId === 2)!
    // Replica 3 answered for the file's entry 2: its row says 3, and why the file is wrong.
    expect(entry2.id).toBe(3)
    expect(entry2.mismatch).toContain("replica 2's entry names the wrong peer id")
    const table = await nodeledger(['status', '--cluster', wrong])
    expect(table.code).toBe(14)
    expect(table.stdout).toContain('MISMATCH (file entry 2)')
    expect(table.stderr).toContain('nodeledger: MISMATCH: cluster file entry 2')
  })

  it('status --replica N: version, members, digest, lag, clusterId; an unknown N is exit 3', async () => {
    const detail = await run('status', '--replica', '2')
    expect(detail.code, detail.stderr).toBe(0)
    for (const field of ['replica', 'cluster', 'version', 'role', 'log', 'lag', 'registry', 'members of record'])
      expect(detail.stdout).toContain(field)
    expect(detail.stdout).toContain(JSON.parse(readFileSync(file, 'utf8')).clusterId)
    expect(detail.stdout).toMatch(/digest [0-9a-f]{64}/)
    expect((await run('status', '--replica', '9')).code).toBe(3)
  })

  it('ls pages: says more follow and how (--after), --after goes on, --all reads everything; JSON has whole ids', async () => {
    const peers = (await makePeerIds(5)).sort()
    for (const peerId of peers) await client.submit({ originPeerId: peerId, seq: 1, fields: { version: '1.0.0' } })
    const first = await run('ls', '--limit', '2')
    expect(first.code, first.stderr).toBe(0)
    const cursor = /more may follow: nodeledger ls --after (\S+)/.exec(first.stdout)?.[1]
    // A whole peer id (the last one shown), not a shortened one.
    expect(cursor).toMatch(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/)
    const next = JSON.parse((await run('ls', '--after', cursor!, '--limit', '2', '--json')).stdout) as {
      records: Array<{ peerId: string }>
      nextAfterPeerId?: string
    }
    expect(next.records).toHaveLength(2)
    expect(next.records.every((record) => record.peerId > cursor!)).toBe(true)
    const all = JSON.parse((await run('ls', '--all', '--json')).stdout) as {
      records: Array<{ peerId: string }>
      nextAfterPeerId?: string
    }
    expect(all.records.map((record) => record.peerId)).toEqual(expect.arrayContaining(peers))
    expect(all.nextAfterPeerId).toBeUndefined()
    const status = JSON.parse((await run('status', '--json')).stdout) as {
      replicas: Array<{ peerId: string }>
      nodes: { shown: Array<{ peerId: string; uptimeMs: unknown; changedAgoMs: unknown }> }
    }
    expect(status.replicas.map((row) => row.peerId)).toEqual(init.replicas.map((r) => r.multiaddr.split('/p2p/')[1]))
    expect(status.nodes.shown.map((node) => node.peerId)).toEqual(expect.arrayContaining(peers))
    for (const node of status.nodes.shown) {
      expect(typeof node.uptimeMs).toBe('number')
      expect(typeof node.changedAgoMs).toBe('number')
    }
  })

  it('get and ls say why and since when a node is inactive (issue 12): the reason is in the record', async () => {
    const [peer] = await makePeerIds(1)
    await client.submit({ originPeerId: peer!, seq: 1, fields: { version: 'leaving' } })
    await client.heartbeat(peer!)
    await client.leave(peer!)
    const got = await run('get', peer!)
    expect(got.code, got.stderr).toBe(0)
    expect(got.stdout).toMatch(/^lastLeftReason +left$/m)
    expect(got.stdout).toMatch(/^inactive +left \S+ ago \(since \d{4}-\d\d-\d\dT/m)
    const json = JSON.parse((await run('get', peer!, '--json')).stdout) as {
      record: { isActive: boolean; lastLeftReason: string; lastLeftMs: number }
    }
    expect(json.record).toMatchObject({ isActive: false, lastLeftReason: 'left' })
    expect(json.record.lastLeftMs).toBeGreaterThan(0)
    const table = await run('ls', '--all')
    expect(table.stdout).toMatch(/^PEER +ACTIVE +INACTIVE +STAKED/m)
    expect(table.stdout.split('\n').find((line) => line.startsWith(peer!))).toMatch(/ false +left \S+ ago /)
    const listed = JSON.parse((await run('ls', '--all', '--json')).stdout) as {
      records: Array<{ peerId: string; lastLeftReason: string }>
    }
    expect(listed.records.find((record) => record.peerId === peer)?.lastLeftReason).toBe('left')
  })

  it('watch prints each change as it commits and exits 0 on Ctrl-C', async () => {
    const watcher = spawnNodeledger(['watch', '--from', '0', '--json', '--cluster', file])
    const [peer] = await makePeerIds(1)
    await waitUntil('the watch to deliver the existing records', () => watcher.output().includes('"record"'), 60_000)
    await client.submit({ originPeerId: peer!, seq: 1, fields: { version: 'watched' } })
    await waitUntil('the new record on the watch', () => watcher.output().includes(peer!), 60_000)
    const line = watcher
      .output()
      .split('\n')
      .find((text) => text.includes(peer!))!
    expect((JSON.parse(line) as { record: { version: string } }).record.version).toBe('watched')
    watcher.child.kill('SIGINT')
    expect(await watcher.exit).toBe(0)
  })

  it('status --watch redraws, shows a leader change as it happens, and exits 0 on Ctrl-C', async () => {
    const watcher = spawnNodeledger(['status', '--watch', '--interval-ms', '500', '--cluster', file])
    await waitUntil('a first table', () => watcher.output().includes('REPLICA'), 60_000)
    const leader = JSON.parse((await run('status', '--json')).stdout) as { leader: number }
    const to = leader.leader === 1 ? 2 : 1
    await client.transferLeader(to)
    await waitUntil(
      'the leader change on screen',
      () => / leader \d \(term \d+\) -> \d \(term \d+\)/.test(watcher.output()),
      60_000,
    )
    expect(watcher.output()).toMatch(new RegExp(`leader ${leader.leader} \\(term \\d+\\) -> ${to} \\(term \\d+\\)`))
    watcher.child.kill('SIGINT')
    expect(await watcher.exit).toBe(0)
  })

  it('--version, and the exit codes of operator mistakes', async () => {
    const version = await nodeledger(['--version'])
    expect(version.code).toBe(0)
    expect(version.stdout).toMatch(/^nodeledger \d+\.\d+\.\d+ \(node v\d+/)
    const help = await nodeledger(['--help'])
    expect(help.stdout).toContain('Exit codes:')
    expect(help.stdout).toMatch(/ 14 {2}mismatch/)
    // A second replica 1 on the same data dir: LOCKED, 8.
    const second = start(file, 1, join(dir, 'second-1.log'))
    expect(await exitOf(second)).toBe(8)
    expect(readFileSync(join(dir, 'second-1.log'), 'utf8')).toContain('LOCKED')
    // Another cluster on the same addresses: its replica cannot listen, 15.
    const other = join(dir, 'other')
    const made = await nodeledger([
      'cluster',
      'init',
      '--hosts',
      '127.0.0.21,127.0.0.22,127.0.0.23',
      '--port',
      String(port),
      '--dir',
      other,
    ])
    expect(made.code, made.stderr).toBe(0)
    const clash = start(join(other, 'cluster.json'), 1, join(dir, 'clash-1.log'))
    expect(await exitOf(clash)).toBe(15)
    expect(readFileSync(join(dir, 'clash-1.log'), 'utf8')).toContain(
      'EADDRINUSE: replica 1 cannot listen on /ip4/127.0.0.21',
    )
    // Bad flags and values: 2, with a message rather than a library's stack.
    for (const args of [
      ['authority', '--id', '1', '--log-level', 'loud'],
      ['status', '--timeout-ms', 'soon'],
      ['worker', '--data', join(dir, 'w'), '--bootstrap', 'not-a-multiaddr'],
      ['cluster', 'init', '--dir', join(dir, 'x'), '--hosts', 'a,b'],
      ['get', 'not-a-peer-id', '--cluster', file],
    ]) {
      const result = await nodeledger(args)
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2)
      expect(result.stderr).not.toMatch(/\n\s+at /)
    }
  })
})
