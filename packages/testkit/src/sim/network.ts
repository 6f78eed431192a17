import type { Message, NodeId } from '@nodeledger/raft'
import type { SimRng } from './rng.ts'

/**
 * Network knobs, named like TigerBeetle's VOPR. Delays are in simulator steps (a replica ticks every
 * `stepsPerTick` steps), so a delay longer than a tick reorders messages behind later ones.
 */
export interface NetworkOptions {
  packetLossProbability: number
  packetDuplicateProbability: number
  oneWayDelayMinSteps: number
  oneWayDelayMaxSteps: number
  /** Bound on messages in flight; beyond it new ones are dropped (a full socket buffer). */
  inFlightMessagesMax: number
}

interface InFlight {
  readonly deliverAtStep: number
  readonly sequence: number
  readonly message: Message
}

/** A seeded, lossy, reordering network with symmetric and one-way partitions. */
export class SimNetwork {
  options: NetworkOptions
  private readonly rng: SimRng
  /** Directed links that drop everything: "from->to". */
  private readonly blockedLinks = new Set<string>()
  private queue: InFlight[] = []
  private sequence = 0
  messagesSent = 0
  messagesDropped = 0

  constructor(rng: SimRng, options: NetworkOptions) {
    this.rng = rng
    this.options = options
  }

  send(message: Message, nowStep: number): void {
    this.messagesSent++
    if (
      this.isBlocked(message.from, message.to) ||
      this.queue.length >= this.options.inFlightMessagesMax ||
      this.rng.chance(this.options.packetLossProbability)
    ) {
      this.messagesDropped++
      return
    }
    const copies = this.rng.chance(this.options.packetDuplicateProbability) ? 2 : 1
    for (let copy = 0; copy < copies; copy++) {
      const delay = this.rng.intBetween(this.options.oneWayDelayMinSteps, this.options.oneWayDelayMaxSteps)
      this.queue.push({ deliverAtStep: nowStep + delay, sequence: this.sequence++, message })
    }
  }

  /** Messages due by `nowStep`, in delivery order; a partition raised meanwhile still drops them. */
  takeDue(nowStep: number): Message[] {
    if (this.queue.length === 0) return []
    const due: InFlight[] = []
    const later: InFlight[] = []
    for (const item of this.queue) (item.deliverAtStep <= nowStep ? due : later).push(item)
    if (due.length === 0) return []
    this.queue = later
    due.sort((a, b) => a.deliverAtStep - b.deliverAtStep || a.sequence - b.sequence)
    const result: Message[] = []
    for (const item of due) {
      if (this.isBlocked(item.message.from, item.message.to)) this.messagesDropped++
      else result.push(item.message)
    }
    return result
  }

  /** Drop everything in flight to or from `node` (it crashed: its sockets are gone). */
  dropNode(node: NodeId): void {
    this.queue = this.queue.filter((item) => item.message.to !== node && item.message.from !== node)
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blockedLinks.has(`${from}->${to}`)
  }

  /** Cut every link between the two groups, both ways. */
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.blockedLinks.add(`${a}->${b}`)
        this.blockedLinks.add(`${b}->${a}`)
      }
    }
  }

  /** Cut only from -> to (the reverse direction still works). */
  blockOneWay(from: NodeId, to: NodeId): void {
    this.blockedLinks.add(`${from}->${to}`)
  }

  heal(): void {
    this.blockedLinks.clear()
  }

  hasPartitions(): boolean {
    return this.blockedLinks.size > 0
  }

  inFlightCount(): number {
    return this.queue.length
  }
}
