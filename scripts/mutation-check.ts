/**
 * `pnpm mutants`: break one Raft rule at a time, on purpose, in a scratch copy of the core, and show
 * that the simulator catches each. Prints, per mutation, the first seed that fails and its violation.
 * A mutation that survives the seed budget exits non-zero: the simulator would be blind to it.
 * The working tree is never touched.
 */
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

interface Mutation {
  name: string
  file: string
  find: string
  replace: string
}

const MUTATIONS: Mutation[] = [
  {
    name: 'commit an entry of an older term by counting replicas (Raft §5.4.2, Figure 8)',
    file: 'raft.ts',
    find: 'if (this.log.term(quorumIndex) !== this.term) return false',
    replace: 'if (this.log.term(quorumIndex) === undefined) return false',
  },
  {
    name: 'grant a second vote in the same term (Raft §5.2)',
    file: 'raft.ts',
    find: '(this.vote === NONE && this.lead === NONE) ||',
    replace: 'this.lead === NONE ||',
  },
  {
    name: 'do not persist the vote (Raft Figure 2: votedFor is persistent state)',
    file: 'raw-node.ts',
    find: 'vote: this.raft.vote, commit',
    replace: 'vote: 0, commit',
  },
  {
    name: 'vote without the up-to-date log check (Raft §5.4.1)',
    file: 'raft.ts',
    find: 'if (canVote && this.log.isUpToDate(message.index ?? 0, message.logTerm ?? 0)) {',
    replace: 'if (canVote) {',
  },
  {
    name: 'serve ReadIndex without confirming leadership by a heartbeat round (thesis §6.4)',
    file: 'raft.ts',
    find: 'if (mode === ReadMode.Lease && this.leaseValid()) {',
    replace: 'if (mode === ReadMode.Lease || this.leaseValid() || true) {',
  },
]

// Usage: pnpm mutants [seeds=2000] [first-seed=1] [mutation number, 1-based; default all]
const seedBudget = Number(process.argv[2] ?? 2000)
const firstSeed = Number(process.argv[3] ?? 1)
const only = process.argv[4] === undefined ? undefined : Number(process.argv[4])
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// The testkit's own copy of commander (pnpm links it into the package's node_modules).
const commanderDir = realpathSync(join(root, 'packages/testkit/node_modules/commander'))
let survivors = 0

for (const [position, mutation] of MUTATIONS.entries()) {
  if (only !== undefined && only !== position + 1) continue
  const scratch = join(tmpdir(), `nodeledger-mutant-${process.pid}`)
  rmSync(scratch, { recursive: true, force: true })
  try {
    mkdirSync(join(scratch, 'node_modules/@nodeledger'), { recursive: true })
    cpSync(join(root, 'packages/raft'), join(scratch, 'raft'), {
      recursive: true,
      filter: (source) => !source.includes('node_modules'),
    })
    cpSync(join(root, 'packages/testkit/src'), join(scratch, 'testkit/src'), { recursive: true })
    writeFileSync(join(scratch, 'testkit/package.json'), '{"type":"module"}')
    symlinkSync(join(scratch, 'raft'), join(scratch, 'node_modules/@nodeledger/raft'))
    symlinkSync(commanderDir, join(scratch, 'node_modules/commander'))
    const target = join(scratch, 'raft/src', mutation.file)
    const source = readFileSync(target, 'utf8')
    if (!source.includes(mutation.find))
      throw new Error(
        `mutation "${mutation.name}": pattern not found in ${mutation.file}; update scripts/mutation-check.ts`,
      )
    writeFileSync(target, source.replace(mutation.find, mutation.replace))
    const run = spawnSync(
      process.execPath,
      [join(scratch, 'testkit/src/cli/sim.ts'), '--seeds', String(seedBudget), '--from', String(firstSeed), '--quiet'],
      { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    )
    const output = run.stdout
    const failed = [...output.matchAll(/^seed (\d+) FAILED/gm)].map((match) => Number(match[1]))
    const summary = output.trim().split('\n').pop() ?? ''
    if (failed.length === 0) {
      survivors++
      console.log(`SURVIVED  ${mutation.name}\n          ${summary}`)
      continue
    }
    const caughtBy = Math.min(...failed)
    const violation =
      output
        .split(`seed ${caughtBy} FAILED`)[1]
        ?.split('\n')
        .find((line) => line.includes('violation:'))
        ?.trim() ?? ''
    console.log(
      `CAUGHT    ${mutation.name}\n          first failing seed ${caughtBy}; ${failed.length} seeds failed; ${summary}\n          ${violation.slice(0, 240)}`,
    )
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}
process.exitCode = survivors > 0 ? 1 : 0
