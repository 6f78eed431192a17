/**
 * `pnpm mutants`: plant one bug at a time, on purpose, in a scratch copy of the Raft core or of the
 * replica's driver, and show that the simulator catches each within the seed budget. Per mutation it
 * prints CAUGHT or SURVIVED, the first failing seed (and the first 3- and 5-voter ones: even seeds
 * run 3 voters, odd seeds 5), how many seeds failed and the first violation, then a table. It exits
 * non-zero if an unsafe mutation survives, if a mutation marked safe is caught (a false alarm or a
 * wrong analysis), or if the un-mutated scratch copy fails. The working tree is never touched.
 *
 * Usage: pnpm mutants [--seeds 500] [--from 1] [--workers 2] [--only id,id,...] [--no-baseline] [--list]
 *        pnpm mutants --only id --replay SEED   (the mutated simulator's whole trace of one seed)
 */
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const CORE = 'packages/raft/src'
const DRIVER = 'packages/authority/src/replica/driver.ts'

interface Edit {
  /** Path from the repository root: a file of the core (packages/raft/src) or the driver. */
  file: string
  find: string
  replace: string
}

interface Mutation {
  id: string
  name: string
  edits: Edit[]
  /** Safe mutations (equivalent to the original) must survive; everything else must be caught. */
  safe?: true
}

const MUTATIONS: Mutation[] = [
  {
    id: 'figure8',
    name: 'commit an entry of an older term by counting replicas (Raft §5.4.2, Figure 8)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: 'if (this.log.term(quorumIndex) !== this.term) return false',
        replace: 'if (this.log.term(quorumIndex) === undefined) return false',
      },
    ],
  },
  {
    id: 'double-vote',
    name: 'grant a second vote in the same term (Raft §5.2)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: '(this.vote === NONE && this.lead === NONE) ||',
        replace: 'this.lead === NONE ||',
      },
    ],
  },
  {
    id: 'vote-not-persisted',
    name: 'do not persist the vote (Raft Figure 2: votedFor is persistent state)',
    edits: [{ file: `${CORE}/raw-node.ts`, find: 'vote: this.#raft.vote, commit', replace: 'vote: 0, commit' }],
  },
  {
    id: 'vote-log-check',
    name: 'vote without the up-to-date log check (Raft §5.4.1)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: 'if (canVote && this.log.isUpToDate(message.index ?? 0, message.logTerm ?? 0)) {',
        replace: 'if (canVote) {',
      },
    ],
  },
  {
    id: 'readindex-no-round',
    name: 'serve ReadIndex without confirming leadership by a heartbeat round (thesis §6.4)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: 'if (mode === ReadMode.Lease && this.leaseValid()) {',
        replace: 'if (mode === ReadMode.Lease || this.leaseValid() || true) {',
      },
    ],
  },
  {
    id: 'readindex-quorum-short',
    name: 'release a ReadIndex one acknowledgement short of a quorum (2 of 5; in 3 voters only a leader outside the voters)',
    edits: [
      {
        file: `${CORE}/read-only.ts`,
        find: 'if (acked < majority(voters.size)) return []',
        replace: 'if (acked + 1 < majority(voters.size)) return []',
      },
    ],
  },
  {
    id: 'lease-never-expires',
    name: 'a leader lease never expires once a quorum acknowledged a heartbeat (thesis §6.4.1)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: 'return this.tickCount < leaseStartTick + this.config.electionTimeoutTicks - this.config.leaseMarginTicks',
        replace: 'return true',
      },
    ],
  },
  {
    id: 'lease-read-no-clock-catch-up',
    name: 'driver: a lease read does not bring the lease clock up to date first (a paused leader trusts a lapsed lease)',
    edits: [{ file: DRIVER, find: 'if (mode === ReadMode.Lease) this.#catchUpClock()', replace: '' }],
  },
  {
    id: 'timer-ignores-stalls',
    name: 'driver: a late tick timer delivers one tick and does not report the stall to the lease clock',
    edits: [
      { file: DRIVER, find: 'if (owed >= DRIVER_DEFAULTS.stallTicksMin) this.#reportStall(owed - 1)', replace: '' },
    ],
  },
  {
    id: 'prevote-raises-term',
    name: 'a PreVote at a higher term raises the receiver’s term (thesis §9.6)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: '// A pre-vote at a higher term changes nothing here.',
        replace: 'this.becomeFollower(message.term, NONE)',
      },
    ],
  },
  {
    id: 'conf-change-two-at-once',
    name: 'accept a membership change while another is uncommitted (thesis §4.1: one at a time)',
    edits: [
      { file: `${CORE}/raft.ts`, find: 'if (this.lastConfIndex() > this.log.committed) {', replace: 'if (false) {' },
    ],
  },
  // Survives 500 seeds today. Unsafe only with an even-sized membership C0 (4 voters): leader S1's
  // change C1 reaches no other C0 voter, S2 is elected by the rest and at once proposes its own C2;
  // C2 commits on a quorum disjoint from a C1 quorum only if a voter that elected S2 then misses
  // S2's first append (its no-op goes to every voter at election) until S1 campaigns in C1.
  {
    id: 'conf-change-before-term-commit',
    name: 'accept a membership change before committing an entry of the leader’s term (single-server change errata)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: "if (!this.committedInCurrentTerm())\n      throw new RaftError('DROPPED', 'leader has not committed an entry of its term yet')",
        replace: 'void 0',
      },
    ],
  },
  {
    id: 'empty-log-votes',
    name: 'an empty log (a replica that lost its disk) grants votes',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: 'if (this.log.lastIndex() === 0) {\n      // An empty log is a replica that lost its disk',
        replace: 'if (false) {\n      // An empty log is a replica that lost its disk',
      },
    ],
  },
  {
    id: 'lost-voter-restored-in-place',
    name: 'a voter that lost its disk is restored in place (it takes a snapshot as a voter; the leader ignores its empty-log hint)',
    edits: [
      {
        file: `${CORE}/raft.ts`,
        find: 'if (this.log.lastIndex() === 0 && metadata.confState.voters.includes(this.id)) {',
        replace: 'if (false) {',
      },
      {
        file: `${CORE}/raft.ts`,
        find: 'if ((message.rejectHint ?? 0) === 0 && this.voters.has(from)) {',
        replace: 'if (false) {',
      },
    ],
  },
  {
    id: 'send-before-persist',
    name: 'driver: send a Ready’s messages before its write is durable (acks and votes for state a crash forgets)',
    edits: [
      {
        file: DRIVER,
        find: 'const startedMs = this.#time.nowMs()\n    const update: StorageUpdate = {',
        replace:
          'this.#transport.send(ready.messages.splice(0))\n    const startedMs = this.#time.nowMs()\n    const update: StorageUpdate = {',
      },
    ],
  },
  {
    id: 'never-sync',
    name: 'driver: every write is unsynced (Ready.mustSync ignored): a power loss forgets entries, terms and votes',
    edits: [{ file: DRIVER, find: 'sync: ready.mustSync,', replace: 'sync: false,' }],
  },
]

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '500' },
    from: { type: 'string', default: '1' },
    workers: { type: 'string', default: '2' },
    only: { type: 'string' },
    'no-baseline': { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    /** Replay one seed of the (single) --only mutation with its whole trace. */
    replay: { type: 'string' },
  },
})

if (args.list) {
  for (const mutation of MUTATIONS)
    console.log(`${mutation.id.padEnd(32)} ${mutation.edits.map((edit) => edit.file).join(', ')}  ${mutation.name}`)
  process.exit(0)
}

const seedBudget = positiveInteger(args.seeds, '--seeds')
const firstSeed = positiveInteger(args.from, '--from')
const workers = positiveInteger(args.workers, '--workers')
const wanted = args.only?.split(',').map((id) => id.trim())
for (const id of wanted ?? [])
  if (!MUTATIONS.some((mutation) => mutation.id === id)) throw new Error(`--only: no mutation "${id}" (see --list)`)
const selected = MUTATIONS.filter((mutation) => wanted === undefined || wanted.includes(mutation.id))

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// The testkit's own copy of commander (pnpm links it into the package's node_modules).
const commanderDir = realpathSync(join(root, 'packages/testkit/node_modules/commander'))

interface Outcome {
  mutation: Mutation
  failed: number[]
  violation: string
  summary: string
}

/**
 * A scratch tree that resolves like the workspace, with the core and the driver copied so they can
 * be mutated: node_modules/@nodeledger/raft -> raft/, node_modules/@nodeledger/authority ->
 * authority/ (exposing only ./driver, whose own `@nodeledger/raft` import finds the scratch core).
 * Symlinked, so Node strips types (it refuses .ts whose real path is inside node_modules).
 */
function buildScratch(): string {
  const scratch = mkdtempSync(join(tmpdir(), 'nodeledger-mutant-'))
  mkdirSync(join(scratch, 'node_modules/@nodeledger'), { recursive: true })
  cpSync(join(root, 'packages/raft'), join(scratch, 'raft'), {
    recursive: true,
    filter: (source) => !source.includes('node_modules'),
  })
  mkdirSync(join(scratch, 'authority/src/replica'), { recursive: true })
  cpSync(join(root, DRIVER), join(scratch, 'authority/src/replica/driver.ts'))
  writeFileSync(
    join(scratch, 'authority/package.json'),
    JSON.stringify({
      name: '@nodeledger/authority',
      type: 'module',
      exports: { './driver': './src/replica/driver.ts' },
    }),
  )
  cpSync(join(root, 'packages/testkit/src'), join(scratch, 'testkit/src'), { recursive: true })
  writeFileSync(join(scratch, 'testkit/package.json'), '{"type":"module"}')
  symlinkSync(join(scratch, 'raft'), join(scratch, 'node_modules/@nodeledger/raft'))
  symlinkSync(join(scratch, 'authority'), join(scratch, 'node_modules/@nodeledger/authority'))
  symlinkSync(commanderDir, join(scratch, 'node_modules/commander'))
  return scratch
}

function scratchPath(scratch: string, file: string): string {
  if (file === DRIVER) return join(scratch, 'authority/src/replica/driver.ts')
  if (file.startsWith(`${CORE}/`)) return join(scratch, 'raft/src', file.slice(CORE.length + 1))
  throw new Error(`mutations apply to the core (${CORE}) or the driver (${DRIVER}), not ${file}`)
}

/** Each edit's pattern must occur exactly once in the file as it is now (after the mutation's earlier edits). */
function mutate(mutation: Mutation, read: (file: string) => string, write: (file: string, text: string) => void): void {
  for (const edit of mutation.edits) {
    const source = read(edit.file)
    const at = source.indexOf(edit.find)
    if (at < 0 || source.indexOf(edit.find, at + 1) >= 0)
      throw new Error(
        `mutation ${mutation.id}: pattern ${at < 0 ? 'not found' : 'found more than once'} in ${edit.file}: ${JSON.stringify(edit.find)}; update scripts/mutation-check.ts`,
      )
    write(edit.file, source.slice(0, at) + edit.replace + source.slice(at + edit.find.length))
  }
}

function applyEdits(scratch: string, mutation: Mutation): void {
  mutate(
    mutation,
    (file) => readFileSync(scratchPath(scratch, file), 'utf8'),
    (file, text) => writeFileSync(scratchPath(scratch, file), text),
  )
}

/** Fail before running anything if any selected mutation no longer matches the source. */
function checkPatterns(): void {
  for (const mutation of selected) {
    const texts = new Map<string, string>()
    mutate(
      mutation,
      (file) => {
        scratchPath('', file)
        return texts.get(file) ?? readFileSync(join(root, file), 'utf8')
      },
      (file, text) => texts.set(file, text),
    )
  }
}

function run(mutation: Mutation): Outcome {
  const scratch = buildScratch()
  try {
    applyEdits(scratch, mutation)
    const result = spawnSync(
      process.execPath,
      [
        join(scratch, 'testkit/src/cli/sim.ts'),
        '--seeds',
        String(seedBudget),
        '--from',
        String(firstSeed),
        '--workers',
        String(workers),
        '--quiet',
      ],
      { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 },
    )
    const output = result.stdout
    const summary = output.trim().split('\n').pop() ?? ''
    if (!/^seeds=\d+ /.test(summary))
      throw new Error(
        `mutation ${mutation.id}: the simulator did not finish:\n${output.slice(-2000)}\n${result.stderr}`,
      )
    const failed = [...output.matchAll(/^seed (\d+) FAILED/gm)].map((match) => Number(match[1])).sort((a, b) => a - b)
    const violation =
      failed.length === 0
        ? ''
        : (output
            .split(`seed ${failed[0]} FAILED`)[1]
            ?.split('\n')
            .find((line) => line.includes('violation:'))
            ?.trim()
            .replace(/^violation: /, '') ?? '')
    return { mutation, failed, violation, summary }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

function positiveInteger(value: string | undefined, flag: string): number {
  const parsed = Number(value)
  if (!Number.isSafeInteger(parsed) || parsed <= 0) throw new Error(`${flag} takes a positive integer (got "${value}")`)
  return parsed
}

function firstWith(failed: number[], voters: 3 | 5): string {
  const seed = failed.find((candidate) => (candidate % 2 === 0 ? 3 : 5) === voters)
  return seed === undefined ? '-' : String(seed)
}

checkPatterns()
if (args.replay !== undefined) {
  if (selected.length !== 1) throw new Error('--replay needs exactly one mutation in --only')
  const scratch = buildScratch()
  try {
    applyEdits(scratch, selected[0]!)
    spawnSync(process.execPath, [join(scratch, 'testkit/src/cli/sim.ts'), '--seed', args.replay, '--trace'], {
      stdio: 'inherit',
    })
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  process.exit(0)
}
let problems = 0
if (!args['no-baseline']) {
  const baseline = run({ id: 'baseline', name: 'the un-mutated scratch copy', edits: [] })
  if (baseline.failed.length > 0) {
    problems++
    console.log(`BASELINE FAILED  seed ${baseline.failed[0]}: ${baseline.violation.slice(0, 300)}`)
  } else console.log(`baseline ok      ${baseline.summary}`)
}
const outcomes: Outcome[] = []
for (const mutation of selected) {
  const outcome = run(mutation)
  outcomes.push(outcome)
  const caught = outcome.failed.length > 0
  const verdict = caught ? 'CAUGHT  ' : 'SURVIVED'
  const unexpected = caught === (mutation.safe === true)
  if (unexpected) problems++
  console.log(
    `${verdict}  ${mutation.id} (${mutation.edits.map((edit) => edit.file).join(', ')})${unexpected ? '  <-- unexpected' : ''}`,
  )
  console.log(`          ${mutation.name}`)
  if (caught)
    console.log(
      `          first failing seed ${outcome.failed[0]} (3 voters: ${firstWith(outcome.failed, 3)}, 5 voters: ${firstWith(outcome.failed, 5)}); ${outcome.failed.length} of ${seedBudget} seeds failed\n          ${outcome.violation.slice(0, 300)}`,
    )
  else console.log(`          ${outcome.summary}`)
}
console.log(
  `\n| mutation | file | first failing seed | 3 voters | 5 voters | seeds failed / ${seedBudget} | violation |`,
)
console.log('|---|---|---|---|---|---|---|')
for (const { mutation, failed, violation } of outcomes) {
  const files = [...new Set(mutation.edits.map((edit) => edit.file.split('/').pop()))].join(', ')
  const shortened = violation
    .replace(/^step \d+: /, '')
    .slice(0, 110)
    .replaceAll('|', '/')
  console.log(
    `| ${mutation.id}${mutation.safe ? ' (safe)' : ''} | ${files} | ${failed[0] ?? 'SURVIVED'} | ${firstWith(failed, 3)} | ${firstWith(failed, 5)} | ${failed.length} | ${shortened} |`,
  )
}
process.exitCode = problems > 0 ? 1 : 0
