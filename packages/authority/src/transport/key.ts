import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { KEY_FILE_BYTES_MAX } from './constants.ts'
import { TransportError } from './errors.ts'

/**
 * The replica's identity: an Ed25519 key, protobuf-marshalled by @libp2p/crypto, in a file of mode
 * 0600. A missing file is created; an unreadable, corrupt or non-Ed25519 file is refused with
 * TransportError INVALID_KEY naming the path (a replica must never silently take a new identity:
 * the cluster file pins its peer id).
 *
 * Creation is atomic and never clobbers: the key is written and fsynced under a temporary name,
 * then hard-linked into place, which fails if another process created the file meanwhile (both then
 * use the winner's key). Where hard links are unsupported, rename is the fallback.
 */
export async function loadOrCreateKey(path: string): Promise<PrivateKey> {
  if (typeof path !== 'string' || path.length === 0)
    throw new TypeError('loadOrCreateKey: path must be a non-empty string')
  const bytes = await readKeyFile(path)
  if (bytes !== undefined) return decodeKey(path, bytes)
  return createKey(path)
}

/** The file's bytes, or undefined when it does not exist. */
async function readKeyFile(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw new TransportError(
      'INVALID_KEY',
      `key file ${path} cannot be read (${errorCode(error) ?? describe(error)})`,
      { cause: error },
    )
  }
}

function decodeKey(path: string, bytes: Uint8Array): PrivateKey {
  if (bytes.byteLength === 0) throw new TransportError('INVALID_KEY', `key file ${path} is empty`)
  if (bytes.byteLength > KEY_FILE_BYTES_MAX) {
    throw new TransportError(
      'INVALID_KEY',
      `key file ${path} has ${bytes.byteLength} bytes; a marshalled key has far fewer than ${KEY_FILE_BYTES_MAX}`,
    )
  }
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (error) {
    throw new TransportError(
      'INVALID_KEY',
      `key file ${path} is not a protobuf-marshalled libp2p private key (${describe(error)})`,
      { cause: error },
    )
  }
  if (key.type !== 'Ed25519')
    throw new TransportError('INVALID_KEY', `key file ${path} holds a ${key.type} key; replicas use Ed25519`)
  return key
}

async function createKey(path: string): Promise<PrivateKey> {
  const key = await generateKeyPair('Ed25519')
  const bytes = privateKeyToProtobuf(key)
  const directory = dirname(path)
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 })
    const handle = await open(temporary, 'wx', 0o600)
    try {
      await handle.chmod(0o600) // open's mode passes through the umask; state the intent outright
      await handle.writeFile(bytes)
      await handle.sync()
    } finally {
      await handle.close()
    }
    try {
      await link(temporary, path)
    } catch (error) {
      const code = errorCode(error)
      if (code === 'EEXIST') {
        // Another process won the race: its key is the identity.
        const theirs = await readKeyFile(path)
        if (theirs === undefined)
          throw new TransportError('INVALID_KEY', `key file ${path} vanished while being created`)
        return decodeKey(path, theirs)
      }
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error
      await rename(temporary, path)
    }
    await syncDirectory(directory)
  } catch (error) {
    if (error instanceof TransportError) throw error
    throw new TransportError(
      'INVALID_KEY',
      `key file ${path} cannot be created (${errorCode(error) ?? describe(error)})`,
      { cause: error },
    )
  } finally {
    await unlink(temporary).catch(() => {})
  }
  // Pair the write with a read back (STYLE §3): what is on disk is the key we hand out.
  const written = await readKeyFile(path)
  if (written === undefined || !decodeKey(path, written).equals(key)) {
    throw new TransportError('INVALID_KEY', `key file ${path} does not read back as the key just written`)
  }
  return key
}

/** Makes the new directory entry durable; best effort where directories cannot be opened. */
async function syncDirectory(directory: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined
  try {
    handle = await open(directory, 'r')
    await handle.sync()
  } catch {
    // Some filesystems refuse fsync on a directory; the file itself is already synced.
  } finally {
    await handle?.close()
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
