import { HistogramCells } from '@nodeledger/metrics'
import { OPS, PROTOCOL_ERROR_CODES } from '@nodeledger/protocol'
import type { Op, ProtocolErrorCode } from '@nodeledger/protocol'

/**
 * The numbers a replica's classes report into: plain fields incremented by reference on the hot
 * path, HistogramCells observed with a number. ReplicaMetrics (replica-metrics.ts) owns one set
 * and renders it at scrape time; a class built without one (a unit test, a tool) makes its own,
 * which nothing scrapes. Gauges that are a view of a class's state (leases held, links up) are
 * read from it at scrape time through the `source` it binds, so keeping them costs nothing.
 */

/** The `op` label: the API's ops, and `unknown` for a request that could not be read. */
export type ApiOpLabel = Op | 'unknown'
export const API_OP_LABELS: readonly ApiOpLabel[] = [...OPS, 'unknown']
/** The `code` label: `OK` or the error code answered. A closed set: the protocol's codes. */
export type ApiCodeLabel = 'OK' | ProtocolErrorCode
export const API_CODE_LABELS: readonly ApiCodeLabel[] = ['OK', ...PROTOCOL_ERROR_CODES]

const CODE_SLOT = Object.fromEntries(API_CODE_LABELS.map((code, slot) => [code, slot])) as Readonly<
  Record<ApiCodeLabel, number>
>

/** One op: answers by code, and latency. */
export class ApiOpCells {
  readonly answers = new Float64Array(API_CODE_LABELS.length)
  readonly latency = new HistogramCells()
}

export class ApiCells {
  readonly ops = Object.fromEntries(API_OP_LABELS.map((op) => [op, new ApiOpCells()])) as Readonly<
    Record<ApiOpLabel, ApiOpCells>
  >
  sessions = 0
  sessionsOpen = 0
  watchersOpen = 0
  /** Streams the client reset or abandoned before a whole request arrived: a client leaving, not an error. */
  clientResets = 0

  /**
   * One request answered (or a watch ended) with `code`. Two property reads, two increments and,
   * with a latency, one histogram scan: no allocation, no string built.
   */
  answered(op: ApiOpLabel, code: ApiCodeLabel, latencyMs?: number): void {
    const cells = this.ops[op]
    cells.answers[CODE_SLOT[code]]! += 1
    if (latencyMs !== undefined) cells.latency.observeMs(latencyMs)
  }
}

export class LeaseCells {
  heartbeats = 0
  transitionsActive = 0
  transitionsInactive = 0
  transitionsFailed = 0
  /** Sweeps that found the leader had been stalled and credited every lease instead of expiring. */
  stallsCredited = 0
  /** Leases this leader holds now; bound by the LeaseKeeper. */
  source: { readonly leases: number; readonly activationsRefused: number } | undefined
}

/** What one peer's link adds to (an OutboundLink's LinkCounters, and what the reader received). */
export class PeerLinkCells {
  framesSent = 0
  bytesSent = 0
  framesDroppedInFlight = 0
  streamsOpened = 0
  reconnects = 0
  dialFailures = 0
  framesReceived = 0
  bytesReceived = 0
}

/** A peer's link as PeerLinks sees it at scrape time. */
export interface PeerLinkState {
  readonly peer: number
  /** Our outbound stream to it is open. */
  readonly outboundUp: boolean
  /** Its stream to us is open. */
  readonly inboundUp: boolean
  readonly queuedFrames: number
  readonly queuedBytes: number
}

/**
 * One PeerLinks (one protocol): per peer, what its link sent and received; for all peers, the
 * refusals. Per-peer cells are kept for every peer id this process has linked to (ids are never
 * reused and membership changes are rare, so the set stays small).
 */
export class LinkCells {
  readonly #peers = new Map<number, PeerLinkCells>()
  framesDroppedQueueFull = 0
  framesDroppedUnknownPeer = 0
  framesDroppedTooLarge = 0
  framesInvalid = 0
  frameHandlerErrors = 0
  inboundAccepted = 0
  inboundRefused = 0
  peerDowns = 0
  /** The links' state now; bound by PeerLinks. */
  source: { linkStates(): Iterable<PeerLinkState> } | undefined

  /** The cells of peer `id` (created once; the caller keeps the reference for its hot path). */
  peer(id: number): PeerLinkCells {
    let cells = this.#peers.get(id)
    if (cells === undefined) {
      cells = new PeerLinkCells()
      this.#peers.set(id, cells)
    }
    return cells
  }

  peers(): IterableIterator<[number, PeerLinkCells]> {
    return this.#peers.entries()
  }
}

/** The replica's own: proposals, storage writes, apply, frames it could not decode, its clock. */
export class RaftCells {
  /** Proposals the driver took (they end applied, lost or unknown). */
  proposalsAccepted = 0
  /** Refused before anything was proposed: not the leader, a transfer under way, overloaded, stopping. */
  proposalsDropped = 0
  /** Definitely not applied: a new leader's entry took the index. */
  proposalsLost = 0
  /** May or may not have been applied: a snapshot replaced the log there, or the replica stopped. */
  proposalsUnknown = 0
  framesRejected = 0
  /** Synced writes (entries, hard state, snapshot): their latency is the disk's fsync. */
  readonly fsync = new HistogramCells()
  /** Writes without a sync (only the commit index moved). */
  writesUnsynced = 0
  entriesWritten = 0
  /** One committed entry applied to the state machine. */
  readonly apply = new HistogramCells()
  /** Times this replica logged that the registry's clock runs ahead of its own (see clock.ts). */
  clockAheadWarnings = 0
}
