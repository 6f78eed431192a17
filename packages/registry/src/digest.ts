import { createHash } from 'node:crypto'
import { encodeRecordForDigest } from './codec.ts'
import type { NodeData } from './model.ts'

/** Bytes of a registry digest (SHA-256). */
export const DIGEST_BYTES = 32

/**
 * SHA-256 of one record's encoding in the oldest codec version that holds it (encodeRecordForDigest:
 * version 1 bytes while lastLeftReason is empty): the unit a registry digest XORs together.
 */
export function recordHash(record: NodeData): Buffer {
  return createHash('sha256').update(encodeRecordForDigest(record)).digest()
}

/**
 * The digest of a set of records (hex): the XOR of each record's SHA-256, so it does not depend on
 * order. Replicas report it in status (folded incrementally there); a worker computes it over its
 * cache, and equal digests mean equal records.
 */
export function recordsDigest(records: Iterable<NodeData>): string {
  const accumulator = Buffer.alloc(DIGEST_BYTES)
  for (const record of records) {
    const hash = recordHash(record)
    for (let i = 0; i < DIGEST_BYTES; i++) accumulator[i]! ^= hash[i]!
  }
  return accumulator.toString('hex')
}
