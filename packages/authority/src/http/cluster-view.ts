import type { MemberStatus, Role, StatusResult } from '@nodeledger/protocol'
import type { LeaderTerm } from '../replica/leader-history.ts'

/** One member of record as GET /v1/cluster shows it. Figures are null when it did not answer. */
export interface ClusterMemberJson {
  readonly id: number
  readonly peerId: string
  readonly multiaddr: string
  readonly voter: boolean
  /** Its own role; 'unknown' when it did not answer in time. */
  readonly role: Role | 'unknown'
  readonly term: number | null
  readonly commitIndex: number | null
  readonly appliedIndex: number | null
  readonly lastIndex: number | null
  /** Entries its applied index is behind the leader's commit (the highest commit seen when no leader answered). */
  readonly lagEntries: number | null
  readonly reachable: boolean
}

/** GET /v1/cluster. */
export interface ClusterJson {
  readonly clusterId: string
  /** The replica that answered this request. */
  readonly self: { readonly id: number; readonly peerId: string }
  readonly leader: { readonly id: number; readonly peerId: string; readonly term: number } | null
  readonly members: readonly ClusterMemberJson[]
  /** As this replica saw it, oldest first (leader-history.ts: bounded, in memory). */
  readonly leaderHistory: readonly LeaderTerm[]
}

/** The figures of a member's status (StatusResult) the view shows. */
export type MemberAnswer = Pick<
  StatusResult,
  'clusterId' | 'id' | 'peerId' | 'role' | 'term' | 'commit' | 'applied' | 'lastIndex'
>

/** This replica's own: its figures, whom it follows, and the membership of record. */
export type SelfAnswer = MemberAnswer & {
  readonly leader: { readonly id: number; readonly peerId: string } | null
  readonly members: readonly MemberStatus[]
}

/** What the view reads: this replica exactly, the others by asking them. */
export interface ClusterViewSource {
  readonly clusterId: string
  self(): SelfAnswer
  leaderHistory(): readonly LeaderTerm[]
  /** Another member's status as it answers for itself (the API's `status`); rejects when it cannot. */
  peerStatus(member: MemberStatus, signal: AbortSignal): Promise<MemberAnswer>
}

export interface ClusterViewOptions {
  readonly source: ClusterViewSource
  /** A view younger than this is served again: a page polling every second, or ten of them, cost one gather. */
  readonly cacheMs?: number
  /** How long a member may take to answer before it is shown unreachable. */
  readonly peerTimeoutMs?: number
  /** Monotonic ms (tests move it). */
  readonly nowMs?: () => number
}

/**
 * 250 ms: a page polls once a second, so it sees each view fresh, and any number of pages (or a
 * script in a loop) cost a replica at most four gathers a second, each one status request to each
 * other member on the connections the replicas already hold to each other.
 */
export const CLUSTER_VIEW_CACHE_MS = 250
/**
 * A member that has not answered status in 1 s is shown unreachable: a live replica answers in
 * about a millisecond on a LAN (status is served from memory), and a killed one is refused at once,
 * so only a paused or cut-off replica costs the wait, and the page's next poll is not held up.
 */
export const CLUSTER_PEER_TIMEOUT_MS = 1_000

/**
 * The cluster as one replica sees it (GET /v1/cluster): its own figures exactly, every other
 * member of record's as that member answers `status` over the replicas' libp2p connections (what
 * `nodeledger status` asks, so both agree), asked in parallel, each within peerTimeoutMs. One
 * gather at a time: requests that arrive while one runs share it, and its result is served for
 * cacheMs. The leader is the one of the highest term among the answers (an old leader cut off may
 * still think it leads), else the one this replica follows.
 */
export class ClusterView {
  readonly #source: ClusterViewSource
  readonly #cacheMs: number
  readonly #peerTimeoutMs: number
  readonly #nowMs: () => number
  #cached: { readonly atMs: number; readonly view: ClusterJson } | undefined
  #gathering: Promise<ClusterJson> | undefined

  constructor(options: ClusterViewOptions) {
    this.#source = options.source
    this.#cacheMs = options.cacheMs ?? CLUSTER_VIEW_CACHE_MS
    this.#peerTimeoutMs = options.peerTimeoutMs ?? CLUSTER_PEER_TIMEOUT_MS
    this.#nowMs = options.nowMs ?? (() => performance.now())
  }

  get(): Promise<ClusterJson> {
    const cached = this.#cached
    if (cached !== undefined && this.#nowMs() - cached.atMs < this.#cacheMs) return Promise.resolve(cached.view)
    this.#gathering ??= this.#gather().finally(() => {
      this.#gathering = undefined
    })
    return this.#gathering
  }

  async #gather(): Promise<ClusterJson> {
    const self = this.#source.self()
    const signal = AbortSignal.timeout(this.#peerTimeoutMs)
    const answers = await Promise.all(
      self.members.map(async (member): Promise<MemberAnswer | undefined> => {
        if (member.id === self.id) return self
        try {
          const status = await this.#source.peerStatus(member, signal)
          // Who answered is authenticated (the dial names the peer id); a member that answers as
          // another id or cluster is not shown as the one asked for.
          return status.id === member.id && status.clusterId === this.#source.clusterId ? status : undefined
        } catch {
          return undefined
        }
      }),
    )
    const answered = answers.filter((answer): answer is MemberAnswer => answer !== undefined)
    const newest = answered.filter((s) => s.role === 'leader').sort((a, b) => b.term - a.term)[0]
    const leader =
      newest !== undefined
        ? { id: newest.id, peerId: newest.peerId, term: newest.term }
        : self.leader !== null
          ? { id: self.leader.id, peerId: self.leader.peerId, term: self.term }
          : null
    const leaderCommit = newest?.commit ?? Math.max(0, ...answered.map((s) => s.commit))
    const members = self.members.map((member, position): ClusterMemberJson => {
      const status = answers[position]
      const base = { id: member.id, peerId: member.peerId, multiaddr: member.multiaddr, voter: member.voter }
      if (status === undefined)
        return {
          ...base,
          role: 'unknown',
          term: null,
          commitIndex: null,
          appliedIndex: null,
          lastIndex: null,
          lagEntries: null,
          reachable: false,
        }
      return {
        ...base,
        role: status.role,
        term: status.term,
        commitIndex: status.commit,
        appliedIndex: status.applied,
        lastIndex: status.lastIndex,
        lagEntries: Math.max(0, leaderCommit - status.applied),
        reachable: true,
      }
    })
    const view: ClusterJson = {
      clusterId: this.#source.clusterId,
      self: { id: self.id, peerId: self.peerId },
      leader,
      members,
      leaderHistory: this.#source.leaderHistory(),
    }
    this.#cached = { atMs: this.#nowMs(), view }
    return view
  }
}

const integerOrNull = { type: ['integer', 'null'] } as const

/** JSON Schema of GET /v1/cluster's answer (Fastify serializes with it: fields not named here are not sent). */
export const CLUSTER_JSON_SCHEMA = {
  type: 'object',
  required: ['clusterId', 'self', 'leader', 'members', 'leaderHistory'],
  properties: {
    clusterId: { type: 'string' },
    self: {
      type: 'object',
      required: ['id', 'peerId'],
      properties: { id: { type: 'integer' }, peerId: { type: 'string' } },
    },
    leader: {
      type: ['object', 'null'],
      required: ['id', 'peerId', 'term'],
      properties: { id: { type: 'integer' }, peerId: { type: 'string' }, term: { type: 'integer' } },
    },
    members: {
      type: 'array',
      items: {
        type: 'object',
        required: [
          'id',
          'peerId',
          'multiaddr',
          'voter',
          'role',
          'term',
          'commitIndex',
          'appliedIndex',
          'lastIndex',
          'lagEntries',
          'reachable',
        ],
        properties: {
          id: { type: 'integer' },
          peerId: { type: 'string' },
          multiaddr: { type: 'string' },
          voter: { type: 'boolean' },
          role: { type: 'string', enum: ['follower', 'pre-candidate', 'candidate', 'leader', 'unknown'] },
          term: integerOrNull,
          commitIndex: integerOrNull,
          appliedIndex: integerOrNull,
          lastIndex: integerOrNull,
          lagEntries: integerOrNull,
          reachable: { type: 'boolean' },
        },
      },
    },
    leaderHistory: {
      type: 'array',
      items: {
        type: 'object',
        required: ['term', 'id', 'peerId', 'sinceMs'],
        properties: {
          term: { type: 'integer' },
          id: { type: 'integer' },
          peerId: { type: 'string' },
          sinceMs: { type: 'integer' },
        },
      },
    },
  },
} as const
