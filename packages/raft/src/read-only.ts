import { majority } from './quorum.ts'
import type { NodeId, ReadState } from './types.ts'

interface PendingRead {
  readonly context: string
  /** The commit index when the read arrived: the read may be served once this is applied. */
  readonly index: number
  readonly acks: Set<NodeId>
}

/**
 * ReadIndex requests waiting for a quorum to confirm, by heartbeat, that we still lead (thesis
 * §6.4 step 3). An acknowledgement of a later request confirms every earlier one too, since the
 * heartbeat was sent after them.
 */
export class ReadOnlyQueue {
  private readonly queue: PendingRead[] = []
  private readonly byContext = new Map<string, PendingRead>()

  add(context: string, index: number, self: NodeId): void {
    if (this.byContext.has(context)) return
    const read: PendingRead = { context, index, acks: new Set([self]) }
    this.queue.push(read)
    this.byContext.set(context, read)
  }

  /** Record `from`'s acknowledgement of `context`; returns the reads it releases, in order. */
  acknowledge(context: string, from: NodeId, voters: ReadonlySet<NodeId>): ReadState[] {
    const read = this.byContext.get(context)
    if (read === undefined) return []
    read.acks.add(from)
    let acked = 0
    for (const id of read.acks) if (voters.has(id)) acked++
    if (acked < majority(voters.size)) return []
    const position = this.queue.indexOf(read)
    const released = this.queue.splice(0, position + 1)
    for (const done of released) this.byContext.delete(done.context)
    return released.map((done) => ({ index: done.index, context: done.context }))
  }

  lastContext(): string | undefined {
    return this.queue[this.queue.length - 1]?.context
  }

  /** Forget every pending read (leadership lost); returns their contexts so they can be reported. */
  drain(): string[] {
    const contexts = this.queue.map((read) => read.context)
    this.queue.length = 0
    this.byContext.clear()
    return contexts
  }
}
