import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { levelFailure, writeMarkerFile } from '../src/index.ts'

describe('levelFailure', () => {
  it('reads the code from the cause first (abstract-level wraps the real error)', () => {
    const wrapped = Object.assign(new Error('Database failed to open'), {
      code: 'LEVEL_DATABASE_NOT_OPEN',
      cause: Object.assign(new Error('lock held'), { code: 'LEVEL_LOCKED' }),
    })
    expect(levelFailure(wrapped)).toEqual({ kind: 'LOCKED', code: 'LEVEL_LOCKED', detail: 'lock held' })
  })
  it('maps corruption to CORRUPT and everything else to IO', () => {
    expect(levelFailure(Object.assign(new Error('bad block'), { code: 'LEVEL_CORRUPTION' })).kind).toBe('CORRUPT')
    expect(levelFailure(new Error('disk full'))).toEqual({ kind: 'IO', code: undefined, detail: 'disk full' })
    expect(levelFailure(null).kind).toBe('IO')
  })
})

describe('writeMarkerFile', () => {
  it('writes the marker with its content', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodeledger-marker-'))
    try {
      await writeMarkerFile(dir, 'MARK', 'hello\n')
      expect(readFileSync(join(dir, 'MARK'), 'utf8')).toBe('hello\n')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
