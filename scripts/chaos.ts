/**
 * `pnpm chaos`: a long fault-injection run on real replica processes in a network namespace,
 * cycling through the nemeses while five clients write and read, then judging the history.
 *
 *   pnpm chaos --nemesis all|<name>[,<name>] --minutes 10 [--replicas 3|5] [--out DIR] [--seed N]
 *              [--lease-reads | --no-lease-reads]
 *
 * Lease reads (cluster file timing.leaseReads, and the sticky readers reading at `lease`) are on
 * for the whole run when pause-leader is among the nemeses, off otherwise; --lease-reads or
 * --no-lease-reads decides instead. The writers' reads stay linearizable either way.
 *
 * Writes report.json, report.md and timeline.svg to the run dir (default .run/chaos/<timestamp>/).
 * Exit 0 when the history is linearizable, no acknowledged write was lost, no two leaders shared a
 * term and the cluster recovered after every fault; 1 otherwise; 2 on bad arguments. Needs root
 * (or CAP_NET_ADMIN) with iptables and faketime installed.
 */
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import { runChaos } from '../packages/testkit/src/chaos/run.ts'
import type { ChaosReport } from '../packages/testkit/src/chaos/run.ts'
import { writeReport } from '../packages/testkit/src/chaos/report.ts'
import { NEMESIS_NAMES, parseNemeses } from '../packages/testkit/src/process/nemesis.ts'
import type { NemesisName } from '../packages/testkit/src/process/nemesis.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const MINUTES_MAX = 24 * 60

interface Options {
  nemeses: NemesisName[]
  minutes: number
  replicas: 3 | 5
  out: string
  seed: number | undefined
  leaseReads: boolean | undefined
}

function parseOptions(): Options {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== '--'),
    options: {
      nemesis: { type: 'string', default: 'all' },
      minutes: { type: 'string', default: '10' },
      replicas: { type: 'string', default: '3' },
      out: { type: 'string' },
      seed: { type: 'string' },
      'lease-reads': { type: 'boolean' },
      'no-lease-reads': { type: 'boolean' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    console.log(
      `usage: pnpm chaos --nemesis all|<name>[,<name>] --minutes 10 [--replicas 3|5] [--out DIR] [--seed N] [--lease-reads|--no-lease-reads]\nnemeses: ${NEMESIS_NAMES.join(', ')}\nlease reads: on by default when pause-leader is among the nemeses`,
    )
    process.exit(0)
  }
  const minutes = Number(values.minutes)
  if (!(minutes > 0 && minutes <= MINUTES_MAX)) throw new TypeError(`--minutes must be in (0, ${MINUTES_MAX}]`)
  if (values.replicas !== '3' && values.replicas !== '5') throw new TypeError('--replicas must be 3 or 5')
  if (values['lease-reads'] === true && values['no-lease-reads'] === true)
    throw new TypeError('--lease-reads and --no-lease-reads contradict each other')
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  return {
    nemeses: parseNemeses(values.nemesis),
    minutes,
    replicas: values.replicas === '5' ? 5 : 3,
    out: values.out ?? join(ROOT, '.run/chaos', stamp),
    seed: values.seed === undefined ? undefined : Number(values.seed),
    leaseReads: values['lease-reads'] === true ? true : values['no-lease-reads'] === true ? false : undefined,
  }
}

async function main(): Promise<number> {
  let options: Options
  try {
    options = parseOptions()
  } catch (error) {
    console.error(`chaos: ${(error as Error).message}`)
    return 2
  }
  const durationMs = Math.round(options.minutes * 60_000)
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format:
        'chaos |{bar}| {percentage}% {elapsed_s}/{total_s} s | fault {faults} {nemesis} | ops {ops} | leader {leader}',
      barsize: 30,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 10_000,
    },
    cliProgress.Presets.shades_classic,
  )
  const totalS = Math.round(durationMs / 1000)
  bar.start(totalS, 0, { elapsed_s: 0, total_s: totalS, faults: 0, nemesis: 'starting', ops: 0, leader: '-' })
  const leaseReads = options.leaseReads ?? options.nemeses.includes('pause-leader')
  console.error(
    `chaos: ${options.nemeses.join(', ')} for ${options.minutes} min on ${options.replicas} replicas, lease reads ${leaseReads ? 'on' : 'off'}; run dir ${options.out}`,
  )
  let report: ChaosReport
  try {
    report = await runChaos({
      nemeses: options.nemeses,
      replicas: options.replicas,
      durationMs,
      runDir: options.out,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.leaseReads === undefined ? {} : { leaseReads: options.leaseReads }),
      onProgress: (progress) => {
        const elapsedS = Math.round(progress.elapsedMs / 1000)
        bar.update(Math.min(elapsedS, totalS), {
          elapsed_s: elapsedS,
          total_s: totalS,
          faults: progress.faults,
          nemesis: progress.nemesis,
          ops: progress.ops,
          leader: progress.leader === undefined ? '-' : `r${progress.leader}`,
        })
      },
      // On a terminal the bar redraws in place and a log line would tear it; elsewhere, every fault is a line.
      ...(process.stderr.isTTY ? {} : { log: (message: string) => console.error(`chaos: ${message}`) }),
    })
  } finally {
    bar.stop()
  }
  const paths = writeReport(report, options.out)
  const verdict =
    report.verdict.valid === true ? 'linearizable' : report.verdict.valid === false ? 'NOT linearizable' : 'unknown'
  console.log(
    `${report.valid ? 'PASS' : 'FAIL'}: ${report.ops.total} ops (writes ok ${report.ops.writeOk}, info ${report.ops.writeInfo}; reads ok ${report.ops.readOk}, fail ${report.ops.readFail}), ${report.faults.length} faults, ${report.leaderChanges} leader changes, unavailable ${(report.unavailability.totalMs / 1000).toFixed(1)} s in ${report.unavailability.windows.length} windows (longest ${(report.unavailability.longestMs / 1000).toFixed(1)} s), history ${verdict}, ${report.lostWrites.length} lost writes, ${report.splitBrain.length} split brain, ${report.findings.length} findings`,
  )
  for (const problem of [
    ...report.verdict.failures.map((failure) => `${failure.key}: ${failure.explanation}`),
    ...report.lostWrites.map((lost) => `lost ${lost.key} seq ${lost.acknowledgedSeq}`),
    ...report.splitBrain,
    ...report.findings,
  ])
    console.log(`  ${problem}`)
  console.log(
    `clients: ${report.clients.map((client) => `${client.index} ${client.role} ${client.implementation}${client.sticky ? ' sticky' : ''} ${client.readConsistency}`).join('; ')}`,
  )
  console.log(`members at the end: ${report.finalMembers.map((id) => `r${id}`).join(' ')}`)
  console.log(`report: ${paths.markdown}\ntimeline: ${paths.svg}`)
  return report.valid ? 0 : 1
}

// Ctrl-C or a kill: exit through process.exit, so the namespace (and whatever runs in it) is removed.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`chaos: ${(error as Error).stack ?? String(error)}`)
    process.exit(1)
  },
)
