import { describe, expect, it } from 'vitest'
import { MemoryStorage } from '../src/index.ts'
import { storageSuite } from './storage-suite.ts'

storageSuite('MemoryStorage', () => new MemoryStorage())

describe('MemoryStorage.bootstrap', () => {
  it('records the founding membership as a snapshot at index 1, term 1, committed', () => {
    const conf = { voters: [1, 2, 3], learners: [4] }
    const storage = MemoryStorage.bootstrap(conf)
    expect(storage.snapshot().metadata).toEqual({ index: 1, term: 1, confState: conf })
    expect(storage.initialState()).toEqual({ hardState: { term: 1, vote: 0, commit: 1 }, confState: conf })
    expect(storage.firstIndex()).toBe(2)
    expect(storage.lastIndex()).toBe(1)
    expect(storage.term(1)).toBe(1)
  })
})
