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
    // Every CLI a test runs is its own process, as before the agent; test/cli-agent.test.ts turns it on.
    env: { NODELEDGER_AGENT: 'off' },
  },
})
