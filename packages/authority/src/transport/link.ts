import type { Libp2p, Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { backoffDelayMs } from './backoff.ts'
import { LINK_CLOSE_TIMEOUT_MS, LINK_HEALTHY_MS, WRITE_BATCH_BYTES_MAX } from './constants.ts'
import { TransportError } from './errors.ts'
import { frameStream } from './framing.ts'

/** Counters an OutboundLink adds to: its peer's cells in the metrics (PeerLinkCells), owned by PeerLinks. */
export interface LinkCounters {
  framesSent: number
  bytesSent: number
  framesDroppedInFlight: number
  streamsOpened: number
  reconnects: number
  dialFailures: number
}

export interface OutboundLinkOptions {
  readonly id: number
  readonly multiaddr: Multiaddr
  readonly libp2p: Libp2p
  readonly protocol: string
  readonly queueFramesMax: number
  readonly queueBytesMax: number
  readonly frameBytesMax: number
  readonly reconnectBackoffBaseMs: number
  readonly reconnectBackoffMaxMs: number
  readonly dialTimeoutMs: number
  readonly random: () => number
  readonly counters: LinkCounters
  readonly logger: Logger
}

/**
 * The outbound half of the link to one peer: a bounded queue of frames and one writer loop that
 * owns one long-lived stream. The loop sleeps while the queue is empty, opens the stream on demand
 * (lazily, then keeps it), writes queued frames in batches and awaits the stream's drain when the
 * muxer pushes back. A lost stream is redialled after a jittered exponential backoff; a stream that
 * had stayed up LINK_HEALTHY_MS resets the backoff.
 *
 * Frames are never blocked on: a full queue refuses the frame (the caller counts a drop), and
 * frames handed to a stream that then dies are lost (counted). Raft retransmits both.
 */
export class OutboundLink {
  readonly id: number
  private readonly options: OutboundLinkOptions
  private readonly frames: Uint8Array[] = []
  private queuedBytesCount = 0
  private stream: Stream | undefined
  private writer: LengthPrefixedStream<Stream> | undefined
  private openedAtMs = 0
  /** Consecutive failures (failed dials, streams lost before they were healthy); 0 dials at once. */
  private attempt = 0
  private everOpened = false
  private stopped = false
  private readonly shutdown = new AbortController()
  private wakeForFrames: (() => void) | undefined
  private wakeScheduled = false
  private wakeFromBackoff: (() => void) | undefined
  private loop: Promise<void> | undefined

  constructor(options: OutboundLinkOptions) {
    this.id = options.id
    this.options = options
  }

  get queuedFrames(): number {
    return this.frames.length
  }

  get queuedBytes(): number {
    return this.queuedBytesCount
  }

  get open(): boolean {
    return this.writer !== undefined
  }

  /** Queues `frame` unless the queue is at a limit or the link stopped. Never blocks. */
  enqueue(frame: Uint8Array): boolean {
    if (this.stopped) return false
    if (this.frames.length >= this.options.queueFramesMax) return false
    if (this.queuedBytesCount + frame.byteLength > this.options.queueBytesMax) return false
    this.frames.push(frame)
    this.queuedBytesCount += frame.byteLength
    // Coalesce: the writer wakes once per turn of the event loop, after every frame queued in this
    // turn (the messages of several Readies, heartbeats, responses), and writes them in one send:
    // one muxer frame, one Noise message, one socket write, instead of one each per frame.
    if (this.wakeForFrames !== undefined && !this.wakeScheduled) {
      this.wakeScheduled = true
      setImmediate(() => {
        this.wakeScheduled = false
        this.wakeForFrames?.()
      })
    }
    return true
  }

  start(): void {
    if (this.loop !== undefined) throw new Error(`link ${this.id}: started twice`)
    this.loop = this.run().catch((error: unknown) => {
      // Dial and write failures are handled inside; reaching here is a bug in this file.
      this.options.logger.error({ err: error }, 'link writer loop failed; link is down until restart')
    })
  }

  /** The peer connected to us: skip what is left of the backoff, the dial will reuse that connection. */
  nudge(): void {
    this.wakeFromBackoff?.()
  }

  /** Stops the loop, flushes what the stream already holds (bounded), closes it, drops the queue. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.shutdown.abort(new TransportError('CLOSED', 'links stopped'))
    this.wakeForFrames?.()
    this.wakeFromBackoff?.()
    await this.loop
    this.frames.length = 0
    this.queuedBytesCount = 0
    const stream = this.stream
    this.stream = undefined
    this.writer = undefined
    if (stream === undefined) return
    try {
      await stream.close({ signal: AbortSignal.timeout(LINK_CLOSE_TIMEOUT_MS) })
    } catch (error) {
      stream.abort(error instanceof Error ? error : new TransportError('CLOSED', 'links stopped'))
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.frames.length === 0) {
        await new Promise<void>((resolve) => {
          this.wakeForFrames = resolve
        })
        this.wakeForFrames = undefined
        continue
      }
      if (this.writer === undefined && !(await this.connect())) continue
      await this.flush()
    }
  }

  /** Waits out the backoff, then opens the stream. False when the dial failed or the link stopped. */
  private async connect(): Promise<boolean> {
    const { libp2p, protocol, logger, counters } = this.options
    if (this.attempt > 0) {
      await this.sleep(
        backoffDelayMs(
          this.attempt,
          this.options.reconnectBackoffBaseMs,
          this.options.reconnectBackoffMaxMs,
          this.options.random,
        ),
      )
      if (this.stopped) return false
    }
    let stream: Stream
    try {
      const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.options.dialTimeoutMs)])
      stream = await libp2p.dialProtocol(this.options.multiaddr, protocol, { signal })
    } catch (error) {
      if (this.stopped) return false
      this.attempt += 1
      counters.dialFailures += 1
      // The first failure of a streak is worth a line; the retries of a peer that stays down are not.
      const level = this.attempt === 1 ? 'info' : 'debug'
      logger[level]({ attempt: this.attempt, err: describe(error) }, 'link dial failed')
      return false
    }
    if (this.stopped) {
      stream.abort(new TransportError('CLOSED', 'links stopped'))
      return false
    }
    this.stream = stream
    // The peer never writes on our outbound stream; whatever it sends is buffered (bounded) and unread.
    this.writer = frameStream(stream, this.options.frameBytesMax)
    this.openedAtMs = performance.now()
    stream.addEventListener('close', (event) => this.lose(stream, event.error ?? 'stream closed'), { once: true })
    counters.streamsOpened += 1
    if (this.everOpened) counters.reconnects += 1
    logger.info({ reconnect: this.everOpened, afterFailures: this.attempt }, 'link open')
    this.everOpened = true
    return true
  }

  /** Writes one batch of queued frames, waiting for the stream to drain if the muxer pushes back. */
  private async flush(): Promise<void> {
    const writer = this.writer
    const stream = this.stream
    if (writer === undefined || stream === undefined) throw new Error(`link ${this.id}: flush without a stream`)
    let count = 0
    let bytes = 0
    for (const frame of this.frames) {
      if (count > 0 && bytes + frame.byteLength > WRITE_BATCH_BYTES_MAX) break
      bytes += frame.byteLength
      count += 1
    }
    const batch = this.frames.splice(0, count)
    this.queuedBytesCount -= bytes
    try {
      await writer.writeV(batch, { signal: this.shutdown.signal })
      this.options.counters.framesSent += count
      this.options.counters.bytesSent += bytes
    } catch (error) {
      this.options.counters.framesDroppedInFlight += count
      if (!this.stopped) this.lose(stream, error)
    }
  }

  /** The stream failed or closed: forget it, abort it if still open, and update the backoff. */
  private lose(stream: Stream, reason: unknown): void {
    if (this.stream !== stream) return
    this.stream = undefined
    this.writer = undefined
    const livedMs = performance.now() - this.openedAtMs
    this.attempt = livedMs >= LINK_HEALTHY_MS ? 0 : this.attempt + 1
    if (stream.status === 'open')
      stream.abort(reason instanceof Error ? reason : new TransportError('CLOSED', String(reason)))
    if (!this.stopped) this.options.logger.info({ livedMs: Math.round(livedMs), err: describe(reason) }, 'link lost')
  }

  private sleep(delayMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (): void => {
        clearTimeout(timer)
        this.wakeFromBackoff = undefined
        resolve()
      }
      timer = setTimeout(done, delayMs)
      this.wakeFromBackoff = done
    })
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}
