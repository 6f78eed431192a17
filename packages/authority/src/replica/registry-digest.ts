import { DIGEST_BYTES, recordHash } from '@nodeledger/registry'
import type { Registry } from '@nodeledger/registry'

/**
 * A digest of the registry's records that replicas can compare (`recordsDigest` of the registry
 * package, kept incrementally): the XOR of SHA-256 over each
 * record's encoding (recordHash: in the oldest codec version that holds it), so it does not depend on order and a changed record is swapped out in O(1).
 * Applying entries only marks records dirty; the hashing happens when someone asks (status), and
 * costs what changed since the last ask, not the whole registry (a full snapshot of 100,000 records
 * takes ~600 ms, far too long to spend on every status request of a busy leader).
 */
export class RegistryDigest {
  private readonly hashes = new Map<string, Buffer>()
  private readonly dirty = new Set<string>()
  private readonly accumulator = Buffer.alloc(DIGEST_BYTES)
  private allDirty = true

  markChanged(peerIds: readonly string[]): void {
    if (this.allDirty) return
    for (const peerId of peerIds) this.dirty.add(peerId)
  }

  /** The registry was replaced wholesale (snapshot installed): start over on the next ask. */
  reset(): void {
    this.allDirty = true
    this.dirty.clear()
  }

  digest(registry: Registry): string {
    if (this.allDirty) {
      this.hashes.clear()
      this.accumulator.fill(0)
      for (const record of registry.list({ limit: Number.MAX_SAFE_INTEGER })) this.fold(record.peerId, registry)
      this.allDirty = false
    } else {
      for (const peerId of this.dirty) this.fold(peerId, registry)
    }
    this.dirty.clear()
    return this.accumulator.toString('hex')
  }

  private fold(peerId: string, registry: Registry): void {
    const previous = this.hashes.get(peerId)
    if (previous !== undefined) xorInto(this.accumulator, previous)
    const record = registry.get(peerId)
    if (record === undefined) {
      this.hashes.delete(peerId)
      return
    }
    const hash = recordHash(record)
    xorInto(this.accumulator, hash)
    this.hashes.set(peerId, hash)
  }
}

function xorInto(target: Buffer, source: Buffer): void {
  for (let i = 0; i < DIGEST_BYTES; i++) target[i]! ^= source[i]!
}
