// The live cluster page (served inline by packages/authority/src/http/cluster-page.ts). Plain
// browser JavaScript, no framework and nothing fetched but this origin's routes:
//   GET /v1/cluster  every CLUSTER_POLL_MS: replicas, leader, leader history
//   GET /v1/nodes    pages of records, once, into a mirror the filters and counts read
//   GET /v1/events   SSE of changed records, applied to the mirror and listed as recent changes
// The EventSource resumes by itself (Last-Event-ID) when the stream breaks.
;(() => {
  const CLUSTER_POLL_MS = 1000
  const REQUEST_TIMEOUT_MS = 3000
  const NODES_PAGE_LIMIT = 1000
  /** Records held in the page: beyond this the filters ask the server and counts cover the first ones. */
  const MIRROR_NODES_MAX = 20000
  const TABLE_ROWS_MAX = 500
  const CHANGES_SHOWN_MAX = 50
  const RENDER_DELAY_MS = 200
  /** Fields whose change is bookkeeping, not news, in the change list. */
  const QUIET_FIELDS = new Set(['changedIndex', 'lastUpdatedMs', 'originSeq', 'observers', 'uptimeAccumulatedMs'])
  const CAPABILITIES = [
    ['twitter', 'isTwitterScraper'],
    ['web', 'isWebScraper'],
    ['discord', 'isDiscordScraper'],
    ['telegram', 'isTelegramScraper'],
  ]

  const $ = (id) => document.getElementById(id)
  const state = {
    /** The leader shown (null: none), undefined before the first answer. */
    leader: undefined,
    lastLeader: undefined,
    nodes: new Map(),
    mirrorComplete: false,
    mirrorLast: '',
    changes: [],
    serverRows: undefined,
    renderTimer: undefined,
  }

  function html(value) {
    return String(value).replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
    )
  }
  const short = (peerId) => (peerId.length > 16 ? `${peerId.slice(0, 8)}…${peerId.slice(-6)}` : peerId)
  const time = (ms) => (ms > 0 ? new Date(ms).toLocaleTimeString([], { hour12: false }) : '-')
  function age(ms) {
    if (ms <= 0) return 'never'
    const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000))
    if (seconds < 90) return `${seconds}s ago`
    if (seconds < 5400) return `${Math.round(seconds / 60)}m ago`
    return `${Math.round(seconds / 3600)}h ago`
  }
  const number = (value) => (value === null || value === undefined ? '-' : Number(value).toLocaleString('en'))

  async function getJson(path) {
    const response = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`)
    return response.json()
  }

  function setConnection(text, down) {
    const element = $('connection')
    element.textContent = text
    element.classList.toggle('down', down)
  }

  // ---------------------------------------------------------------------------------------------
  // Replicas, leader, history

  function renderCluster(view) {
    $('cluster-id').textContent = view.clusterId
    $('self-id').textContent = String(view.self.id)
    const leader = view.leader
    const leaderElement = $('leader-id')
    leaderElement.textContent = leader === null ? 'none' : `replica ${leader.id}`
    leaderElement.dataset.leader = leader === null ? '' : String(leader.id)
    leaderElement.classList.toggle('none', leader === null)
    $('leader-detail').textContent = leader === null ? '(no replica leads right now)' : `term ${leader.term}`
    // The banner names the last leader known, so a failover reads "1 → 2" even when the page
    // saw the moment between them, with no leader, first.
    const now = leader === null ? null : { id: leader.id, term: leader.term }
    const previous = state.leader
    const changed = previous !== undefined && (previous?.id !== now?.id || previous?.term !== now?.term)
    if (changed) {
      const at = new Date().toLocaleTimeString([], { hour12: false })
      const last = state.lastLeader
      const banner = $('banner')
      banner.textContent =
        now === null
          ? `No leader since ${at}${last === undefined ? '' : ` (replica ${last.id} led term ${last.term})`}`
          : `Leader changed at ${at}: ${last === undefined ? 'none' : `replica ${last.id}`} → replica ${now.id} (term ${now.term})`
      banner.hidden = false
    }
    state.leader = now
    if (now !== null) state.lastLeader = now
    $('replicas-table').tBodies[0].innerHTML = view.members
      .map((member) => {
        const isLeader = leader !== null && member.id === leader.id && member.reachable
        const classes = [isLeader ? 'leader' : '', member.reachable ? '' : 'unreachable'].join(' ').trim()
        return `<tr data-replica="${member.id}" data-role="${html(member.role)}" class="${classes}">
<td>${member.id}${member.id === view.self.id ? ' (this)' : ''}</td><td><code title="${html(member.peerId)}">${html(short(member.peerId))}</code></td>
<td>${member.reachable ? html(member.role) : 'unreachable'}</td><td>${number(member.term)}</td>
<td>${number(member.commitIndex)}</td><td>${number(member.appliedIndex)}</td><td>${number(member.lastIndex)}</td>
<td>${number(member.lagEntries)}</td><td>${member.voter ? 'voter' : 'learner'}</td><td>${member.reachable ? 'yes' : 'no'}</td></tr>`
      })
      .join('')
    $('history-table').tBodies[0].innerHTML = [...view.leaderHistory]
      .reverse()
      .map(
        (entry) =>
          `<tr data-term="${entry.term}"><td>${entry.term}</td><td>replica ${entry.id} <code>${html(short(entry.peerId))}</code></td><td>${time(entry.sinceMs)} (${age(entry.sinceMs)})</td></tr>`,
      )
      .join('')
  }

  async function pollCluster() {
    try {
      renderCluster(await getJson('/v1/cluster'))
      setConnection(`live · ${new Date().toLocaleTimeString([], { hour12: false })}`, false)
    } catch (error) {
      setConnection(`cannot reach the cluster: ${error.message}`, true)
    } finally {
      setTimeout(pollCluster, CLUSTER_POLL_MS)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Nodes: a mirror loaded by pages, then kept by the event stream

  function filters() {
    const read = (id) => $(id).value
    return { active: read('filter-active'), staked: read('filter-staked'), capability: read('filter-capability') }
  }

  function matches(node, filter) {
    if (filter.active !== '' && String(node.isActive) !== filter.active) return false
    if (filter.staked !== '' && String(node.isStaked) !== filter.staked) return false
    if (filter.capability !== '') {
      const field = CAPABILITIES.find(([name]) => name === filter.capability)[1]
      if (!node[field]) return false
    }
    return true
  }

  function capabilities(node) {
    return CAPABILITIES.filter(([, field]) => node[field])
      .map(([name]) => name)
      .join(', ')
  }

  /** The first address without its /p2p/ suffix (the peer id is in the first column), and how many more. */
  function address(node) {
    const [first, ...rest] = node.multiaddrs
    if (first === undefined) return ''
    return `${first.replace(/\/p2p\/[^/]+$/, '')}${rest.length > 0 ? ` +${rest.length}` : ''}`
  }

  function nodeRow(node) {
    return `<tr data-peer="${html(node.peerId)}" class="${node.isActive ? '' : 'inactive'}">
<td><code title="${html(node.peerId)}">${html(short(node.peerId))}</code></td><td>${node.isActive ? 'yes' : `no${node.lastLeftReason ? ` (${html(node.lastLeftReason)})` : ''}`}</td>
<td>${node.isStaked ? 'yes' : 'no'}</td><td>${html(capabilities(node))}</td><td>${html(node.version)}</td>
<td class="address"><code title="${html(node.multiaddrs.join(' '))}">${html(address(node))}</code></td><td>${age(node.lastUpdatedMs)}</td><td>${number(node.changedIndex)}</td></tr>`
  }

  function renderNodes() {
    state.renderTimer = undefined
    const filter = filters()
    const all = [...state.nodes.values()]
    let rows
    let matching
    if (state.mirrorComplete || state.serverRows === undefined) {
      const selected = all.filter((node) => matches(node, filter)).sort((a, b) => (a.peerId < b.peerId ? -1 : 1))
      matching = selected.length
      rows = selected.slice(0, TABLE_ROWS_MAX)
    } else {
      rows = state.serverRows
      matching = undefined
    }
    $('nodes-table').tBodies[0].innerHTML = rows.map(nodeRow).join('')
    const count = (predicate) => all.filter(predicate).length
    const parts = [
      matching === undefined ? `${rows.length} shown (first page from the server)` : `${matching} matching`,
      `${all.length} total${state.mirrorComplete ? '' : ` (the first ${all.length} by peer id)`}`,
      `${count((node) => node.isActive)} active`,
      `${count((node) => node.isStaked)} staked`,
      ...CAPABILITIES.map(([name, field]) => `${count((node) => node[field])} ${name}`),
    ]
    if (matching !== undefined && matching > rows.length) parts.unshift(`showing ${rows.length}`)
    $('counts').textContent = parts.join(' · ')
    $('counts').dataset.total = String(all.length)
    renderChanges()
  }

  function scheduleRender() {
    state.renderTimer ??= setTimeout(renderNodes, RENDER_DELAY_MS)
  }

  /** With a partial mirror, the filters ask the server (the same routes' query string). */
  async function serverFilter() {
    if (state.mirrorComplete) return
    const filter = filters()
    const query = new URLSearchParams({ limit: String(TABLE_ROWS_MAX) })
    for (const [key, value] of Object.entries(filter)) if (value !== '') query.set(key, value)
    try {
      state.serverRows = (await getJson(`/v1/nodes?${query}`)).nodes
    } catch (error) {
      setConnection(`nodes: ${error.message}`, true)
    }
    scheduleRender()
  }

  async function loadNodes() {
    let after = null
    let fromIndex
    for (;;) {
      const query = new URLSearchParams({ limit: String(NODES_PAGE_LIMIT) })
      if (after !== null) query.set('after', after)
      let page
      try {
        page = await getJson(`/v1/nodes?${query}`)
      } catch (error) {
        setConnection(`nodes: ${error.message}; retrying`, true)
        await new Promise((resolve) => setTimeout(resolve, CLUSTER_POLL_MS))
        continue
      }
      // Later pages are read at later indexes: the stream from the first page's index replays
      // whatever changed meanwhile, and a record only moves forward (changedIndex).
      fromIndex ??= page.index
      for (const node of page.nodes) state.nodes.set(node.peerId, node)
      after = page.next
      if (after === null || state.nodes.size >= MIRROR_NODES_MAX) break
    }
    state.mirrorComplete = after === null
    state.mirrorLast = after ?? ''
    scheduleRender()
    if (!state.mirrorComplete) void serverFilter()
    follow(fromIndex)
  }

  function describe(previous, node) {
    if (previous === undefined) return node.isActive ? 'joined' : 'new record'
    if (previous.isActive !== node.isActive)
      return node.isActive
        ? 'became active'
        : `became inactive${node.lastLeftReason ? ` (${node.lastLeftReason})` : ''}`
    const changed = Object.keys(node).filter(
      (key) => !QUIET_FIELDS.has(key) && JSON.stringify(previous[key]) !== JSON.stringify(node[key]),
    )
    return changed.length === 0 ? 'bookkeeping only (observers, uptime)' : `updated ${changed.join(', ')}`
  }

  function follow(fromIndex) {
    const events = new EventSource(`/v1/events?from=${fromIndex}`)
    events.addEventListener('open', () =>
      setConnection(`live · ${new Date().toLocaleTimeString([], { hour12: false })}`, false),
    )
    events.addEventListener('error', () => setConnection('event stream lost; reconnecting…', true))
    events.addEventListener('change', (event) => {
      const { index, node } = JSON.parse(event.data)
      const previous = state.nodes.get(node.peerId)
      if (previous !== undefined && previous.changedIndex >= index) return
      // A partial mirror holds the first records by peer id; one beyond them stays out.
      if (!state.mirrorComplete && previous === undefined && node.peerId > state.mirrorLast) return
      state.nodes.set(node.peerId, node)
      state.changes.unshift({ index, peerId: node.peerId, what: describe(previous, node), atMs: Date.now() })
      state.changes.length = Math.min(state.changes.length, CHANGES_SHOWN_MAX)
      scheduleRender()
    })
  }

  function renderChanges() {
    // A change is highlighted the first time it is drawn only: redrawing restarts the animation.
    $('changes-list').innerHTML = state.changes
      .map((change) => {
        const fresh = change.drawn !== true
        change.drawn = true
        return `<li data-peer="${html(change.peerId)}" class="${fresh ? 'fresh' : ''}"><span class="index">#${change.index}</span> <code>${html(short(change.peerId))}</code> ${html(change.what)} <small>${time(change.atMs)}</small></li>`
      })
      .join('')
  }

  for (const id of ['filter-active', 'filter-staked', 'filter-capability'])
    $(id).addEventListener('change', () => {
      scheduleRender()
      void serverFilter()
    })

  void pollCluster()
  void loadNodes()
})()
