import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Registry, encodeCommand } from '@nodeledger/registry'
import { RegistryDigest } from '../src/replica/registry-digest.ts'

async function peers(count: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) ids.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
  return ids
}

function delta(index: number, origin: string, seq: number, version: string): { index: number; data: Uint8Array } {
  return {
    index,
    data: encodeCommand({
      timestampMs: 1_700_000_000_000 + index,
      command: { kind: 'delta', submitterPeerId: origin, delta: { originPeerId: origin, seq, fields: { version } } },
    }),
  }
}

describe('registry digest', () => {
  it('is the same whether folded change by change or computed from scratch, and tells registries apart', async () => {
    const ids = await peers(5)
    const incremental = new Registry()
    const folding = new RegistryDigest()
    const seen: string[] = []
    let index = 0
    for (let round = 1; round <= 3; round++) {
      for (const id of ids) {
        const result = incremental.apply(delta(++index, id, round, `v${round}`))
        if (result.status === 'applied') folding.markChanged(result.peerIds)
        seen.push(folding.digest(incremental))
      }
    }
    const fromScratch = new RegistryDigest().digest(incremental)
    expect(seen[seen.length - 1]).toBe(fromScratch)
    expect(new Set(seen).size).toBe(seen.length)

    const restored = new Registry()
    restored.restore(incremental.snapshot())
    expect(new RegistryDigest().digest(restored)).toBe(fromScratch)

    restored.apply(delta(++index, ids[0]!, 4, 'v4'))
    expect(new RegistryDigest().digest(restored)).not.toBe(fromScratch)
  })
})
