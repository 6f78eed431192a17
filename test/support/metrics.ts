import { createServer } from 'node:net'
import { parsePromText } from '@nodeledger/metrics'
import type { PromText } from '@nodeledger/metrics'

/** Shared helpers of the tests that scrape replicas and workers over HTTP. */

/** GET /metrics, parsed (strictly: a malformed exposition fails the test). */
export async function scrape(baseUrl: string): Promise<PromText> {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })
  if (response.status !== 200) throw new Error(`GET ${baseUrl}/metrics: ${response.status}`)
  return parsePromText(await response.text())
}

/** GET /health or /ready: the status and the JSON body. */
export async function probe(
  baseUrl: string,
  path: '/health' | '/ready',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}${path}`, { signal: AbortSignal.timeout(5_000) })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

/** A TCP port free on 127.0.0.1 right now (the kernel's pick), for a listener started next. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}
