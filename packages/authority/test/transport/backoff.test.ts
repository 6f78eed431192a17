import { describe, expect, it } from 'vitest'
import { backoffDelayMs } from '../../src/transport/index.ts'

describe('backoffDelayMs', () => {
  it('doubles from the base, stays within [ceiling/2, ceiling], and caps at the maximum', () => {
    const low = (): number => 0
    const high = (): number => 1
    expect([1, 2, 3, 4].map((attempt) => backoffDelayMs(attempt, 100, 1000, high))).toEqual([100, 200, 400, 800])
    expect([1, 2, 3, 4].map((attempt) => backoffDelayMs(attempt, 100, 1000, low))).toEqual([50, 100, 200, 400])
    expect(backoffDelayMs(5, 100, 1000, high)).toBe(1000)
    expect(backoffDelayMs(500, 100, 1000, high)).toBe(1000) // no overflow for long outages
    expect(backoffDelayMs(500, 100, 1000, low)).toBe(500)
  })

  it('refuses an attempt below 1', () => {
    expect(() => backoffDelayMs(0, 100, 1000, Math.random)).toThrow()
  })
})
