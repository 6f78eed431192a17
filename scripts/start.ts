/**
 * `pnpm start`: the main job. Today (issue 2) nodeledger has its Raft core and simulator, not yet
 * its libp2p replicas (issue 4) or workers (issue 5), so this starts a 3-replica cluster of the real
 * core in this process over an in-memory network, writes to it, kills the leader and shows the
 * failover. It says so, plainly, and grows into the real cluster when the replicas exist.
 */
import { MemoryStorage, RawNode, RaftError, createSeededRng } from '@nodeledger/raft'
import type { Message, NodeId } from '@nodeledger/raft'

const TICK_INTERVAL_MS = 10
const ids: NodeId[] = [1, 2, 3]
console.log('nodeledger: starting a 3-replica Raft cluster in this process (in-memory network, 10 ms ticks).')
console.log('The libp2p authority replicas (issue 4) and worker nodes (issue 5) are not built yet; this shows the consensus core they will run.\n')

const storages = new Map(ids.map((id) => [id, MemoryStorage.bootstrap({ voters: ids, learners: [] })]))
const nodes = new Map<NodeId, RawNode | undefined>(ids.map((id) => [id, new RawNode({ id, storage: storages.get(id)!, rng: createSeededRng(Date.now() + id) })]))
let inFlight: Message[] = []
const startedMs = Date.now()
let acknowledged = 0

function leader(): NodeId | undefined {
  for (const [id, node] of nodes) if (node?.status().role === 'leader') return id
  return undefined
}

function drive(): void {
  for (let round = 0; round < 10; round++) {
    const due = inFlight
    inFlight = []
    for (const message of due) nodes.get(message.to)?.step(message)
    for (const [id, node] of nodes) {
      while (node?.hasReady()) {
        const ready = node.ready()
        const storage = storages.get(id)!
        if (ready.snapshot) storage.applySnapshot(ready.snapshot)
        storage.append(ready.entries)
        if (ready.hardState) storage.setHardState(ready.hardState)
        inFlight.push(...ready.messages)
        if (ready.softState?.role === 'leader') console.log(`${String(Date.now() - startedMs).padStart(5)} ms  replica ${id} leads term ${node.status().term}`)
        node.advance(ready)
      }
    }
  }
}

function table(): void {
  console.table(ids.map((id) => {
    const status = nodes.get(id)?.status()
    return status === undefined ? { replica: id, role: 'killed' } : { replica: id, role: status.role, term: status.term, commit: status.commit, applied: status.applied, leader: status.leader }
  }))
}

const timer = setInterval(() => {
  for (const node of nodes.values()) node?.tick()
  const current = leader()
  if (current !== undefined) {
    try {
      nodes.get(current)!.propose(new TextEncoder().encode(`write ${acknowledged}`))
      acknowledged++
    } catch (error) {
      if (!(error instanceof RaftError)) throw error
    }
  }
  drive()
}, TICK_INTERVAL_MS)

setTimeout(() => {
  const victim = leader()
  table()
  if (victim === undefined) return
  console.log(`\nkilling leader ${victim} (its peers see the connection close and campaign at once)`)
  nodes.set(victim, undefined)
  inFlight = inFlight.filter((message) => message.to !== victim)
  for (const node of nodes.values()) node?.reportUnreachable(victim)
}, 1500)

setTimeout(() => {
  clearInterval(timer)
  table()
  console.log('\nDone. Run the test suite (README) to see the simulator check 2,000 seeds of faults.')
}, 3000)
