import { defineConfig } from 'vitest/config'

/**
 * Cross-package tests on real replica processes (test/). One file at a time: each starts its own
 * cluster of processes, and two at once on a 2-core machine would starve each other's heartbeats.
 */
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 300_000,
    // A fresh cluster's first leader can take 15 s at a load of 30 (replicas import from source).
    hookTimeout: 180_000,
    reporters: ['default'],
    // Every CLI a test runs is its own process, as before the agent; test/cli-agent.test.ts turns it on.
    env: { NODELEDGER_AGENT: 'off' },
  },
})
