import { defineConfig } from 'vitest/config'

/** Unit, property and simulator tests of every package. Integration tests: vitest.integration.config.ts. */
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    // The simulator seeds are CPU-bound; two workers match this machine's two cores.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    reporters: ['default'],
  },
})
