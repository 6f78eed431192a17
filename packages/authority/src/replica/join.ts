import type { Libp2p, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import {
  API_PROTOCOL,
  API_REQUEST_FRAME_BYTES_MAX,
  API_RESPONSE_FRAME_BYTES_MAX,
  ProtocolError,
  decodeRequest,
  decodeResponse,
  encodeErrorResponse,
  encodeRequest,
  encodeResponse,
  frameStream,
  readFrame,
  writeFrame,
} from '@nodeledger/protocol'
import type { StatusResult } from '@nodeledger/protocol'
import type { Logger } from 'pino'
import { ReplicaError } from '../replica-errors.ts'
import type { ClusterFile } from '../cluster-file.ts'

/**
 * How a replica with an empty data dir may start (etcd's --initial-cluster-state):
 *   new       the cluster is being created: a founder that never ran bootstraps the founding
 *             membership from the cluster file;
 *   existing  the cluster exists: the replica may only join as a learner someone added (member add),
 *             and waits for a snapshot from the leader.
 * A data dir that holds state ignores the mode: its membership is the log's.
 */
export type InitialClusterState = 'new' | 'existing'

/**
 * What an empty replica found out from its peers: bootstrap the cluster, or join it empty as a
 * learner. A joiner keeps the membership its peer reported: the leader may have joined after the
 * cluster file was written, and after the snapshot it will send, so neither names it.
 */
export type EmptyStart =
  | { readonly kind: 'bootstrap' }
  | { readonly kind: 'join'; readonly via: number; readonly members: StatusResult['members'] }

export interface EmptyStartOptions {
  readonly libp2p: Libp2p
  readonly cluster: ClusterFile
  readonly id: number
  readonly mode: InitialClusterState
  readonly logger: Logger
  readonly signal: AbortSignal
  /** How often to ask the peers again while they do not answer. */
  readonly retryMs?: number
  /** One status request's deadline. */
  readonly requestTimeoutMs?: number
}

const RETRY_MS_DEFAULT = 1_000
const REQUEST_TIMEOUT_MS_DEFAULT = 1_500
/** Log "still waiting" at most this often. */
const WAITING_LOG_EVERY_MS = 10_000

/**
 * Decide whether an empty data dir may start, from what the other replicas of the cluster file
 * say (their `status`: the membership of record, as their logs hold it). Refuses, with the reason
 * and what to do:
 *   LOST_STATE      this replica is a member that has run: whatever it acknowledged and voted is gone,
 *                   and it must not count as the member it was (replace it: a new id, key and dir);
 *   CLUSTER_EXISTS  `new`, but the cluster already runs without this replica among its founders;
 *   NOT_A_MEMBER    `existing`, but no one added this replica;
 *   NEEDS_NEW       `existing`, but this replica is a founder that never ran (creation is under way);
 *   INVALID_CLUSTER a peer belongs to another cluster.
 * Waits (retrying, with a log line now and then) until enough peers answer: `new` needs a majority
 * of the founders (this replica counted) to agree the cluster is being created, `existing` needs
 * one peer that holds state.
 */
export async function decideEmptyStart(options: EmptyStartOptions): Promise<EmptyStart> {
  const { cluster, id, mode, logger, signal } = options
  const retryMs = options.retryMs ?? RETRY_MS_DEFAULT
  const peers = cluster.replicas.filter((replica) => replica.id !== id)
  const founders = cluster.replicas.length
  let lastWaitingLogMs = 0
  const startedMs = Date.now()
  for (;;) {
    if (signal.aborted) throw new ReplicaError('STOPPED', 'stopped while asking the other replicas about this one')
    const answers = await Promise.all(
      peers.map(async (peer) => ({
        peer,
        status: await askStatus(
          options.libp2p,
          peer.multiaddr,
          options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT,
          signal,
        ).catch(() => undefined),
      })),
    )
    let agreeing = 1
    for (const { peer, status } of answers) {
      if (status === undefined) continue
      if (status.clusterId !== cluster.clusterId) {
        throw new ReplicaError(
          'INVALID_CLUSTER',
          `replica ${peer.id} (${peer.multiaddr}) belongs to cluster ${status.clusterId}, but the cluster file is for ${cluster.clusterId}`,
        )
      }
      const self = status.members.find((member) => member.id === id)
      const holdsState = status.lastIndex > 0
      if (self?.started === true) {
        throw new ReplicaError(
          'LOST_STATE',
          `replica ${id}'s data dir is empty, but replica ${peer.id} records it as a member that has run (${self.voter ? 'a voter' : 'a learner'}): it may have acknowledged writes and votes it no longer holds, so it must not rejoin as replica ${id}. Replace it: \`nodeledger member replace ${id}\` adds a new member (new id, key and data dir) and removes this one (docs/OPERATIONS.md, "Replace a replica")`,
        )
      }
      if (mode === 'existing' && holdsState) {
        if (self === undefined) {
          throw new ReplicaError(
            'NOT_A_MEMBER',
            `replica ${id} is not a member of the cluster (replica ${peer.id}'s membership: ${describe(status)}): add it first with \`nodeledger member add --id ${id} …\`, or if the cluster is being created, start it with --initial-cluster-state new`,
          )
        }
        if (!self.voter) {
          logger.info(
            { via: peer.id },
            'data dir is empty and this replica is a learner: joining; the leader sends a snapshot',
          )
          return { kind: 'join', via: peer.id, members: status.members }
        }
        throw new ReplicaError(
          'NEEDS_NEW',
          `replica ${id} is a founding voter that never ran, and its data dir is empty: while the cluster is being created, start it with --initial-cluster-state new`,
        )
      }
      if (mode === 'existing' && !holdsState && self !== undefined) {
        throw new ReplicaError(
          'NEEDS_NEW',
          `replica ${id}'s data dir is empty and replica ${peer.id} is empty too: the cluster is being created; start its founders with --initial-cluster-state new`,
        )
      }
      if (mode === 'new') {
        if (holdsState && self === undefined) {
          throw new ReplicaError(
            'CLUSTER_EXISTS',
            `the cluster already exists and replica ${id} is not one of its members (replica ${peer.id}'s membership: ${describe(status)}): --initial-cluster-state new creates a cluster once; add this replica with \`nodeledger member add\` and start it with --initial-cluster-state existing`,
          )
        }
        agreeing++
      }
    }
    if (mode === 'new' && agreeing >= Math.floor(founders / 2) + 1) {
      logger.info({ agreeing, founders }, 'a majority of the founders agree the cluster is new: bootstrapping it')
      return { kind: 'bootstrap' }
    }
    const nowMs = Date.now()
    if (nowMs - lastWaitingLogMs >= WAITING_LOG_EVERY_MS) {
      lastWaitingLogMs = nowMs
      const answered = answers.filter((answer) => answer.status !== undefined).map((answer) => answer.peer.id)
      logger.warn(
        { mode, answered, waitingS: Math.round((nowMs - startedMs) / 1000) },
        mode === 'new'
          ? 'data dir is empty: waiting for a majority of the founders to answer before creating the cluster'
          : 'data dir is empty: waiting for a replica that holds the cluster state to confirm this replica was added',
      )
    }
    await sleep(retryMs, signal)
  }
}

function describe(status: StatusResult): string {
  return status.members.map((member) => `${member.id}${member.voter ? '' : ' (learner)'}`).join(', ')
}

/** One `status` request on a stream of its own (PROTOCOL.md "Client API"), under a deadline. */
export async function askStatus(
  libp2p: Libp2p,
  address: string,
  timeoutMs: number,
  shutdown: AbortSignal,
): Promise<StatusResult> {
  const signal = AbortSignal.any([shutdown, AbortSignal.timeout(timeoutMs)])
  const stream = await libp2p.dialProtocol(multiaddr(address), API_PROTOCOL, { signal })
  try {
    const lp = frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    await writeFrame(lp, encodeRequest({ op: 'status' }), { signal })
    const response = decodeResponse('status', await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX, signal }))
    if (!response.ok) throw response.error
    return response.result
  } finally {
    stream.abort(new Error('status answered'))
  }
}

/**
 * While an empty replica asks its peers (and before it has a state machine), it answers `status`
 * itself, so that founders starting together can hear each other: an empty log at term 0, the
 * founding membership with nobody started. Every other op is UNAVAILABLE. Returns the unhandle.
 */
export async function serveStartingStatus(libp2p: Libp2p, status: () => StatusResult): Promise<() => Promise<void>> {
  const handler = async (stream: Stream): Promise<void> => {
    const lp = frameStream(stream, { maxBytes: API_REQUEST_FRAME_BYTES_MAX })
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS_DEFAULT)
    try {
      const request = decodeRequest(await readFrame(lp, { maxBytes: API_REQUEST_FRAME_BYTES_MAX, signal }))
      const frame =
        request.op === 'status'
          ? encodeResponse('status', status(), request.id)
          : encodeErrorResponse(new ProtocolError('UNAVAILABLE', 'the replica is starting; retry shortly'), request.id)
      await writeFrame(lp, frame, { signal })
      await stream.close({ signal })
    } catch {
      stream.abort(new Error('starting replica could not answer'))
    }
  }
  await libp2p.handle(API_PROTOCOL, handler)
  return async () => {
    await libp2p.unhandle(API_PROTOCOL)
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        resolve()
      },
      { once: true },
    )
  })
}
