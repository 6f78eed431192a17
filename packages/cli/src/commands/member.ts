import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { AuthorityClient } from '@nodeledger/client'
import { loadOrCreateKey } from '@nodeledger/authority/key'
import { ProtocolError } from '@nodeledger/protocol'
import type { MemberResult, MemberStatus, StatusResult } from '@nodeledger/protocol'
import { checkAdvertised } from '../addresses.ts'
import { CliError, EXIT, UsageError } from '../exit-codes.ts'
import { renderTable } from '../output.ts'
import { withClient } from './connect.ts'
import type { ClientCommandOptions, Connection } from './connect.ts'
import { exitCodeOf, gatherView } from './status.ts'

/**
 * Membership from the command line (PROTOCOL.md "Membership"): list, add a learner, promote it
 * once caught up, remove, replace a member whose disk died, and hand leadership over. Every
 * refusal keeps the server's code and exits with its own status (CONFLICT 11, NOT_READY 12,
 * REFUSED 13), with a message that says what to do next.
 */

/** A learner within this many entries of the leader's commit may be promoted (the leader's rule). */
const PROMOTE_LAG_ENTRIES_MAX = 1_000
/** How often --wait and replace look again. */
const POLL_INTERVAL_MS = 500
/**
 * Attempts per request of a membership command: more than a one-shot read's 8. Right after an
 * election or a change, the leader refuses the next change (UNAVAILABLE) until it has committed
 * an entry of its term, which on a loaded machine outlasts the default budget; an operator's
 * command may wait for it (about 15 s at the 500 ms backoff cap).
 */
const MEMBER_ATTEMPTS_MAX = 30
const MEMBER_CLIENT = { attemptsMax: MEMBER_ATTEMPTS_MAX }
/** Ids tried past a retired one before `replace` gives up (ids are never reused). */
const ID_ATTEMPTS_MAX = 64

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** How long a membership command waits for a leader to be known (an election, a transfer under way). */
const LEADER_WAIT_MS = 15_000

/** The leader's status (the membership of record); UNAVAILABLE when none is known within LEADER_WAIT_MS. */
async function leaderStatus(client: AuthorityClient): Promise<StatusResult> {
  const deadline = Date.now() + LEADER_WAIT_MS
  let seen = 'no replica answered'
  for (;;) {
    const statuses = await client.statusAll()
    const leaders = statuses.flatMap((entry) => (entry.status?.role === 'leader' ? [entry.status] : []))
    const newest = leaders.sort((a, b) => b.term - a.term)[0]
    if (newest !== undefined) return newest
    // Members added later are not in the file: ask the leader that those who answered name.
    const hinted = statuses.flatMap((entry) => entry.status?.leader?.multiaddrs[0] ?? [])[0]
    if (hinted !== undefined) {
      try {
        const status = await client.status(hinted)
        if (status.role === 'leader') return status
      } catch {
        // an election under way: look again
      }
    }
    seen = statuses.map((entry) => entry.status?.role ?? entry.error?.code ?? '?').join(', ')
    if (Date.now() >= deadline)
      throw new ProtocolError('UNAVAILABLE', `no replica leads right now (${seen}): membership changes need a leader`)
    await sleep(POLL_INTERVAL_MS)
  }
}

/** Wire refusals, with what to do next. */
function explain(error: unknown, context: { action: string; id?: number }): never {
  if (error instanceof ProtocolError) {
    const hints: Record<string, string> = {
      CONFLICT:
        context.action === 'add'
          ? 'pick another id (ids of removed members are never reused), key or address'
          : `replica ${context.id} is already a voter`,
      NOT_READY: `replica ${context.id} is not caught up yet: run again later, or pass --wait`,
      REFUSED: `the leader cannot remove itself, nor the last voter: nodeledger transfer-leader --to <another voter> first`,
    }
    const hint = hints[error.code]
    if (hint !== undefined) throw new CliError(error.code, `${error.message} (${hint})`)
  }
  throw error
}

export async function memberList(options: ClientCommandOptions): Promise<number> {
  return withClient(options, async ({ client, cluster }) => {
    const view = await gatherView(client, cluster)
    if (view.members.length === 0)
      throw new ProtocolError(
        'UNAVAILABLE',
        `no replica answered with the membership (${view.rows.map((row) => `${row.id}: ${row.error ?? 'no answer'}`).join(', ')}); the cluster file lists where to ask`,
      )
    const rows = view.members.map((member) => {
      const row = view.rows.find((candidate) => candidate.id === member.id && candidate.answered)
      return {
        id: member.id,
        peerId: member.peerId,
        multiaddr: member.multiaddr,
        voter: member.voter,
        started: member.started,
        role: row?.role ?? null,
        // The member's own report (its status): what it holds and has applied, against the leader's commit.
        match: row?.lastIndex ?? null,
        applied: row?.applied ?? null,
        lag: row?.lag ?? null,
        inClusterFile: cluster.replicas.some((entry) => entry.id === member.id),
      }
    })
    if (options.json) {
      console.log(
        JSON.stringify({ leader: view.leader?.id ?? null, commit: view.leader?.commit ?? null, members: rows }),
      )
    } else {
      console.log(
        renderTable(
          rows.map((row) => ({
            id: row.id,
            peer: row.peerId,
            address: row.multiaddr.replace(/\/p2p\/[^/]+$/, ''),
            member: row.voter ? 'voter' : 'learner',
            started: row.started,
            role: row.role ?? 'unreachable',
            match: row.match ?? undefined,
            lag: row.lag ?? undefined,
          })),
          ['id', 'peer', 'address', 'member', 'started', 'role', 'match', 'lag'],
        ),
      )
      console.log(
        `leader ${view.leader?.id ?? 'none'}, commit ${view.leader?.commit ?? '?'}; match = the last index the member holds, lag = entries it has yet to apply (its own status)`,
      )
    }
    return exitCodeOf(view)
  })
}

/** The key's peer id (the file is created when missing) and the member's full multiaddr. */
async function identity(
  keyFile: string,
  address: string,
): Promise<{ peerId: string; multiaddr: string; created: boolean }> {
  const path = resolve(keyFile)
  const created = !existsSync(path)
  const peerId = peerIdFromPrivateKey(await loadOrCreateKey(path)).toString()
  let text = address
  const last = (() => {
    try {
      return multiaddr(address).getComponents().at(-1)
    } catch (error) {
      throw new UsageError(`--multiaddr "${address}" is not a multiaddr (${(error as Error).message})`)
    }
  })()
  if (last?.name === 'p2p') {
    if (last.value !== peerId)
      throw new UsageError(`--multiaddr ${address} names peer ${last.value}, but the key ${path} is ${peerId}`)
    text = address.slice(0, address.lastIndexOf('/p2p/'))
  }
  return { peerId, multiaddr: `${checkAdvertised(text, '--multiaddr')}/p2p/${peerId}`, created }
}

function startCommand(options: { cluster: string; id: number; multiaddr: string; keyFile: string; dataDir: string }) {
  return [
    'nodeledger',
    'authority',
    '--cluster',
    resolve(options.cluster),
    '--id',
    String(options.id),
    '--multiaddr',
    options.multiaddr,
    '--key',
    resolve(options.keyFile),
    '--data',
    resolve(options.dataDir),
    '--initial-cluster-state',
    'existing',
  ]
}

export interface MemberAddOptions extends ClientCommandOptions {
  id: number
  multiaddr: string
  key: string
  data?: string
}

export async function memberAdd(options: MemberAddOptions): Promise<number> {
  const self = await identity(options.key, options.multiaddr)
  return withClient(
    options,
    async ({ client }) => {
      let result: MemberResult
      try {
        result = await client.member({
          action: 'add',
          memberId: options.id,
          peerId: self.peerId,
          multiaddr: self.multiaddr,
        })
      } catch (error) {
        explain(error, { action: 'add', id: options.id })
      }
      const dataDir = options.data ?? join(dirname(resolve(options.key)), 'data')
      const command = startCommand({ ...options, multiaddr: self.multiaddr, keyFile: options.key, dataDir })
      if (options.json) {
        console.log(
          JSON.stringify({ ...result, id: options.id, peerId: self.peerId, multiaddr: self.multiaddr, command }),
        )
      } else {
        if (self.created) console.log(`generated a new key in ${resolve(options.key)} (peer ${self.peerId})`)
        console.log(`replica ${options.id} added as a learner at log index ${result.index} (${self.multiaddr})`)
        console.log('start it on its host (an empty data dir; the leader sends it a snapshot):')
        console.log(`  ${command.join(' ')}`)
        console.log(`then, once it has caught up: nodeledger member promote ${options.id} --wait`)
      }
      return EXIT.OK
    },
    MEMBER_CLIENT,
  )
}

export async function memberPromote(
  id: number,
  options: ClientCommandOptions & { wait: boolean; waitTimeoutS: number },
): Promise<number> {
  return withClient(
    options,
    async (connection) => {
      const result = await promoteWhenReady(connection, id, options.wait ? options.waitTimeoutS * 1000 : 0, (lag) =>
        process.stderr.write(`waiting for replica ${id} to catch up: ${describeLag(lag)}\n`),
      )
      if (options.json) console.log(JSON.stringify(result))
      else console.log(`replica ${id} is a voter now (log index ${result.index})`)
      return EXIT.OK
    },
    MEMBER_CLIENT,
  )
}

function describeLag(lag: number | undefined): string {
  return lag === undefined
    ? 'it does not answer yet'
    : `${lag} entries behind the leader's commit (promotion needs at most ${PROMOTE_LAG_ENTRIES_MAX})`
}

/**
 * The learner's lag, from its own status at the address the membership records. `running` is
 * false while it does not answer, or answers as a replica still deciding how to start (term 0).
 */
async function lagOf(
  client: AuthorityClient,
  id: number,
): Promise<{ lag: number | undefined; running: boolean; applied: number; member?: MemberStatus }> {
  const leader = await leaderStatus(client)
  const member = leader.members.find((m) => m.id === id)
  if (member === undefined) return { lag: undefined, running: false, applied: 0 }
  try {
    const status = await client.status(member.multiaddr)
    if (status.term === 0) return { lag: undefined, running: false, applied: 0, member }
    return { lag: Math.max(0, leader.commit - status.applied), running: true, applied: status.applied, member }
  } catch {
    return { lag: undefined, running: false, applied: 0, member }
  }
}

/**
 * Promote `id`, waiting up to `waitMs` until it is ready; with 0, refuse at once (NOT_READY).
 *
 * Ready means the leader's rule (within 1,000 entries of its commit, checked by the leader) and
 * ours, checked first from the learner's own status: it runs and has applied the leader's
 * snapshot. The leader alone would promote a learner that never started while the log is short,
 * and a voter that never ran then refuses to start (NEEDS_NEW): the cluster would have gained a
 * voter that can never vote.
 */
async function promoteWhenReady(
  { client }: Connection,
  id: number,
  waitMs: number,
  onWaiting: (lag: number | undefined) => void,
): Promise<MemberResult> {
  const deadline = Date.now() + waitMs
  let lastReport = 0
  for (;;) {
    const learner = await lagOf(client, id)
    if (learner.member?.voter === true)
      throw new CliError('CONFLICT', `replica ${id} is already a voter (nothing to promote)`)
    const ready =
      learner.running && learner.applied > 0 && (learner.lag ?? Number.POSITIVE_INFINITY) <= PROMOTE_LAG_ENTRIES_MAX
    if (ready) {
      try {
        return await client.member({ action: 'promote', memberId: id })
      } catch (error) {
        if (!(error instanceof ProtocolError) || error.code !== 'NOT_READY') explain(error, { action: 'promote', id })
      }
    }
    if (Date.now() >= deadline)
      throw new CliError(
        'NOT_READY',
        `replica ${id} is not caught up: ${describeLag(learner.lag)}. ${waitMs === 0 ? 'Run again once it has, or pass --wait' : `Still not after ${Math.round(waitMs / 1000)} s: is it running (its log)?`}`,
      )
    if (Date.now() - lastReport >= 2_000) {
      onWaiting(learner.lag)
      lastReport = Date.now()
    }
    await sleep(POLL_INTERVAL_MS)
  }
}

export async function memberRemove(id: number, options: ClientCommandOptions): Promise<number> {
  return withClient(
    options,
    async ({ client }) => {
      const leader = await leaderStatus(client)
      if (!leader.members.some((member) => member.id === id))
        throw new CliError(
          'NOT_FOUND',
          `replica ${id} is not a member (members: ${leader.members.map((member) => member.id).join(', ')})`,
        )
      if (leader.id === id) {
        const other = leader.members.find((member) => member.voter && member.id !== id)
        throw new CliError(
          'REFUSED',
          `replica ${id} leads: it cannot remove itself. Hand leadership over first: nodeledger transfer-leader --to ${other?.id ?? '<a voter>'}`,
        )
      }
      let result: MemberResult
      try {
        result = await client.member({ action: 'remove', memberId: id })
      } catch (error) {
        explain(error, { action: 'remove', id })
      }
      if (options.json) console.log(JSON.stringify(result))
      else
        console.log(
          `replica ${id} removed at log index ${result.index}; members now ${result.members.map((m) => `${m.id}${m.voter ? '' : ' (learner)'}`).join(', ')}. Stop its process; its id is retired for good`,
        )
      return EXIT.OK
    },
    MEMBER_CLIENT,
  )
}

export async function transferLeader(to: number, options: ClientCommandOptions): Promise<number> {
  return withClient(
    options,
    async ({ client }) => {
      const before = await leaderStatus(client)
      if (before.id === to) {
        if (options.json) console.log(JSON.stringify({ leader: to, previous: to, moved: false }))
        else console.log(`replica ${to} leads already (term ${before.term})`)
        return EXIT.OK
      }
      const target = before.members.find((member) => member.id === to)
      if (target === undefined)
        throw new CliError(
          'NOT_FOUND',
          `replica ${to} is not a member (members: ${before.members.map((m) => m.id).join(', ')})`,
        )
      if (!target.voter)
        throw new CliError(
          'REFUSED',
          `replica ${to} is a learner: promote it first (nodeledger member promote ${to} --wait)`,
        )
      // A voter that does not answer cannot take over: the leader would wait out its deadline (TIMEOUT).
      const answer = await client.status(target.multiaddr).catch(() => undefined)
      if (answer === undefined || answer.term === 0)
        throw new ProtocolError(
          'UNAVAILABLE',
          `replica ${to} does not answer at ${target.multiaddr}: it cannot take over`,
        )
      const result = await client.transferLeader(to)
      if (options.json) console.log(JSON.stringify({ leader: result.leader, previous: before.id, moved: true }))
      else console.log(`replica ${result.leader} leads now (was replica ${before.id}, term ${before.term})`)
      return EXIT.OK
    },
    MEMBER_CLIENT,
  )
}

// ---------------------------------------------------------------------------------------------
// member replace

export interface MemberReplaceOptions extends ClientCommandOptions {
  multiaddr: string
  key: string
  data: string
  start: boolean
  waitTimeoutS: number
}

const STEPS = ['key', 'id', 'add as learner', 'start', 'catch up', 'promote', 'remove the old member'] as const

/**
 * The runbook for a replica whose disk died, as one command: a new member (new key, id, address
 * and data dir) is added as a learner, started, caught up and promoted, and only then is the old
 * one removed, so the cluster never has fewer voters than before. Every step looks at the state
 * first, so running the same command again after an interruption picks up where it stopped.
 */
export async function memberReplace(old: number, options: MemberReplaceOptions): Promise<number> {
  const say = (line: string): void => void process.stderr.write(`${line}\n`)
  let step = 0
  const begin = (index: number, detail: string): void => {
    step = index
    say(`[${index + 1}/${STEPS.length}] ${STEPS[index]}: ${detail}`)
  }
  let interrupted = false
  const onSignal = (): void => {
    interrupted = true
  }
  process.once('SIGINT', onSignal)
  try {
    const self = await identity(options.key, options.multiaddr)
    say(`replacing replica ${old} by a new member at ${self.multiaddr}`)
    say(STEPS.map((name, i) => `  ${i + 1}. ${name}`).join('\n'))
    begin(0, `${resolve(options.key)} ${self.created ? 'generated' : 'exists'}: peer ${self.peerId}`)
    return await withClient(
      options,
      async (connection) => {
        const { client } = connection
        const check = (): void => {
          if (interrupted)
            throw new CliError(
              'INTERRUPTED',
              `interrupted during step ${step + 1} (${STEPS[step]}): run the same command again to resume`,
            )
        }
        let leader = await leaderStatus(client)
        const oldMember = leader.members.find((member) => member.id === old)
        let mine = leader.members.find((member) => member.peerId === self.peerId)
        if (oldMember === undefined && mine === undefined)
          throw new CliError(
            'NOT_FOUND',
            `replica ${old} is not a member (members: ${leader.members.map((m) => m.id).join(', ')}), and no member has the key ${resolve(options.key)}`,
          )
        if (oldMember !== undefined && oldMember.peerId === self.peerId)
          throw new UsageError(`the key ${resolve(options.key)} is replica ${old}'s own: a replacement needs a new key`)
        const taken = leader.members.find(
          (member) => member.peerId !== self.peerId && sameAddress(member.multiaddr, self.multiaddr),
        )
        if (taken !== undefined)
          throw new CliError(
            'CONFLICT',
            `${self.multiaddr} is replica ${taken.id}'s address: give the new member its own`,
          )
        // 2. id: the member this key already is (a re-run), else the next id that was never a member.
        let id: number
        let addIndex: number | undefined
        if (mine !== undefined) {
          id = mine.id
          begin(1, `replica ${id} (this key is already a ${mine.voter ? 'voter' : 'learner'}: resuming)`)
          begin(2, 'done before')
        } else {
          let candidate = Math.max(old, ...leader.members.map((member) => member.id)) + 1
          begin(1, `trying ${candidate} (ids of removed members are never reused)`)
          begin(2, `as replica ${candidate}`)
          for (let attempt = 0; ; attempt++) {
            check()
            try {
              const result = await client.member({
                action: 'add',
                memberId: candidate,
                peerId: self.peerId,
                multiaddr: self.multiaddr,
              })
              addIndex = result.index
              break
            } catch (error) {
              if (!(error instanceof ProtocolError) || error.code !== 'CONFLICT' || attempt >= ID_ATTEMPTS_MAX)
                explain(error, { action: 'add', id: candidate })
              // The add may have taken effect on an attempt whose answer was lost: then this key is a member.
              leader = await leaderStatus(client)
              const added = leader.members.find((member) => member.peerId === self.peerId)
              if (added !== undefined) {
                candidate = added.id
                break
              }
              say(`      id ${candidate} was a member once: trying ${candidate + 1}`)
              candidate++
            }
          }
          id = candidate
          say(`      replica ${id} added as a learner${addIndex === undefined ? '' : ` at log index ${addIndex}`}`)
        }
        // 4. start
        const command = startCommand({
          cluster: options.cluster,
          id,
          multiaddr: self.multiaddr,
          keyFile: options.key,
          dataDir: options.data,
        })
        const answering = async (): Promise<StatusResult | undefined> => {
          try {
            const status = await client.status(self.multiaddr)
            return status.term === 0 ? undefined : status
          } catch {
            return undefined
          }
        }
        leader = await leaderStatus(client)
        mine = leader.members.find((member) => member.id === id)
        if (mine?.voter === true) {
          begin(3, `replica ${id} is a voter already`)
        } else if ((await answering()) !== undefined) {
          begin(3, `replica ${id} is running already`)
        } else if (options.start) {
          const started = startInBackground(options.cluster, id, command.slice(1))
          begin(3, `started in the background (pid ${started.pid}, log ${started.log})`)
        } else {
          begin(3, `start it on its host now (this command waits for it):\n      ${command.join(' ')}`)
        }
        // 5. catch up, 6. promote (the leader decides when it is close enough)
        if (mine?.voter !== true) {
          const deadline = Date.now() + options.waitTimeoutS * 1000
          let lastLine = ''
          begin(4, 'waiting for it to answer and take the leader snapshot')
          while ((await answering()) === undefined) {
            check()
            if (Date.now() > deadline)
              throw new CliError(
                'UNAVAILABLE',
                `replica ${id} did not answer at ${self.multiaddr} within ${options.waitTimeoutS} s: is it running? (${command.join(' ')})`,
              )
            await sleep(POLL_INTERVAL_MS)
          }
          begin(5, `as soon as it is within ${PROMOTE_LAG_ENTRIES_MAX} entries of the leader`)
          const result = await promoteWhenReady(connection, id, Math.max(0, deadline - Date.now()), (lag) => {
            check()
            const line = `      ${describeLag(lag)}`
            if (line !== lastLine) say(line)
            lastLine = line
          })
          say(`      replica ${id} is a voter at log index ${result.index}`)
        } else {
          begin(4, 'done before')
          begin(5, 'done before')
        }
        // 7. remove the old member (handing leadership over first if it leads)
        check()
        leader = await leaderStatus(client)
        if (!leader.members.some((member) => member.id === old)) {
          begin(6, `replica ${old} is no longer a member`)
        } else {
          if (leader.id === old) {
            begin(6, `replica ${old} leads: handing leadership to replica ${id} first`)
            await client.transferLeader(id)
          }
          const removed = await client
            .member({ action: 'remove', memberId: old })
            .catch((error: unknown) => explain(error, { action: 'remove', id: old }))
          begin(6, `replica ${old} removed at log index ${removed.index}`)
        }
        leader = await leaderStatus(client)
        const members = leader.members.map((member) => `${member.id}${member.voter ? '' : ' (learner)'}`).join(', ')
        if (options.json)
          console.log(
            JSON.stringify({
              replaced: old,
              by: id,
              peerId: self.peerId,
              multiaddr: self.multiaddr,
              members: leader.members,
            }),
          )
        else {
          console.log(`replica ${old} replaced by replica ${id} (${self.multiaddr}); members now ${members}`)
          console.log(
            `stop replica ${old}'s process if it still runs; the cluster file (the bootstrap list) still names the founders: add replica ${id} to it where clients need to find the cluster`,
          )
        }
        return EXIT.OK
      },
      MEMBER_CLIENT,
    )
  } finally {
    process.off('SIGINT', onSignal)
  }
}

function sameAddress(a: string, b: string): boolean {
  const strip = (address: string): string => address.replace(/\/p2p\/[^/]+$/, '')
  return strip(a) === strip(b)
}

/**
 * `--start`: the new replica in the background, as scripts/cluster.sh runs them: its log in
 * <cluster dir>/logs/replica-N.log, its pid in <cluster dir>/pids/replica-N.pid, and the flags
 * it needs in pids/replica-N.args, so that `cluster.sh start N` can bring it back.
 */
function startInBackground(clusterFile: string, id: number, args: string[]): { pid: number; log: string } {
  const dir = dirname(resolve(clusterFile))
  const logs = join(dir, 'logs')
  const pids = join(dir, 'pids')
  mkdirSync(logs, { recursive: true })
  mkdirSync(pids, { recursive: true })
  const log = join(logs, `replica-${id}.log`)
  const pidFile = join(pids, `replica-${id}.pid`)
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim())
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) return { pid, log }
  }
  const fd = openSync(log, 'a')
  const child = spawn(process.execPath, [process.argv[1]!, ...args], {
    detached: true,
    stdio: ['ignore', fd, fd],
  })
  child.unref()
  writeFileSync(pidFile, `${child.pid}\n`)
  const own = args.slice(args.indexOf('--multiaddr'), args.indexOf('--initial-cluster-state'))
  writeFileSync(join(pids, `replica-${id}.args`), `${own.join(' ')}\n`)
  return { pid: child.pid!, log }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
