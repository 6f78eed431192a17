import { readFileSync } from 'node:fs'
import type { FastifyInstance, FastifyReply } from 'fastify'

/**
 * The live cluster page: one HTML document with its style and script inline (cluster-page/, kept
 * as separate files so the linter reads the script), read and assembled once. It fetches only
 * this origin's /v1/cluster, /v1/nodes and /v1/events; the Content-Security-Policy says so to the
 * browser, which then refuses anything from elsewhere (no CDN, no font, no analytics).
 */
let page: string | undefined

export function clusterPageHtml(): string {
  if (page === undefined) {
    const read = (name: string): string => readFileSync(new URL(`./cluster-page/${name}`, import.meta.url), 'utf8')
    // Function replacers: the script's own `$` sequences must not be read as replacement patterns.
    page = read('page.html')
      .replace('/*STYLE*/', () => read('page.css'))
      .replace('/*SCRIPT*/', () => read('page.js'))
  }
  return page
}

export const CLUSTER_PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
} as const

/** GET / and GET /ui: the page (a Fastify plugin for OpsServerOptions.plugins, or the `nodeledger ui` server). */
export function clusterPageRoutes(app: FastifyInstance): void {
  const serve = async (_request: unknown, reply: FastifyReply): Promise<FastifyReply> =>
    reply.headers(CLUSTER_PAGE_HEADERS).send(clusterPageHtml())
  app.get('/', serve)
  app.get('/ui', serve)
}
