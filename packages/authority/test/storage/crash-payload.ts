/** What each entry the crash writer appends carries: a pure function of (index, term), so the parent can check every entry it reads back. */
const ENTRY_BYTES_MAX = 600

export function entryData(index: number, term: number): Uint8Array {
  const length = (index * 13 + term * 7) % ENTRY_BYTES_MAX
  const data = new Uint8Array(length)
  for (let i = 0; i < length; i++) data[i] = (index * 31 + term * 17 + i) & 0xff
  return data
}
