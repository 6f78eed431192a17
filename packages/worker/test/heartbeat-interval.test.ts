import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterAll, describe, expect, it } from 'vitest'
import { NodeEventTracker, WorkerConfigError, checkHeartbeatInterval, trackerDefaults } from '../src/index.ts'

function refusal(run: () => unknown): WorkerConfigError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(WorkerConfigError)
    expect((error as WorkerConfigError).code).toBe('INVALID_CONFIG')
    return error as WorkerConfigError
  }
  throw new Error('expected a WorkerConfigError')
}

describe('a heartbeat interval that cannot keep the lease alive is refused (issue 12)', () => {
  it('refuses an interval at or above the TTL, naming both values', () => {
    for (const [interval, ttl] of [
      [10_000, 10_000],
      [15_000, 10_000],
      [4_000, 4_000],
    ] as const) {
      const error = refusal(() => checkHeartbeatInterval(interval, ttl))
      expect(error.message).toContain(`${interval} ms`)
      expect(error.message).toContain(`${ttl} ms`)
    }
  })

  it('warns above TTL/2 (one lost heartbeat expires the lease) and accepts TTL/2 and below silently', () => {
    expect(checkHeartbeatInterval(9_999, 10_000)).toContain('one lost or late heartbeat')
    expect(checkHeartbeatInterval(5_001, 10_000)).toContain('5001 ms')
    expect(checkHeartbeatInterval(5_000, 10_000)).toBeUndefined()
    expect(
      checkHeartbeatInterval(trackerDefaults.HEARTBEAT_INTERVAL_MS_DEFAULT, trackerDefaults.LEASE_TTL_MS_DEFAULT),
    ).toBeUndefined()
  })

  it('refuses an interval or TTL that is not a positive integer', () => {
    for (const [interval, ttl] of [
      [0, 10_000],
      [-5, 10_000],
      [1.5, 10_000],
      [Number.NaN, 10_000],
      [1_000, 0],
    ] as const)
      refusal(() => checkHeartbeatInterval(interval, ttl))
  })

  const root = mkdtempSync(join(tmpdir(), 'nodeledger-heartbeat-'))
  afterAll(() => rmSync(root, { recursive: true, force: true }))

  it('NodeEventTracker.start refuses it before opening anything: no data dir, no host, no dial', async () => {
    const dataDir = join(root, 'worker')
    const start = NodeEventTracker.start({
      dataDir,
      bootstrap: [],
      privateKey: await generateKeyPair('Ed25519'),
      heartbeatIntervalMs: 12_000,
      leaseTtlMs: 10_000,
    })
    await expect(start).rejects.toBeInstanceOf(WorkerConfigError)
    await expect(start).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    expect(existsSync(dataDir)).toBe(false)
    // The default TTL when none is given: 10 s, so 10 s is refused too.
    await expect(
      NodeEventTracker.start({
        dataDir,
        bootstrap: [],
        privateKey: await generateKeyPair('Ed25519'),
        heartbeatIntervalMs: 10_000,
      }),
    ).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    expect(existsSync(dataDir)).toBe(false)
  })
})
