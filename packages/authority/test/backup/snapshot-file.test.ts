import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { packWire } from '@nodeledger/registry'
import {
  BackupError,
  decodeSnapshotFile,
  encodeSnapshotFile,
  inspectSnapshotFile,
  readSnapshotFile,
  writeSnapshotFileAtomic,
} from '../../src/backup/index.ts'
import type { BackupErrorCode, SnapshotFileHeader } from '../../src/backup/index.ts'
import { headerFor, sampleState } from './helpers.ts'

function codeOf(run: () => unknown): BackupErrorCode {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(BackupError)
    return (error as BackupError).code
  }
  throw new Error('expected a BackupError')
}

async function asyncCodeOf(promise: Promise<unknown>): Promise<BackupErrorCode> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(BackupError)
    return (error as BackupError).code
  }
  throw new Error('expected a BackupError')
}

const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest())

// A small registry (a few KiB) so that every byte of the file can be flipped and every cut tried.
const { machine, index } = sampleState(6, 2)
const data = machine.snapshot()
const header = headerFor(machine, index, data)
const file = encodeSnapshotFile(header, data)
const HEADER_BYTES = new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(5, false)

/** The file's bytes with its layout rebuilt around `mutate`'s header, re-checksummed: intact but different. */
function rebuilt(fields: Partial<Record<keyof SnapshotFileHeader, unknown>>, version = 1): Uint8Array {
  const wire = packWire({ ...toWire(header), ...fields })
  const body = new Uint8Array(9 + wire.byteLength + data.byteLength)
  body.set([0x4e, 0x4c, 0x53, 0x46, version], 0)
  new DataView(body.buffer).setUint32(5, wire.byteLength, false)
  body.set(wire, 9)
  body.set(data, 9 + wire.byteLength)
  const bytes = new Uint8Array(body.byteLength + 32)
  bytes.set(body, 0)
  bytes.set(sha256(body), body.byteLength)
  return bytes
}

function toWire(h: SnapshotFileHeader): Record<string, unknown> {
  return { ...h, members: h.members.map((member) => ({ ...member })) }
}

describe('snapshot file: round trip', () => {
  it('decodes to the header and data it was made of, and inspects to the state inside', () => {
    const decoded = decodeSnapshotFile(file)
    expect(decoded.header).toEqual(header)
    expect(Buffer.from(decoded.data).equals(Buffer.from(data))).toBe(true)
    expect(decoded.fileBytes).toBe(file.byteLength)
    expect(decoded.fileSha256).toEqual(file.subarray(file.byteLength - 32))
    const contents = inspectSnapshotFile(decoded)
    expect(contents.registry.records.length).toBe(6)
    expect(contents.registry.records.filter((record) => record.originSeq === 3).length).toBe(2)
    expect(contents.directory.all().map((member) => member.id)).toEqual([1, 2, 3])
    expect(contents.stateVersion).toBe(1)
    expect(contents.registryVersion).toBe(2)
  })

  it('is the exact layout: magic, version, header length, header, data, SHA-256 of all before', () => {
    expect([...file.subarray(0, 5)]).toEqual([0x4e, 0x4c, 0x53, 0x46, 1])
    expect(file.byteLength).toBe(9 + HEADER_BYTES + data.byteLength + 32)
    expect(
      Buffer.from(file.subarray(9 + HEADER_BYTES, 9 + HEADER_BYTES + data.byteLength)).equals(Buffer.from(data)),
    ).toBe(true)
    expect(file.subarray(file.byteLength - 32)).toEqual(sha256(file.subarray(0, file.byteLength - 32)))
  })

  it('refuses to encode a header that does not describe the data', () => {
    expect(codeOf(() => encodeSnapshotFile({ ...header, dataBytes: data.byteLength + 1 }, data))).toBe('INVALID')
    expect(codeOf(() => encodeSnapshotFile({ ...header, dataSha256: new Uint8Array(32) }, data))).toBe('INVALID')
    expect(codeOf(() => encodeSnapshotFile({ ...header, writer: 'é' }, data))).toBe('INVALID')
    expect(codeOf(() => encodeSnapshotFile({ ...header, leader: 9 }, data))).toBe('INVALID')
  })
})

describe('snapshot file: damage is refused CORRUPT', () => {
  it('a flipped bit in any byte, the checksum included', () => {
    for (let at = 0; at < file.byteLength; at++) {
      const damaged = new Uint8Array(file)
      damaged[at]! ^= 0x10
      expect(
        codeOf(() => decodeSnapshotFile(damaged)),
        `byte ${at}`,
      ).toBe('CORRUPT')
    }
  })

  it('truncation at every length, and at each boundary with a message that says so', () => {
    for (let length = 0; length < file.byteLength; length++) {
      expect(
        codeOf(() => decodeSnapshotFile(file.subarray(0, length))),
        `${length} bytes`,
      ).toBe('CORRUPT')
    }
    const boundaries = {
      'inside the preamble': 5,
      'after the preamble': 9,
      'after the header': 9 + HEADER_BYTES,
      'inside the data': 9 + HEADER_BYTES + 10,
      'after the data': 9 + HEADER_BYTES + data.byteLength,
      'inside the checksum': file.byteLength - 1,
    }
    for (const [where, length] of Object.entries(boundaries)) {
      const error = (() => {
        try {
          decodeSnapshotFile(file.subarray(0, length))
        } catch (caught) {
          return caught as BackupError
        }
        throw new Error(`${where}: accepted`)
      })()
      expect(error.code, where).toBe('CORRUPT')
      // Once the header is whole, the reader can tell a cut file from a damaged one.
      if (length > 9 + HEADER_BYTES) expect(error.message, where).toContain('truncated')
    }
  })

  it('bytes appended, and a file made of something else', () => {
    for (const extra of [1, 32, 4096]) {
      const longer = new Uint8Array(file.byteLength + extra)
      longer.set(file)
      expect(
        codeOf(() => decodeSnapshotFile(longer)),
        `${extra} more`,
      ).toBe('CORRUPT')
    }
    expect(codeOf(() => decodeSnapshotFile(data))).toBe('CORRUPT')
    expect(codeOf(() => decodeSnapshotFile(new TextEncoder().encode('{"not":"a snapshot file"}')))).toBe('CORRUPT')
  })

  it('an intact file whose header breaks a rule, or does not match what it holds', () => {
    expect(codeOf(() => decodeSnapshotFile(rebuilt({ extra: 1 } as never)))).toBe('CORRUPT')
    expect(codeOf(() => decodeSnapshotFile(rebuilt({ index: 0 })))).toBe('CORRUPT')
    expect(codeOf(() => decodeSnapshotFile(rebuilt({ dataBytes: data.byteLength - 1 })))).toBe('CORRUPT')
    expect(codeOf(() => decodeSnapshotFile(rebuilt({ dataSha256: new Uint8Array(32) })))).toBe('CORRUPT')
    // Structure fine, the state inside disagreeing with the header: found by inspection.
    for (const fields of [
      { records: 7 },
      { registryDigest: 'ab'.repeat(32) },
      { index: machine.registry.appliedIndex - 1 },
    ] as const) {
      const decoded = decodeSnapshotFile(rebuilt(fields))
      expect(
        codeOf(() => inspectSnapshotFile(decoded)),
        JSON.stringify(fields),
      ).toBe('CORRUPT')
    }
    // A state whose own checksum fails, inside a file whose checksums were all recomputed.
    const badState = new Uint8Array(data)
    badState[badState.byteLength - 1]! ^= 0x01
    const decoded = decodeSnapshotFile(encodeSnapshotFile({ ...header, dataSha256: sha256(badState) }, badState))
    expect(codeOf(() => inspectSnapshotFile(decoded))).toBe('CORRUPT')
  })

  it('an intact file of another format version is UNSUPPORTED_VERSION', () => {
    expect(codeOf(() => decodeSnapshotFile(rebuilt({}, 2)))).toBe('UNSUPPORTED_VERSION')
  })
})

describe('snapshot file on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeledger-snapshot-file-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('is written atomically: whole under its name, no temporary file left, an older file replaced whole', async () => {
    const path = join(dir, 'backup.snap')
    await writeSnapshotFileAtomic(path, file)
    expect(readFileSync(path).equals(Buffer.from(file))).toBe(true)
    expect((await readSnapshotFile(path)).header).toEqual(header)
    const next = encodeSnapshotFile({ ...header, savedMs: header.savedMs + 1 }, data)
    await writeSnapshotFileAtomic(path, next)
    expect((await readSnapshotFile(path)).header.savedMs).toBe(header.savedMs + 1)
    expect(readdirSync(dir)).toEqual(['backup.snap'])
  })

  it('a write that cannot complete leaves nothing under the name', async () => {
    const path = join(dir, 'missing-dir', 'backup.snap')
    expect(await asyncCodeOf(writeSnapshotFileAtomic(path, file))).toBe('NOT_FOUND')
    expect(readdirSync(dir)).toEqual(['backup.snap'])
    // Bytes that are not a whole snapshot file are never written.
    expect(await asyncCodeOf(writeSnapshotFileAtomic(join(dir, 'half.snap'), file.subarray(0, 100)))).toBe('CORRUPT')
    expect(readdirSync(dir)).toEqual(['backup.snap'])
  })

  it('reading names the file: missing is NOT_FOUND, damaged CORRUPT', async () => {
    expect(await asyncCodeOf(readSnapshotFile(join(dir, 'nope.snap')))).toBe('NOT_FOUND')
    const damaged = join(dir, 'damaged.snap')
    writeFileSync(damaged, file.subarray(0, file.byteLength - 1))
    expect(await asyncCodeOf(readSnapshotFile(damaged))).toBe('CORRUPT')
    rmSync(damaged)
  })
})
