import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import { leaderOf, operatorClient } from './support/cluster-client.ts'
import { removeDir, startWorker, workerSlots } from './support/workers.ts'
import type { WorkerSlot } from './support/workers.ts'

/**
 * The live cluster page (issue 14) in a real browser: Debian's headless Chromium driven by
 * playwright-core (never a browser of its own: `.ci/run` installs `chromium`), against 3 replica
 * processes with HTTP listeners, workers in this process, and `nodeledger ui` as a process. Two
 * pages: one served by a follower's own listener, one by `nodeledger ui`, which reads from the
 * replicas. Every wait is on the page's DOM (or the cluster), with timeouts meant for a loaded
 * 2-core machine; the failover's time on the page is printed, not asserted.
 *
 * Screenshots go to a temporary dir, or to NODELEDGER_UI_SCREENSHOTS_DIR (`docs` refreshes the
 * README's: NODELEDGER_UI_SCREENSHOTS_DIR=docs npx vitest run --config vitest.integration.config.ts test/cluster-page.test.ts).
 */
/** The little of the DOM the functions run in the page use (the project's types have no DOM lib). */
interface PageElement {
  getAttribute(name: string): string | null
  readonly textContent: string | null
  readonly classList: { contains(name: string): boolean }
}
declare const document: {
  querySelector(selector: string): PageElement | null
  querySelectorAll(selector: string): Iterable<PageElement> & { readonly length: number }
}

const CHROMIUM = process.env.NODELEDGER_CHROMIUM ?? '/usr/bin/chromium'
const CLI = join(dirname(fileURLToPath(import.meta.url)), '../packages/cli/src/main.ts')
const WORKERS = 4
/** The DOM waits: generous, since the page polls once a second and the machine may be busy. */
const PAGE_WAIT_MS = 60_000

let cluster: ProcessCluster
let client: AuthorityClient
let browser: Browser
let ui: ChildProcess | undefined
let uiUrl: string
let root: string
let slots: WorkerSlot[]
/** The page a follower serves, and the one `nodeledger ui` serves. */
let onReplica: Page
let onUi: Page
let servingReplica: number
let firstLeader: number
let screenshotsDir: string
/** Checks on what the browser did, made at the end (nothing fetched from outside the machine). */
const afterChecks: Array<() => void> = []

const running = () => slots.flatMap((slot) => (slot.tracker === undefined ? [] : [slot.tracker]))

async function shownLeader(page: Page): Promise<string> {
  return (await page.getAttribute('#leader-id', 'data-leader')) ?? ''
}

/** Waits until the page shows `id` as the leader (a string: '' is "none"), or any other than `not`. */
async function waitForLeader(page: Page, expected: { id?: number; not?: number }): Promise<number> {
  await page.waitForFunction(
    ({ id, not }) => {
      const shown = document.querySelector('#leader-id')?.getAttribute('data-leader') ?? ''
      if (shown === '') return false
      return id !== undefined ? shown === String(id) : shown !== String(not)
    },
    expected,
    { timeout: PAGE_WAIT_MS, polling: 100 },
  )
  return Number(await shownLeader(page))
}

async function waitForNode(page: Page, peerId: string): Promise<void> {
  await page.waitForSelector(`#nodes-table tr[data-peer="${peerId}"]`, { timeout: PAGE_WAIT_MS })
}

/** Waits until the nodes table holds exactly `peerIds` (the filters redraw it a moment after a change). */
async function waitForRows(page: Page, peerIds: readonly string[]): Promise<void> {
  await page.waitForFunction(
    (expected) =>
      JSON.stringify(
        [...document.querySelectorAll('#nodes-table tbody tr')].map((row) => row.getAttribute('data-peer')).sort(),
      ) === JSON.stringify([...expected].sort()),
    peerIds,
    { timeout: PAGE_WAIT_MS, polling: 100 },
  )
}

async function screenshot(page: Page, name: string): Promise<void> {
  const png = await page.screenshot({ fullPage: true })
  expect(png.subarray(0, 4).toString('latin1')).toBe('\x89PNG')
  writeFileSync(join(screenshotsDir, name), png)
}

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`).toBe(true)
  screenshotsDir =
    process.env.NODELEDGER_UI_SCREENSHOTS_DIR ?? join(process.env.TMPDIR ?? '/tmp', 'nodeledger-ui-shots')
  mkdirSync(screenshotsDir, { recursive: true })
  cluster = ProcessCluster.create({ replicas: 3, http: true })
  cluster.startAll()
  client = await operatorClient(cluster)
  firstLeader = (await leaderOf(client, 60_000)).id
  ;({ root, slots } = await workerSlots(WORKERS + 1))
  for (const [i, slot] of slots.slice(0, WORKERS).entries())
    await startWorker(slot, cluster.multiaddrs, {
      self: { isStaked: i % 2 === 0, isWebScraper: i < 2, isTwitterScraper: i >= 2, version: '1.4.2' },
    })

  ui = spawn(process.execPath, [CLI, 'ui', '--cluster', cluster.clusterPath, '--http', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  ui.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  ui.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  uiUrl = await waitUntil(
    'nodeledger ui to print its URL',
    () => {
      if (ui!.exitCode !== null) throw new Error(`nodeledger ui exited with ${ui!.exitCode}`)
      return /cluster page: (http:\/\/\S+)/.exec(output)?.[1]
    },
    60_000,
    100,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; its output: ${output}`)
  })

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI: Chromium's sandbox needs an unprivileged user. /dev/shm may be small in a container.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  })
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } })
  // The page must fetch nothing from outside this machine: any request to elsewhere fails the test.
  const outside: string[] = []
  context.on('request', (request) => {
    const url = new URL(request.url())
    if (!['127.0.0.1', 'localhost'].includes(url.hostname) && !url.hostname.startsWith('127.'))
      outside.push(request.url())
  })
  afterChecks.push(() => expect(outside).toEqual([]))
  servingReplica = cluster.ids.find((id) => id !== firstLeader)!
  onReplica = await context.newPage()
  onUi = await context.newPage()
  await onReplica.goto(`${cluster.httpUrl(servingReplica)}/`)
  await onUi.goto(uiUrl)
}, 180_000)

afterAll(async () => {
  await browser?.close().catch(() => {})
  if (ui !== undefined && ui.exitCode === null) {
    const exited = new Promise((resolve) => ui!.once('exit', resolve))
    ui.kill('SIGTERM')
    await exited
  }
  await Promise.allSettled(running().map((tracker) => tracker.stop({ leave: false })))
  await client?.stop()
  await cluster?.stopAll()
  if (root !== undefined) removeDir(root)
}, 60_000)

describe('the live cluster page in headless Chromium (issue 14)', () => {
  it('shows every replica, the leader highlighted, and the workers in the nodes table with filters and counts', async () => {
    for (const page of [onReplica, onUi]) {
      // The page and the cluster agree on who leads (on a loaded machine an early election may
      // have moved it since the start: the leader is then whoever both say now).
      firstLeader = await waitUntil(
        'the page to show the leader the cluster has',
        async () => {
          const leader = (await leaderOf(client, 60_000)).id
          return (await shownLeader(page)) === String(leader) ? leader : undefined
        },
        PAGE_WAIT_MS,
        200,
      )
      await page.waitForFunction(
        () =>
          document.querySelectorAll('#replicas-table tbody tr[data-role]').length === 3 &&
          [...document.querySelectorAll('#replicas-table tbody tr')].every(
            (row) => !row.classList.contains('unreachable'),
          ),
        undefined,
        { timeout: PAGE_WAIT_MS },
      )
      expect(await page.getAttribute(`#replicas-table tr[data-replica="${firstLeader}"]`, 'class')).toContain('leader')
      expect(await page.locator('#replicas-table tr.leader').count()).toBe(1)
      for (const tracker of running()) await waitForNode(page, tracker.peerId)
      await page.waitForSelector(`#history-table tr[data-term]`, { timeout: PAGE_WAIT_MS })
    }
    expect(await onReplica.textContent('#self-id')).toBe(String(servingReplica))

    // Filters: staked (workers 0 and 2), then capability web (workers 0 and 1), then none.
    const peerOf = (i: number): string => slots[i]!.tracker!.peerId
    await onReplica.selectOption('#filter-staked', 'true')
    await waitForRows(onReplica, [peerOf(0), peerOf(2)])
    await onReplica.selectOption('#filter-staked', '')
    await onReplica.selectOption('#filter-capability', 'web')
    await waitForRows(onReplica, [peerOf(0), peerOf(1)])
    await onReplica.selectOption('#filter-capability', '')
    await waitForRows(
      onReplica,
      running().map((tracker) => tracker.peerId),
    )
    const counts = (await onReplica.textContent('#counts')) ?? ''
    expect(counts).toContain(`${WORKERS} total`)
    expect(counts).toContain('2 staked')
    // A change after the page opened comes in on the event stream, and is listed.
    const updating = slots[WORKERS - 1]!.tracker!
    await updating.update({ version: '1.4.3' })
    for (const page of [onReplica, onUi])
      await page.waitForFunction(
        (peerId) =>
          [...document.querySelectorAll('#changes-list li')].some(
            (item) => item.getAttribute('data-peer') === peerId && (item.textContent ?? '').includes('updated version'),
          ),
        updating.peerId,
        { timeout: PAGE_WAIT_MS, polling: 100 },
      )
    expect(await onReplica.textContent(`#nodes-table tr[data-peer="${updating.peerId}"]`)).toContain('1.4.3')
    await screenshot(onReplica, 'ui-cluster.png')
  })

  it('after SIGKILL of the leader, both pages show the new leader and the history shows the failover', async () => {
    // The page on a replica's own listener must outlive the kill: it is served by a follower.
    expect(firstLeader).not.toBe(servingReplica)
    const killedMs = Date.now()
    await cluster.kill(firstLeader)
    await Promise.all([onReplica, onUi].map((page) => waitForLeader(page, { not: firstLeader })))
    const seenMs = Date.now() - killedMs
    const newLeader = (await leaderOf(client, 60_000)).id
    expect(newLeader).not.toBe(firstLeader)
    // On a loaded machine a second election may follow the first: the pages end on the cluster's leader.
    for (const page of [onReplica, onUi]) expect(await waitForLeader(page, { id: newLeader })).toBe(newLeader)
    console.log(`cluster page: a new leader shown ${seenMs} ms after SIGKILL of leader ${firstLeader}`)
    for (const page of [onReplica, onUi]) {
      await page.waitForFunction(
        (killed) =>
          document.querySelector(`#replicas-table tr[data-replica="${killed}"]`)?.classList.contains('unreachable') ===
          true,
        firstLeader,
        { timeout: PAGE_WAIT_MS },
      )
      expect(await page.isVisible('#banner')).toBe(true)
      expect(await page.textContent('#banner')).toContain(`→ replica ${newLeader}`)
    }
    // The follower serving the page saw both terms' leaders.
    await onReplica.waitForFunction(
      () => document.querySelectorAll('#history-table tr[data-term]').length >= 2,
      undefined,
      {
        timeout: PAGE_WAIT_MS,
      },
    )
    const history = await onReplica
      .locator('#history-table tbody tr')
      .evaluateAll((rows) => rows.map((row) => row.textContent ?? ''))
    expect(history[0]).toContain(`replica ${newLeader}`)
    expect(history.some((row) => row.includes(`replica ${firstLeader}`))).toBe(true)
    await screenshot(onReplica, 'ui-failover.png')
  })

  it('a worker that joins after the failover appears in the nodes table of both pages, and in the recent changes', async () => {
    const joined = await startWorker(slots[WORKERS]!, cluster.multiaddrs, {
      self: { isStaked: true, isDiscordScraper: true, version: '1.5.0' },
    })
    for (const page of [onReplica, onUi]) {
      await waitForNode(page, joined.peerId)
      await page.waitForSelector(`#changes-list li[data-peer="${joined.peerId}"]`, { timeout: PAGE_WAIT_MS })
    }
    const row = (await onUi.textContent(`#nodes-table tr[data-peer="${joined.peerId}"]`)) ?? ''
    expect(row).toContain('discord')
    expect(row).toContain('1.5.0')
    for (const check of afterChecks) check()
  })
})
