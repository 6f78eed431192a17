import { mkdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { runChaos } from '../../packages/testkit/src/chaos/run.ts'
import type { ChaosOptions, ChaosReport } from '../../packages/testkit/src/chaos/run.ts'
import { writeReport } from '../../packages/testkit/src/chaos/report.ts'
import type { NemesisName } from '../../packages/testkit/src/process/nemesis.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..')

/**
 * The short version of one nemesis (issue 6): 3 replicas in a network namespace, five clients on
 * five keys, the fault injected and healed `cycles` times. Passes when the history is
 * linearizable, no acknowledged write is lost, no two replicas led in one term, and the cluster
 * recovered after every heal. A failing run keeps its history, report, timeline and replica logs
 * in .run/chaos-tests/ and names the dir in the assertion message.
 */
export async function expectNemesisSurvived(
  nemesis: NemesisName,
  options: Partial<ChaosOptions> = {},
): Promise<ChaosReport> {
  const runDir = join(ROOT, '.run/chaos-tests', `${nemesis}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  mkdirSync(runDir, { recursive: true })
  const seed = options.seed ?? Math.floor(Math.random() * 1_000_000)
  const report = await runChaos({
    nemeses: [nemesis],
    replicas: 3,
    cycles: 2,
    warmupMs: 1_500,
    holdMs: 3_000,
    quietMs: 1_000,
    runDir,
    seed,
    ...options,
  })
  writeReport(report, runDir)
  const where = `seed ${seed}; report ${join(runDir, 'report.md')}`
  expect(
    report.faults.map((fault) => fault.kind),
    where,
  ).toEqual(Array.from({ length: options.cycles ?? 2 }, () => nemesis))
  expect(report.findings, where).toEqual([])
  expect(report.splitBrain, where).toEqual([])
  expect(report.lostWrites, where).toEqual([])
  expect(report.verdict.failures, where).toEqual([])
  expect(report.verdict.valid, where).toBe(true)
  // The workload really ran and every key was read at the end (a low bar: this machine is shared, and
  // a loaded one restarts replicas slowly).
  expect(report.ops.writeOk, where).toBeGreaterThan(20)
  expect(report.ops.readOk, where).toBeGreaterThan(20)
  // Every client, the sticky readers included, got answers (a client that only failed would check nothing).
  for (const client of report.clients) expect(client.ok, `client ${client.index}; ${where}`).toBeGreaterThan(5)
  expect(
    report.keys.every((key) => key.finalSeq !== 'unreadable'),
    where,
  ).toBe(true)
  if (report.valid) rmSync(runDir, { recursive: true, force: true })
  return report
}
