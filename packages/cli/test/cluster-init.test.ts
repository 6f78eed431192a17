import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { clusterInit } from '../src/commands/cluster-init.ts'

/** `cluster init --http-port`: every replica's HTTP listener (and so the cluster page) on its own host. */
describe('cluster init --http-port', () => {
  const root = mkdtempSync(join(tmpdir(), 'nodeledger-cluster-init-'))
  afterAll(() => rmSync(root, { recursive: true, force: true }))
  vi.spyOn(console, 'log').mockImplementation(() => {})

  it('writes http HOST:PORT on each replica’s own host, IPv6 in brackets, a name as it is', async () => {
    const dir = join(root, 'hosts')
    const cluster = await clusterInit({
      replicas: undefined,
      dir,
      port: 7001,
      hosts: '10.0.0.1,::1,db3.example.com',
      httpPort: 7101,
      force: false,
      json: true,
    })
    expect(cluster.replicas.map((replica) => replica.http)).toEqual([
      { host: '10.0.0.1', port: 7101 },
      { host: '::1', port: 7101 },
      { host: 'db3.example.com', port: 7101 },
    ])
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as { replicas: Array<{ http: string }> }
    expect(file.replicas.map((replica) => replica.http)).toEqual([
      '10.0.0.1:7101',
      '[::1]:7101',
      'db3.example.com:7101',
    ])
  })

  it('without it no replica has a listener; on the replicas’ own port it is refused (INVALID_CLUSTER)', async () => {
    const plain = await clusterInit({ replicas: 3, dir: join(root, 'plain'), port: 7001, force: false, json: true })
    expect(plain.replicas.every((replica) => replica.http === undefined)).toBe(true)
    await expect(
      clusterInit({ replicas: 3, dir: join(root, 'clash'), port: 7001, httpPort: 7001, force: false, json: true }),
    ).rejects.toMatchObject({ code: 'INVALID_CLUSTER' })
  })
})
