import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TransportError, loadOrCreateKey } from '../../src/transport/index.ts'

let directory: string
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'nodeledger-key-'))
})
afterEach(async () => rm(directory, { recursive: true, force: true }))

async function expectInvalidKey(path: string): Promise<TransportError> {
  const error = await loadOrCreateKey(path).then(
    () => undefined,
    (thrown: unknown) => thrown,
  )
  expect(error).toBeInstanceOf(TransportError)
  expect((error as TransportError).code).toBe('INVALID_KEY')
  expect((error as TransportError).message).toContain(path)
  return error as TransportError
}

describe('loadOrCreateKey', () => {
  it('creates an Ed25519 key with mode 0600 (and its directory), then loads the same key', async () => {
    const path = join(directory, 'nested', 'replica-1', 'peer.key')
    const created = await loadOrCreateKey(path)
    expect(created.type).toBe('Ed25519')
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    const loaded = await loadOrCreateKey(path)
    expect(loaded.equals(created)).toBe(true)
    expect(peerIdFromPrivateKey(loaded).toString()).toBe(peerIdFromPrivateKey(created).toString())
    expect(await readdir(join(directory, 'nested', 'replica-1'))).toEqual(['peer.key']) // no temp files left
  })

  it('loads a key marshalled elsewhere by @libp2p/crypto', async () => {
    const key = await generateKeyPair('Ed25519')
    const path = join(directory, 'peer.key')
    await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600 })
    expect((await loadOrCreateKey(path)).equals(key)).toBe(true)
  })

  it('concurrent creators of one path all end up with one key', async () => {
    const path = join(directory, 'peer.key')
    const keys = await Promise.all(Array.from({ length: 8 }, async () => loadOrCreateKey(path)))
    expect(keys.every((key) => key.equals(keys[0]))).toBe(true)
    expect((await loadOrCreateKey(path)).equals(keys[0])).toBe(true)
    expect(await readdir(directory)).toEqual(['peer.key'])
  })

  it('refuses a corrupt, truncated, empty, oversized or non-Ed25519 key file with INVALID_KEY naming the path', async () => {
    const valid = privateKeyToProtobuf(await generateKeyPair('Ed25519'))
    const cases: Array<[string, Uint8Array]> = [
      ['garbage.key', new TextEncoder().encode('this is not a key\n')],
      ['truncated.key', valid.subarray(0, valid.byteLength - 10)],
      ['empty.key', new Uint8Array(0)],
      ['huge.key', new Uint8Array(64 * 1024).fill(7)],
      ['secp256k1.key', privateKeyToProtobuf(await generateKeyPair('secp256k1'))],
    ]
    for (const [name, bytes] of cases) {
      const path = join(directory, name)
      await writeFile(path, bytes)
      await expectInvalidKey(path)
    }
  })

  it('refuses an unreadable path (a directory) with INVALID_KEY, not a raw stack', async () => {
    const path = join(directory, 'is-a-directory.key')
    await mkdir(path)
    const error = await expectInvalidKey(path)
    expect(error.message).toContain('EISDIR')
  })
})
