import { crc32 } from 'node:zlib'
import { EntryType } from '@nodeledger/raft'
import type { Entry, Snapshot } from '@nodeledger/raft'
import { Registry, RegistryError, packWire, unpackWire } from '@nodeledger/registry'
import type { ApplyResult, CommandEnvelope } from '@nodeledger/registry'
import { ReplicaError } from '../replica-errors.ts'
import type { DriverStateMachine } from './driver.ts'
import { Members } from './members.ts'
import type { Member } from './members.ts'
import { RegistryDigest } from './registry-digest.ts'

/**
 * The replica's replicated state: the registry of nodes, and the member directory (who the
 * replicas are and where they listen). Both change only by applying committed entries, in log
 * order: Normal entries are registry commands, ConfChange entries change the directory and, with
 * it, which peer ids the registry accepts observations from. A snapshot holds both.
 *
 *   snapshot  "NLSM" | version (1 byte) | crc32 of body (4 bytes, big endian) | body
 *     body = msgpack [members: [[id, peerId, multiaddr, started], ...], registry snapshot (bin),
 *                     retired: [id, ...] (members removed: their ids are never used again)]
 *
 * A snapshot written before the member directory existed is a bare registry snapshot ("NLRS"):
 * its members are then the founders of the cluster file, all started.
 */
export class ReplicaStateMachine implements DriverStateMachine<ApplyResult | undefined> {
  readonly registry: Registry
  #members: Members
  readonly #digest = new RegistryDigest()
  readonly #legacyMembers: readonly Member[]
  /** Commands this replica proposed while leading, by index (bounded by the driver's proposal limit). */
  readonly #proposed = new Map<number, { term: number; envelope: CommandEnvelope }>()
  /** Told of every applied membership change (the replica updates its links). */
  onMembersChanged: ((members: readonly Member[]) => void) | undefined

  /** `founders`: what a legacy snapshot's directory is (the cluster file's replicas). */
  constructor(founders: readonly Member[]) {
    this.#legacyMembers = founders.map((member) => ({ ...member, started: true }))
    this.#members = new Members(founders)
    this.registry = new Registry({ replicaPeerIds: founders.map((member) => member.peerId) })
  }

  get members(): Members {
    return this.#members
  }

  /**
   * The command this leader proposed at `index` in `term`, as it built it: applying that entry then
   * needs no decode (the bytes were encoded from it). Followers, and an entry a new leader put at
   * that index instead, decode as usual.
   */
  proposed(index: number, term: number, envelope: CommandEnvelope): void {
    this.#proposed.set(index, { term, envelope })
  }

  apply(entry: Entry): ApplyResult | undefined {
    if (entry.type === EntryType.Normal) {
      const own = this.#proposed.get(entry.index)
      if (own !== undefined) this.#proposed.delete(entry.index)
      const result =
        own !== undefined && own.term === entry.term
          ? this.registry.applyDecoded(entry.index, own.envelope)
          : this.registry.apply({ index: entry.index, data: entry.data })
      if (result.status === 'applied') this.#digest.markChanged(result.peerIds)
      return result
    }
    if (entry.type !== EntryType.ConfChange) return undefined
    const before = this.#members.all().map((member) => member.peerId)
    this.#members.apply(entry)
    const after = this.#members.all().map((member) => member.peerId)
    if (before.join('\n') !== after.join('\n')) {
      // The registry takes observations only from replicas: the new set, at this entry's index, by
      // the rule of its `replicas` command (which also ends presences a removed replica held).
      // A committed entry must apply alike everywhere, and never crash every replica at once: a set
      // the registry refuses (a member without a valid peer id) leaves the previous one.
      try {
        const result = this.registry.setReplicas(
          entry.index,
          after.filter((peerId) => peerId !== ''),
        )
        if (result.status === 'applied') this.#digest.markChanged(result.peerIds)
      } catch (error) {
        if (!(error instanceof RegistryError)) throw error
      }
    }
    this.onMembersChanged?.(this.#members.all())
    return undefined
  }

  restore(snapshot: Snapshot): void {
    for (const index of this.#proposed.keys()) if (index <= snapshot.metadata.index) this.#proposed.delete(index)
    const { members, registry } = decodeStateSnapshot(snapshot.data, this.#legacyMembers)
    this.registry.restore(registry, { verify: false })
    this.#members = members
    this.#digest.reset()
    this.onMembersChanged?.(this.#members.all())
  }

  snapshot(): Uint8Array {
    return encodeStateSnapshot(this.#members, this.registry.snapshot())
  }

  /** Digest of the registry's records (see RegistryDigest): equal on replicas that applied the same log. */
  registryDigest(): string {
    return this.#digest.digest(this.registry)
  }
}

const MAGIC = [0x4e, 0x4c, 0x53, 0x4d] // "NLSM": nodeledger state machine
const LEGACY_MAGIC = [0x4e, 0x4c, 0x52, 0x53] // "NLRS": a bare registry snapshot
const VERSION = 1
const HEADER_BYTES = 9

/** The state machine's snapshot bytes (also what `snapshot save` writes, inside its own envelope). */
export function encodeStateSnapshot(members: Members, registrySnapshot: Uint8Array): Uint8Array {
  const body = packWire([members.toArray(), registrySnapshot, members.retiredIds()])
  const bytes = new Uint8Array(HEADER_BYTES + body.byteLength)
  bytes.set(MAGIC, 0)
  bytes[4] = VERSION
  new DataView(bytes.buffer).setUint32(5, crc32(body) >>> 0)
  bytes.set(body, HEADER_BYTES)
  return bytes
}

/**
 * Decode a state-machine snapshot; a corrupt one throws ReplicaError CORRUPT_SNAPSHOT and nothing
 * is changed. A legacy registry snapshot gets `legacyMembers`.
 */
export function decodeStateSnapshot(
  bytes: Uint8Array,
  legacyMembers: readonly Member[],
): { members: Members; registry: Uint8Array } {
  if (startsWith(bytes, LEGACY_MAGIC)) return { members: new Members(legacyMembers), registry: bytes }
  if (bytes.byteLength < HEADER_BYTES || !startsWith(bytes, MAGIC)) {
    throw new ReplicaError('CORRUPT_SNAPSHOT', 'snapshot does not start with the state machine header (NLSM)')
  }
  if (bytes[4] !== VERSION) {
    throw new ReplicaError('CORRUPT_SNAPSHOT', `snapshot version ${bytes[4]}; this build reads version ${VERSION}`)
  }
  const body = bytes.subarray(HEADER_BYTES)
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(5)
  if (crc32(body) >>> 0 !== stored) throw new ReplicaError('CORRUPT_SNAPSHOT', 'snapshot checksum does not match')
  let decoded: unknown
  try {
    decoded = unpackWire(body)
  } catch (error) {
    throw new ReplicaError('CORRUPT_SNAPSHOT', `snapshot body is not msgpack: ${(error as Error).message}`)
  }
  if (!Array.isArray(decoded) || decoded.length !== 3 || !(decoded[1] instanceof Uint8Array)) {
    throw new ReplicaError('CORRUPT_SNAPSHOT', 'snapshot body is not [members, registry, retired]')
  }
  return { members: Members.fromArray(decoded[0], decoded[2]), registry: decoded[1] }
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  if (bytes.byteLength < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false
  return true
}
