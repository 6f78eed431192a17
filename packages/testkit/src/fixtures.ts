import { base58btc } from 'multiformats/bases/base58'

/**
 * Fixtures shared by the packages' tests (imported as '@nodeledger/testkit/fixtures', which pulls
 * in nothing else of the testkit).
 */

/**
 * A canonical Ed25519 peer id ("12D3KooW…") made from a seed number: the identity multihash of a
 * protobuf-encoded public key. The key bytes need not be a real key's; libp2p only checks length,
 * and generating real keys would make every test that needs a few hundred ids slow.
 */
export function peerIdFromSeed(seed: number): string {
  const bytes = new Uint8Array(38)
  bytes.set([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < 8; i++) view.setUint32(6 + i * 4, Math.imul(seed + 1, 0x9e3779b1 + i * 0x85ebca6b) >>> 0)
  // base58btc's multibase form starts with 'z'; a peer id string is the bare base58 text.
  return base58btc.baseEncode(bytes)
}
