/**
 * Registry benchmark (not a test): codec and apply throughput for a ~300-byte record, and snapshot
 * and restore of 100,000 records.
 *
 *   node_modules/.bin/node packages/registry/bench/registry.bench.ts [records]
 *
 * Prints one line per measurement; the package README records a run.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Registry, decodeCommand, decodeRecord, emptyRecord, encodeCommand, encodeRecord } from '../src/index.ts'
import type { Command, NodeData, RegistryLogEntry } from '../src/index.ts'
import { REPLICA_A, REPLICAS, fullFields, peerId } from '../test/helpers.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const T0 = 1_700_000_000_000
const recordCount = Number(process.argv[2] ?? 100_000)

function heapMiB(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed / 2 ** 20
}

/** Runs `operation` for at least `durationMs` (after a warm-up) and returns operations per second. */
function rate(operation: (i: number) => void, durationMs = 1_000): number {
  for (let i = 0; i < 2_000; i++) operation(i)
  let count = 0
  const start = performance.now()
  let elapsed = 0
  while (elapsed < durationMs) {
    for (let i = 0; i < 500; i++) operation(count++)
    elapsed = performance.now() - start
  }
  return (count / elapsed) * 1_000
}

/** Wall and CPU time of `operation`: on a shared machine CPU time is the steadier figure. */
function timed<T>(operation: () => T): { value: T; text: string } {
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  const value = operation()
  const wallMs = performance.now() - start
  const cpu = process.cpuUsage(cpuBefore)
  return { value, text: `${wallMs.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1_000).toFixed(0)} ms CPU` }
}

function print(name: string, value: string): void {
  console.log(`${name.padEnd(44)} ${value}`)
}

const thousands = (n: number) => Math.round(n).toLocaleString('en-US')

// ---- a ~300-byte record and the delta that carries it ---------------------------------------
const worker = peerId(1)
const record: NodeData = {
  ...emptyRecord(worker),
  ...fullFields(12_345),
  observers: [REPLICA_A],
  isActive: true,
  firstJoinedMs: T0,
  lastJoinedMs: T0 + 1_000,
  lastLeftMs: T0 + 500,
  lastUpdatedMs: T0 + 2_000,
  uptimeAccumulatedMs: 500,
  originSeq: 42,
  changedIndex: 1_234_567,
}
const recordBytes = encodeRecord(record)
const deltaEnvelope = {
  timestampMs: T0,
  command: {
    kind: 'delta',
    submitterPeerId: worker,
    delta: { originPeerId: worker, seq: 1, fields: fullFields(12_345) },
  } as Command,
}
const deltaBytes = encodeCommand(deltaEnvelope)

console.log(
  `node ${process.version}, ${process.arch}, load average ${(await import('node:os')).loadavg()[0]!.toFixed(2)}; record ${recordBytes.length} B, delta command ${deltaBytes.length} B`,
)
print('encodeRecord', `${thousands(rate(() => encodeRecord(record)))} /s`)
print('decodeRecord (peer id and multiaddrs parsed)', `${thousands(rate(() => decodeRecord(recordBytes)))} /s`)
print('encodeCommand (delta; validates by decoding)', `${thousands(rate(() => encodeCommand(deltaEnvelope)))} /s`)
print('decodeCommand (delta)', `${thousands(rate(() => decodeCommand(deltaBytes)))} /s`)

// apply: each entry is a new delta (next sequence) from one of 1,000 origins, pre-encoded.
{
  const origins = Array.from({ length: 1_000 }, (_, i) => peerId(i))
  const entries: RegistryLogEntry[] = []
  for (let i = 0; i < 200_000; i++) {
    const origin = origins[i % origins.length]!
    const command: Command = {
      kind: 'delta',
      submitterPeerId: origin,
      delta: { originPeerId: origin, seq: Math.floor(i / origins.length) + 1, fields: fullFields(i) },
    }
    entries.push({ index: i + 1, data: encodeCommand({ timestampMs: T0 + i, command }) })
  }
  const registry = new Registry({ replicaPeerIds: REPLICAS })
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  for (const entry of entries) registry.apply(entry)
  const elapsed = performance.now() - start
  const cpu = process.cpuUsage(cpuBefore)
  const cpuMs = (cpu.user + cpu.system) / 1_000
  print(
    'apply (delta, decode + merge)',
    `${thousands((entries.length / elapsed) * 1_000)} /s wall, ${thousands((entries.length / cpuMs) * 1_000)} /s CPU (${entries.length.toLocaleString('en-US')} entries)`,
  )
}

// ---- snapshot and restore of `recordCount` records ------------------------------------------
// Functions, not blocks, so that each phase's garbage is unreachable when the heap is measured.
function buildRegistry(): Registry {
  const registry = new Registry({ replicaPeerIds: REPLICAS })
  let index = 0
  for (let i = 0; i < recordCount; i++) {
    const id = peerId(i)
    const join: Command = { kind: 'observation', replicaPeerId: REPLICA_A, peerId: id, event: 'joined' }
    registry.apply({ index: ++index, data: encodeCommand({ timestampMs: T0 + i, command: join }) })
    const delta: Command = {
      kind: 'delta',
      submitterPeerId: id,
      delta: { originPeerId: id, seq: 1, fields: fullFields(i) },
    }
    registry.apply({ index: ++index, data: encodeCommand({ timestampMs: T0 + i, command: delta }) })
  }
  return registry
}

function measureRestore(bytes: Uint8Array, verify: boolean): void {
  const heapBeforeMiB = heapMiB()
  const restored = new Registry()
  const { text } = timed(() => restored.restore(bytes, { verify }))
  const retainedMiB = heapMiB() - heapBeforeMiB
  if (restored.size !== recordCount) throw new Error('restore lost records')
  print(`restore (verify: ${verify})`, `${text}, ${retainedMiB.toFixed(0)} MiB heap retained`)
}

function measureSnapshot(): void {
  const heapBeforeMiB = heapMiB()
  const registry = buildRegistry()
  const registryMiB = heapMiB() - heapBeforeMiB
  print(
    `registry of ${thousands(recordCount)} records`,
    `${registryMiB.toFixed(0)} MiB heap (${((registryMiB * 2 ** 20) / recordCount).toFixed(0)} B/record)`,
  )

  registry.list({ limit: 1 }) // builds the sorted peer id index, which apply keeps from then on
  heapMiB()
  const snapshot = timed(() => registry.snapshot())
  const bytes = snapshot.value
  print(
    'snapshot',
    `${snapshot.text}, ${(bytes.length / 2 ** 20).toFixed(1)} MiB (${(bytes.length / recordCount).toFixed(0)} B/record)`,
  )

  let start = performance.now()
  const eligible = registry.eligible('twitter')
  print('eligible(twitter)', `${(performance.now() - start).toFixed(1)} ms for ${thousands(eligible.length)} workers`)
  start = performance.now()
  const changes = registry.changesSince(registry.appliedIndex - 2_000)
  print(
    'changesSince (last 1,000 records)',
    `${(performance.now() - start).toFixed(1)} ms for ${thousands(changes.records.length)} records`,
  )
  start = performance.now()
  const page = registry.list({ active: true, limit: 1_000 })
  print(
    'list (active, first 1,000)',
    `${(performance.now() - start).toFixed(1)} ms for ${thousands(page.length)} records`,
  )

  // A replica restoring a snapshot from the network (verify) or its own disk (no verify).
  measureRestore(bytes, true)
  measureRestore(bytes, false)
}

measureSnapshot()
