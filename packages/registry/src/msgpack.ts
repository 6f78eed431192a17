import { Unpackr } from 'msgpackr'

/**
 * The one MessagePack dialect of everything nodeledger puts on the wire (docs/PROTOCOL.md
 * "Encoding"): API frames, records, commands and snapshots, gossiped deltas and Raft frames.
 *
 *   - integers are MessagePack integers in [0, 2^53 - 1]: written in the smallest unsigned format
 *     (positive fixint, uint8, uint16, uint32, uint64 from 2^32 on), read from any integer format;
 *     negative values, values above 2^53 - 1 and floats (float32, float64, even 1.0) are refused:
 *     no field of the protocol holds a signed or fractional number;
 *   - maps have distinct string keys, never "__proto__"; a map entry whose value is `undefined` is not written (the key
 *     is absent, as the protocol wants for an unused optional field);
 *   - no extension types (msgpackr's records, timestamps, `undefined` as fixext): refused on read,
 *     never written;
 *   - exactly one value per payload: trailing bytes are refused; nesting is at most
 *     MSGPACK_DEPTH_MAX containers deep.
 *
 * Writing: msgpackr cannot write this dialect (it writes integers from 2^32 on as float64, and a
 * bigint as a signed int64), so packWire is a small encoder of its own that knows only these types
 * and throws MsgpackError for anything else: the wrong type never reaches the wire.
 *
 * Reading: msgpackr returns the same JS number for the int 1 and the float64 1.0, and for a uint64
 * it returns a bigint. So unpackWire first checks the bytes in one pass over the type bytes
 * (checkWire: no allocation, strings and bins skipped by length), then lets msgpackr build the
 * values with int64AsType 'number', which is exact because the check allowed only uint64 and int64
 * values up to 2^53 - 1. Callers then check each value's type and range as before.
 */

/** Containers (arrays, maps) nested deeper than this are refused; the deepest valid frame has 6. */
export const MSGPACK_DEPTH_MAX = 16

/** Why bytes are not (or a value cannot be written as) wire MessagePack; `offset` is the byte it concerns. */
export class MsgpackError extends Error {
  static override readonly name = 'MsgpackError'
  readonly offset: number
  constructor(message: string, offset: number) {
    super(message)
    this.name = 'MsgpackError'
    this.offset = offset
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

// No records and no shared structures: every unpack starts from an empty structure table (and the
// check refuses the record extension anyway). int64AsType 'number' is exact after checkWire.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' })

/** Decodes one wire MessagePack value; throws MsgpackError for bytes that are not exactly one. */
export function unpackWire(bytes: Uint8Array): unknown {
  checkWire(bytes)
  try {
    return unpackr.unpack(bytes)
  } catch (error) {
    // checkWire accepted the bytes, so this is msgpackr refusing something it checked too (a
    // truncated string, say); still bad input, not a crash.
    throw new MsgpackError(`not well-formed MessagePack (${error instanceof Error ? error.message : 'unknown'})`, 0)
  }
}

/**
 * Throws MsgpackError unless `bytes` is exactly one value of the wire dialect (see the module
 * comment). One pass over the type bytes; strings and bins are skipped by length.
 */
export function checkWire(bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) throw new MsgpackError('expected bytes (a Uint8Array)', 0)
  if (bytes.length === 0) throw new MsgpackError('no bytes: an empty payload is not MessagePack', 0)
  const end = scanValue(bytes, 0, 0)
  if (end !== bytes.length) {
    throw new MsgpackError(`${bytes.length - end} trailing bytes after the value (one value per payload)`, end)
  }
}

/** Map keys remembered per nesting level for the duplicate check of small maps. */
const SMALL_MAP_ENTRIES = 16
const keyStarts = new Int32Array(MSGPACK_DEPTH_MAX * SMALL_MAP_ENTRIES)
const keyEnds = new Int32Array(MSGPACK_DEPTH_MAX * SMALL_MAP_ENTRIES)

/** 2^53 - 1 is 0x1fffff_ffffffff: a 64-bit value is in range exactly when its high word is at most this. */
const UINT64_HIGH_WORD_MAX = 0x1fffff

function scanValue(b: Uint8Array, p: number, depth: number): number {
  if (p >= b.length) throw truncated(p)
  const t = b[p]!
  if (t < 0x80) return p + 1 // positive fixint
  if (t < 0x90) return scanMap(b, p + 1, t & 0x0f, depth, p)
  if (t < 0xa0) return scanArray(b, p + 1, t & 0x0f, depth, p)
  if (t < 0xc0) return skip(b, p + 1, t & 0x1f) // fixstr
  if (t >= 0xe0) throw refused(p, 'a negative integer (negative fixint)')
  switch (t) {
    case 0xc0: // nil
    case 0xc2: // false
    case 0xc3: // true
      return p + 1
    case 0xc4: // bin 8
    case 0xd9: // str 8
      return skip(b, p + 2, u8(b, p + 1))
    case 0xc5: // bin 16
    case 0xda: // str 16
      return skip(b, p + 3, u16(b, p + 1))
    case 0xc6: // bin 32
    case 0xdb: // str 32
      return skip(b, p + 5, u32(b, p + 1))
    case 0xcc: // uint 8
      return skip(b, p + 1, 1)
    case 0xcd: // uint 16
      return skip(b, p + 1, 2)
    case 0xce: // uint 32
      return skip(b, p + 1, 4)
    case 0xcf: // uint 64
      if (u32(b, p + 1) > UINT64_HIGH_WORD_MAX) throw refused(p, 'an integer above 2^53 - 1 (uint 64)')
      return skip(b, p + 1, 8)
    case 0xd0: // int 8
    case 0xd1: // int 16
    case 0xd2: // int 32
    case 0xd3: {
      // int 64. Signed formats are integer formats: a non-negative value in one is accepted.
      const width = t === 0xd0 ? 1 : t === 0xd1 ? 2 : t === 0xd2 ? 4 : 8
      if ((u8(b, p + 1) & 0x80) !== 0) throw refused(p, `a negative integer (int ${width * 8})`)
      if (width === 8 && u32(b, p + 1) > UINT64_HIGH_WORD_MAX) throw refused(p, 'an integer above 2^53 - 1 (int 64)')
      return skip(b, p + 1, width)
    }
    case 0xdc: // array 16
      return scanArray(b, p + 3, u16(b, p + 1), depth, p)
    case 0xdd: // array 32
      return scanArray(b, p + 5, u32(b, p + 1), depth, p)
    case 0xde: // map 16
      return scanMap(b, p + 3, u16(b, p + 1), depth, p)
    case 0xdf: // map 32
      return scanMap(b, p + 5, u32(b, p + 1), depth, p)
    case 0xca:
      throw refused(p, 'a float 32 (the protocol has integers only)')
    case 0xcb:
      throw refused(p, 'a float 64 (the protocol has integers only)')
    case 0xc1:
      throw refused(p, 'the reserved byte 0xc1')
    default:
      // 0xc7-0xc9 ext 8/16/32, 0xd4-0xd8 fixext 1-16
      throw refused(p, `an extension type (0x${t.toString(16)})`)
  }
}

function scanArray(b: Uint8Array, p: number, count: number, depth: number, at: number): number {
  if (depth >= MSGPACK_DEPTH_MAX) throw refused(at, `containers nested deeper than ${MSGPACK_DEPTH_MAX}`)
  // Every element takes at least one byte: a count beyond the bytes left is truncated input.
  if (count > b.length - p) throw truncated(at)
  for (let i = 0; i < count; i++) p = scanValue(b, p, depth + 1)
  return p
}

function scanMap(b: Uint8Array, p: number, count: number, depth: number, at: number): number {
  if (depth >= MSGPACK_DEPTH_MAX) throw refused(at, `containers nested deeper than ${MSGPACK_DEPTH_MAX}`)
  if (count > (b.length - p) / 2) throw truncated(at)
  const small = count <= SMALL_MAP_ENTRIES
  const slot = depth * SMALL_MAP_ENTRIES
  const seen = small ? undefined : new Set<string>()
  for (let i = 0; i < count; i++) {
    const keyAt = p
    if (p >= b.length) throw truncated(p)
    const t = b[p]!
    let start: number
    if (t >= 0xa0 && t < 0xc0) start = p + 1
    else if (t === 0xd9) start = p + 2
    else if (t === 0xda) start = p + 3
    else if (t === 0xdb) start = p + 5
    else throw refused(p, `a map key that is not a string (0x${t.toString(16)})`)
    const keyEnd = skip(
      b,
      start,
      t < 0xc0 ? t & 0x1f : t === 0xd9 ? u8(b, p + 1) : t === 0xda ? u16(b, p + 1) : u32(b, p + 1),
    )
    if (small) {
      for (let j = 0; j < i; j++) {
        if (sameBytes(b, keyStarts[slot + j]!, keyEnds[slot + j]!, start, keyEnd)) throw duplicate(keyAt)
      }
      keyStarts[slot + i] = start
      keyEnds[slot + i] = keyEnd
    } else {
      // Large maps (none in the protocol, but a hostile frame may send one): a set, not n² compares.
      const key = latin1(b, start, keyEnd)
      if (seen!.has(key)) throw duplicate(keyAt)
      seen!.add(key)
    }
    // msgpackr would build the key "__proto__" as "__proto_" (its guard against prototype
    // pollution): a value that silently differs from the bytes. No map of the protocol has it.
    if (isProtoKey(b, start, keyEnd)) {
      throw refused(keyAt, 'the map key "__proto__" (no map of the protocol has it)')
    }
    p = scanValue(b, keyEnd, depth + 1)
  }
  return p
}

function sameBytes(b: Uint8Array, start1: number, end1: number, start2: number, end2: number): boolean {
  if (end1 - start1 !== end2 - start2) return false
  for (let i = 0; i < end1 - start1; i++) if (b[start1 + i] !== b[start2 + i]) return false
  return true
}

/** The UTF-8 bytes of "__proto__", the one string refused as a map key. */
const PROTO_KEY = new TextEncoder().encode('__proto__')

function isProtoKey(b: Uint8Array, start: number, end: number): boolean {
  if (end - start !== PROTO_KEY.length) return false
  for (let i = 0; i < PROTO_KEY.length; i++) if (b[start + i] !== PROTO_KEY[i]) return false
  return true
}

/** A key's bytes as a string of one char per byte: equal bytes give equal strings, which is all the set needs. */
function latin1(b: Uint8Array, start: number, end: number): string {
  let text = ''
  for (let i = start; i < end; i++) text += String.fromCharCode(b[i]!)
  return text
}

function skip(b: Uint8Array, p: number, length: number): number {
  const end = p + length
  if (end > b.length) throw truncated(p)
  return end
}

function u8(b: Uint8Array, p: number): number {
  if (p + 1 > b.length) throw truncated(p)
  return b[p]!
}

function u16(b: Uint8Array, p: number): number {
  if (p + 2 > b.length) throw truncated(p)
  return (b[p]! << 8) | b[p + 1]!
}

function u32(b: Uint8Array, p: number): number {
  if (p + 4 > b.length) throw truncated(p)
  return b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!)
}

function refused(offset: number, what: string): MsgpackError {
  return new MsgpackError(`${what} at byte ${offset}`, offset)
}

function truncated(offset: number): MsgpackError {
  return new MsgpackError(`truncated MessagePack: the value at byte ${offset} runs past the end`, offset)
}

function duplicate(offset: number): MsgpackError {
  return new MsgpackError(`a map key repeated at byte ${offset} (keys are distinct)`, offset)
}

// ---------------------------------------------------------------------------------------------
// Writing

const SCRATCH_BYTES_INITIAL = 16 * 1024
/** After a large encode (a snapshot), the scratch buffer goes back to its initial size rather than hold the memory. */
const SCRATCH_BYTES_KEPT_MAX = 1024 * 1024

let scratch = new Uint8Array(SCRATCH_BYTES_INITIAL)
let position = 0
const textEncoder = new TextEncoder()

/**
 * Encodes `value` as wire MessagePack: null, booleans, integers in [0, 2^53 - 1], strings,
 * Uint8Arrays (bin), arrays and plain objects (maps; entries whose value is undefined are left out).
 * Anything else (a fraction, a negative or unsafe number, a bigint, undefined outside a map, a Map,
 * a Date, a class instance, nesting beyond MSGPACK_DEPTH_MAX) throws MsgpackError, nothing is written.
 * Returns a fresh Uint8Array the caller owns.
 */
export function packWire(value: unknown): Uint8Array {
  position = 0
  try {
    writeValue(value, 0)
    return scratch.slice(0, position)
  } finally {
    if (scratch.length > SCRATCH_BYTES_KEPT_MAX) scratch = new Uint8Array(SCRATCH_BYTES_INITIAL)
  }
}

function ensure(bytes: number): void {
  if (position + bytes <= scratch.length) return
  const grown = new Uint8Array(Math.max(scratch.length * 2, position + bytes))
  // The whole buffer, not just what is before `position`: writeString has bytes past it when its
  // header is written.
  grown.set(scratch)
  scratch = grown
}

function writeValue(value: unknown, depth: number): void {
  switch (typeof value) {
    case 'number':
      writeInteger(value)
      return
    case 'string':
      writeString(value)
      return
    case 'boolean':
      ensure(1)
      scratch[position++] = value ? 0xc3 : 0xc2
      return
    case 'object':
      if (value === null) {
        ensure(1)
        scratch[position++] = 0xc0
        return
      }
      if (value instanceof Uint8Array) {
        writeBin(value)
        return
      }
      if (depth >= MSGPACK_DEPTH_MAX) throw cannotWrite(`containers nested deeper than ${MSGPACK_DEPTH_MAX}`)
      if (Array.isArray(value)) {
        writeArray(value, depth)
        return
      }
      {
        const prototype = Object.getPrototypeOf(value)
        if (prototype !== Object.prototype && prototype !== null) {
          throw cannotWrite(`a ${(value as object).constructor?.name ?? 'non-plain'} object (only plain maps)`)
        }
      }
      writeMap(value as Record<string, unknown>, depth)
      return
    default:
      throw cannotWrite(`a value of type ${typeof value}`)
  }
}

function writeInteger(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw cannotWrite(`the number ${value} (integers in [0, 2^53 - 1] only)`)
  }
  ensure(9)
  const b = scratch
  let p = position
  if (value < 0x80) {
    b[p++] = value
  } else if (value < 0x100) {
    b[p++] = 0xcc
    b[p++] = value
  } else if (value < 0x10000) {
    b[p++] = 0xcd
    b[p++] = value >>> 8
    b[p++] = value & 0xff
  } else if (value < 0x100000000) {
    b[p++] = 0xce
    p = writeWord(b, p, value)
  } else {
    b[p++] = 0xcf
    p = writeWord(b, p, Math.floor(value / 0x100000000))
    p = writeWord(b, p, value >>> 0)
  }
  position = p
}

function writeWord(b: Uint8Array, p: number, word: number): number {
  b[p] = word >>> 24
  b[p + 1] = (word >>> 16) & 0xff
  b[p + 2] = (word >>> 8) & 0xff
  b[p + 3] = word & 0xff
  return p + 4
}

/** The header of a str, bin, array or map of `length`: a fix format up to `fixMax`, else the 8/16/32-bit type byte (`f8` 0: none). */
function writeHeader(length: number, fixBase: number, fixMax: number, f8: number, f16: number, f32: number): void {
  ensure(5)
  const b = scratch
  if (length <= fixMax) {
    b[position++] = fixBase | length
  } else if (f8 !== 0 && length < 0x100) {
    b[position++] = f8
    b[position++] = length
  } else if (length < 0x10000) {
    b[position++] = f16
    b[position++] = length >>> 8
    b[position++] = length & 0xff
  } else {
    b[position++] = f32
    position = writeWord(b, position, length)
  }
}

function writeString(value: string): void {
  const charCount = value.length
  // Fast path, most strings on the wire (keys, peer ids, multiaddrs, versions): short ASCII, where
  // bytes equal chars, so the header is known before the bytes are written.
  if (charCount < 0x100) {
    const header = charCount < 32 ? 1 : 2
    ensure(header + charCount)
    const b = scratch
    const start = position + header
    let i = 0
    for (; i < charCount; i++) {
      const code = value.charCodeAt(i)
      if (code >= 0x80) break
      b[start + i] = code
    }
    if (i === charCount) {
      if (header === 1) {
        b[position] = 0xa0 | charCount
      } else {
        b[position] = 0xd9
        b[position + 1] = charCount
      }
      position = start + charCount
      return
    }
  }
  // UTF-8 takes at most 3 bytes per UTF-16 code unit. Reserve for the worst case, with the header
  // the worst case needs; move the bytes back if the real length needs a shorter header.
  const bytesMax = charCount * 3
  const headerGuess = bytesMax < 32 ? 1 : bytesMax < 0x100 ? 2 : bytesMax < 0x10000 ? 3 : 5
  ensure(headerGuess + bytesMax)
  const start = position + headerGuess
  const length = textEncoder.encodeInto(value, scratch.subarray(start)).written
  const header = length < 32 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5
  if (header < headerGuess) scratch.copyWithin(position + header, start, start + length)
  writeHeader(length, 0xa0, 31, 0xd9, 0xda, 0xdb)
  position += length
}

function writeBin(value: Uint8Array): void {
  writeHeader(value.length, 0, -1, 0xc4, 0xc5, 0xc6)
  ensure(value.length)
  scratch.set(value, position)
  position += value.length
}

function writeArray(value: readonly unknown[], depth: number): void {
  writeHeader(value.length, 0x90, 15, 0, 0xdc, 0xdd)
  for (let i = 0; i < value.length; i++) {
    const element = value[i]
    if (element === undefined) throw cannotWrite(`undefined at array position ${i} (arrays hold values only)`)
    writeValue(element, depth + 1)
  }
}

function writeMap(value: Record<string, unknown>, depth: number): void {
  const keys = Object.keys(value)
  let count = 0
  for (let i = 0; i < keys.length; i++) if (value[keys[i]!] !== undefined) count++
  writeHeader(count, 0x80, 15, 0, 0xde, 0xdf)
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    const entry = value[key]
    if (entry === undefined) continue
    if (key === '__proto__') throw cannotWrite('the map key "__proto__" (no map of the protocol has it)')
    writeString(key)
    writeValue(entry, depth + 1)
  }
}

function cannotWrite(what: string): MsgpackError {
  return new MsgpackError(`cannot write ${what} as wire MessagePack`, position)
}
