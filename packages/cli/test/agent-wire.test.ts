import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  AGENT_FRAME_BYTES_MAX,
  AgentWireError,
  FrameReader,
  agentDir,
  agentEnabled,
  agentKey,
  encodeFrame,
  idleExitMs,
} from '../src/agent/wire.ts'

const saved = { ...process.env }
afterEach(() => {
  for (const name of ['NODELEDGER_AGENT_DIR', 'NODELEDGER_AGENT', 'NODELEDGER_AGENT_IDLE_S'])
    if (saved[name] === undefined) delete process.env[name]
    else process.env[name] = saved[name]
})

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'nodeledger-agent-wire-'))
}

describe('agent frames', () => {
  it('reassembles frames split anywhere and several in one chunk', () => {
    const bytes = Buffer.concat([encodeFrame({ kind: 'out', text: 'één' }), encodeFrame({ kind: 'done', exitCode: 3 })])
    for (let cut = 0; cut <= bytes.length; cut++) {
      const reader = new FrameReader()
      const frames = [...reader.push(bytes.subarray(0, cut)), ...reader.push(bytes.subarray(cut))]
      expect(frames).toEqual([
        { kind: 'out', text: 'één' },
        { kind: 'done', exitCode: 3 },
      ])
    }
  })

  it('refuses a length over the bound before buffering it, and a body that is not JSON', () => {
    const header = Buffer.alloc(4)
    header.writeUInt32BE(AGENT_FRAME_BYTES_MAX + 1)
    expect(() => new FrameReader().push(header)).toThrow(AgentWireError)
    const garbage = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{x}')])
    expect(() => new FrameReader().push(garbage)).toThrow(/not JSON/)
    expect(() => encodeFrame({ kind: 'out', text: 'x'.repeat(AGENT_FRAME_BYTES_MAX) })).toThrow(AgentWireError)
  })
})

describe('agent directory and key', () => {
  it('creates its directory 0700 and refuses one open to others, a symlink, or a file', () => {
    const root = scratch()
    try {
      process.env.NODELEDGER_AGENT_DIR = join(root, 'agents')
      expect(agentDir(true)).toBe(join(root, 'agents'))
      chmodSync(join(root, 'agents'), 0o777)
      expect(agentDir(true)).toBeUndefined()
      mkdirSync(join(root, 'real'), { mode: 0o700 })
      symlinkSync(join(root, 'real'), join(root, 'link'))
      process.env.NODELEDGER_AGENT_DIR = join(root, 'link')
      expect(agentDir(false)).toBeUndefined()
      writeFileSync(join(root, 'file'), '')
      process.env.NODELEDGER_AGENT_DIR = join(root, 'file')
      expect(agentDir(false)).toBeUndefined()
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('names another agent for another cluster file content, key file, or timeout', () => {
    const root = scratch()
    try {
      process.env.NODELEDGER_AGENT_DIR = join(root, 'agents')
      const cluster = join(root, 'cluster.json')
      writeFileSync(cluster, JSON.stringify({ operators: [{ keyFile: 'operator.key' }] }))
      writeFileSync(join(root, 'operator.key'), 'one')
      const first = agentKey(cluster, 2000, true)!
      expect(first.cluster).toBe(cluster)
      expect(first.base.startsWith(join(root, 'agents'))).toBe(true)
      expect(agentKey(cluster, 2000, true)!.base).toBe(first.base)
      expect(agentKey(cluster, 5000, true)!.base).not.toBe(first.base)
      writeFileSync(join(root, 'operator.key'), 'two, longer')
      const newKey = agentKey(cluster, 2000, true)!
      expect(newKey.base).not.toBe(first.base)
      writeFileSync(cluster, `${JSON.stringify({ operators: [{ keyFile: 'operator.key' }] })}\n`)
      expect(agentKey(cluster, 2000, true)!.base).not.toBe(newKey.base)
      expect(agentKey(join(root, 'missing.json'), 2000, true)).toBeUndefined()
      process.env.NODELEDGER_AGENT_DIR = join(root, 'a'.repeat(100))
      expect(agentKey(cluster, 2000, true)).toBeUndefined() // no socket path that long
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('reads NODELEDGER_AGENT and NODELEDGER_AGENT_IDLE_S', () => {
    delete process.env.NODELEDGER_AGENT
    expect(agentEnabled()).toBe(true)
    for (const off of ['off', 'OFF', '0', 'false', 'no']) {
      process.env.NODELEDGER_AGENT = off
      expect(agentEnabled()).toBe(false)
    }
    process.env.NODELEDGER_AGENT_IDLE_S = '2'
    expect(idleExitMs()).toBe(2000)
    process.env.NODELEDGER_AGENT_IDLE_S = 'soon'
    expect(idleExitMs()).toBe(300_000)
  })
})
