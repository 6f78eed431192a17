import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeMarkerFile } from '@nodeledger/leveldb'
import { ReplicaError } from '../replica-errors.ts'

/** Beside the LevelDB files in a replica's data dir: which cluster and which replica it belongs to. */
export const IDENTITY_FILE = 'replica.json'

export interface ReplicaIdentity {
  readonly clusterId: string
  readonly replicaId: number
}

/**
 * The identity recorded in `dataDir`, or undefined when none is (a new dir, or one written before
 * identities were recorded). A file that does not parse is refused: it would otherwise be silently
 * replaced and the check it exists for skipped.
 */
export async function readIdentity(dataDir: string): Promise<ReplicaIdentity | undefined> {
  let text: string
  try {
    text = await readFile(join(dataDir, IDENTITY_FILE), 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `cannot read ${join(dataDir, IDENTITY_FILE)}: ${(error as Error).message}`,
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new ReplicaError('INVALID_CLUSTER', `${join(dataDir, IDENTITY_FILE)} is not JSON`)
  }
  const raw = parsed as { clusterId?: unknown; replicaId?: unknown }
  if (typeof raw.clusterId !== 'string' || !Number.isSafeInteger(raw.replicaId)) {
    throw new ReplicaError('INVALID_CLUSTER', `${join(dataDir, IDENTITY_FILE)} must hold { clusterId, replicaId }`)
  }
  return { clusterId: raw.clusterId, replicaId: raw.replicaId as number }
}

/** Durably record the identity (written once: when the dir is bootstrapped, joined, or first met). */
export async function writeIdentity(dataDir: string, identity: ReplicaIdentity): Promise<void> {
  await writeMarkerFile(
    dataDir,
    IDENTITY_FILE,
    `${JSON.stringify({ clusterId: identity.clusterId, replicaId: identity.replicaId })}\n`,
  )
}
