import { spawn } from 'node:child_process'
import { loadClusterFile } from '@nodeledger/authority/cluster-file'
import { readHostPort } from '@nodeledger/metrics/address'
import { UsageError } from '../exit-codes.ts'

export interface UiOptions {
  cluster: string
  /** HOST:PORT to serve the page on (:PORT is 127.0.0.1; port 0 picks a free one). */
  http: string
  open: boolean
}

/**
 * `nodeledger ui`: serve the live cluster page here, reading from the replicas' HTTP listeners
 * (the cluster file's `http`), until Ctrl-C. A server: not in the client commands' bundle
 * (build.ts), and its module (Fastify) is imported only when the command runs.
 */
export async function runUi(options: UiOptions): Promise<void> {
  const address = readHostPort(options.http, { allowAnyPort: true })
  if (typeof address === 'string') throw new UsageError(`--http ${address}`)
  const cluster = await loadClusterFile(options.cluster)
  const upstreams = cluster.replicas.flatMap((replica) => (replica.http === undefined ? [] : [replica.http]))
  if (upstreams.length === 0)
    throw new UsageError(
      `no replica in ${options.cluster} has an "http" address: the page reads from the replicas' HTTP listeners (cluster file replicas[].http, e.g. "127.0.0.11:9101")`,
    )
  const { startClusterUi } = await import('@nodeledger/authority/cluster-ui')
  const ui = await startClusterUi({ upstreams, address })
  console.log(`cluster page: ${ui.url}  (reading from ${upstreams.length} replicas; Ctrl-C stops)`)
  if (options.open) openBrowser(ui.url)
  const stop = (): void => {
    void ui.close().then(() => process.exit(0))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

/** The desktop's opener; without one (a server, CI) the printed URL is the way in. */
function openBrowser(url: string): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open'
  try {
    const child = spawn(command, [url], { stdio: 'ignore', detached: true })
    child.on('error', () => console.error(`nodeledger ui: could not start ${command}; open ${url} yourself`))
    child.unref()
  } catch {
    console.error(`nodeledger ui: could not start ${command}; open ${url} yourself`)
  }
}
