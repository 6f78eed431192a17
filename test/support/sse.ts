/** A Server-Sent Events reader over plain `fetch`, as a client in any language would read the gateway's stream. */

export interface SseEvent {
  readonly id?: string
  readonly event?: string
  readonly data?: string
  readonly comment?: string
}

export interface ChangeEvent {
  readonly id: number
  readonly index: number
  readonly peerId: string
  readonly node: Record<string, unknown> & { peerId: string; changedIndex: number }
}

export class SseReader {
  readonly events: SseEvent[] = []
  status = 0
  /** Resolves when the stream ends (the server closed it, or `close`). */
  ended: Promise<void> = Promise.resolve()
  readonly #controller = new AbortController()
  #buffer = ''

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const reader = new SseReader()
    const response = await fetch(url, { headers, signal: reader.#controller.signal })
    reader.status = response.status
    if (response.status !== 200 || response.body === null) return reader
    const body = response.body.pipeThrough(new TextDecoderStream()).getReader()
    reader.ended = (async () => {
      try {
        for (;;) {
          const { value, done } = await body.read()
          if (done) return
          reader.#feed(value)
        }
      } catch {
        // closed by us
      }
    })()
    return reader
  }

  changes(): ChangeEvent[] {
    return this.events
      .filter((event) => event.event === 'change')
      .map((event) => {
        const data = JSON.parse(event.data!) as { index: number; node: ChangeEvent['node'] }
        return { id: Number(event.id), index: data.index, peerId: data.node.peerId, node: data.node }
      })
  }

  close(): void {
    this.#controller.abort()
  }

  #feed(text: string): void {
    this.#buffer += text
    for (let end = this.#buffer.indexOf('\n\n'); end !== -1; end = this.#buffer.indexOf('\n\n')) {
      const block = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end + 2)
      const event: Record<string, string> = {}
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) event.comment = line.slice(1).trim()
        else {
          const colon = line.indexOf(':')
          const field = colon === -1 ? line : line.slice(0, colon)
          if (field === 'id' || field === 'event' || field === 'data') event[field] = line.slice(colon + 1).trimStart()
        }
      }
      this.events.push(event)
    }
  }
}
