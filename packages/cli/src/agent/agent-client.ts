/**
 * The CLI's side of the agent: hand a command to the user's agent for this cluster and print what
 * it prints, or say "not here" (undefined) so that the command runs in this process as before.
 *
 * Why an agent: a command's own process spends ~100 ms loading libp2p and ~100 ms dialing and
 * handshaking (Noise, Yamux) on cold code before it asks its question; etcdctl needs none of that.
 * The agent (agent-server.ts) keeps one authenticated client open, so a command costs a Node start
 * and a Unix-socket round trip. It is started in the background by the first command that finds
 * none, and exits after AGENT_IDLE_S_DEFAULT idle seconds, when its cluster file or key changes, or
 * on `nodeledger agent stop`. NODELEDGER_AGENT=off runs every command on its own, as before.
 *
 * Built-ins only: this module is loaded by every get/put/ls/status before it knows which way it goes.
 */
import { spawn } from 'node:child_process'
import { readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import {
  AGENT_CONNECT_TIMEOUT_MS,
  AGENT_SPAWN_LOCK_MS,
  FrameReader,
  agentDir,
  agentEnabled,
  agentKey,
  encodeFrame,
} from './wire.ts'
import type { AgentCommand, AgentFrame, AgentHello, AgentKey, AgentRequest } from './wire.ts'

/** An error the agent's command ended with: the same code, so the same exit code and message. */
export class AgentCommandError extends Error {
  readonly code: string | undefined
  constructor(code: string | undefined, message: string) {
    super(message)
    this.code = code
  }
}

function connect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(path)
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(undefined)
    }, AGENT_CONNECT_TIMEOUT_MS)
    socket.once('connect', () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(undefined)
    })
  })
}

/**
 * Sends one request and collects the answer. `onFrame` returns a value to finish with, or
 * undefined to read on. Resolves `closed` when the agent hangs up first (it died, or stopped).
 */
function exchange<T>(
  socket: Socket,
  request: AgentRequest,
  deadlineMs: number,
  onFrame: (frame: AgentFrame) => T | undefined,
): Promise<{ value: T } | 'closed'> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader()
    let settled = false
    const finish = (result: { value: T } | 'closed', error?: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (error !== undefined) reject(error)
      else resolve(result)
    }
    const timer = setTimeout(() => finish('closed'), deadlineMs)
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of reader.push(chunk)) {
          const value = onFrame(frame as AgentFrame)
          if (value !== undefined) return finish({ value })
        }
      } catch (error) {
        finish('closed', error as Error)
      }
    })
    socket.once('close', () => finish('closed'))
    socket.once('error', () => finish('closed'))
    socket.write(encodeFrame(request))
  })
}

function spawnAgent(key: AgentKey, timeoutMs: number): void {
  const entry = process.argv[1]
  if (entry === undefined) return
  const lock = `${key.base}.spawn`
  try {
    if (Date.now() - statSync(lock).mtimeMs < AGENT_SPAWN_LOCK_MS) return // another CLI is starting it
    unlinkSync(lock)
  } catch {
    // no lock yet
  }
  try {
    writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
  } catch {
    return // lost the race to another CLI: it starts the agent
  }
  try {
    const child = spawn(
      process.execPath,
      [entry, 'agent', 'serve', '--cluster', key.cluster, '--timeout-ms', String(timeoutMs)],
      // cwd /: a background process must not hold the directory the command ran in (every path it
      // uses is absolute: the cluster file's, and the key files it names, resolved against it).
      { detached: true, stdio: 'ignore', cwd: '/' },
    )
    child.once('error', () => {})
    child.unref()
  } catch {
    // The agent is an optimisation: this command runs on its own either way.
  }
}

/** Replaces a client options object's cluster path with the absolute one (the agent runs elsewhere). */
function withAbsoluteCluster(args: readonly unknown[], cluster: string): unknown[] {
  return args.map((arg) =>
    arg !== null && typeof arg === 'object' && 'cluster' in arg && typeof arg.cluster === 'string'
      ? { ...arg, cluster }
      : arg,
  )
}

/**
 * Runs `command` in the agent and returns its exit code, having printed what it printed; or
 * undefined when there is no agent to ask (starting one for the next command) or it went away
 * before printing anything, and the caller runs the command itself. Throws the command's own
 * error (its code intact) when it failed in the agent.
 */
export async function viaAgent(
  command: AgentCommand,
  args: readonly unknown[],
  options: { cluster: string; timeoutMs: number },
): Promise<number | undefined> {
  if (!agentEnabled()) return undefined
  const key = agentKey(options.cluster, options.timeoutMs, true)
  if (key === undefined) return undefined
  const socket = await connect(`${key.base}.sock`)
  if (socket === undefined) {
    spawnAgent(key, options.timeoutMs)
    return undefined
  }
  let printed = false
  let failure: AgentCommandError | undefined
  // The command's own requests have their deadlines; this one only catches an agent that hangs.
  const deadlineMs = options.timeoutMs * 10 + 10_000
  const result = await exchange<number>(
    socket,
    { kind: 'run', command, args: withAbsoluteCluster(args, key.cluster), tty: process.stdout.isTTY === true },
    deadlineMs,
    (frame) => {
      if (frame.kind === 'out' || frame.kind === 'err') {
        printed = true
        ;(frame.kind === 'out' ? process.stdout : process.stderr).write(`${frame.text}\n`)
        return undefined
      }
      if (frame.kind === 'done') return frame.exitCode
      if (frame.kind === 'error') {
        failure = new AgentCommandError(frame.code, frame.message)
        return -1
      }
      return undefined
    },
  )
  if (failure !== undefined) throw failure
  if (result !== 'closed') return result.value
  if (!printed) return undefined // nothing seen yet: running it here is the same as a retry
  throw new AgentCommandError(
    'UNAVAILABLE',
    'the CLI agent stopped before the command finished (NODELEDGER_AGENT=off runs commands without it)',
  )
}

export interface AgentListing {
  readonly socket: string
  readonly hello?: AgentHello
}

/** Every agent of this user (`nodeledger agent status`): each socket, and what its agent says. */
export async function listAgents(): Promise<AgentListing[]> {
  const dir = agentDir(false)
  if (dir === undefined) return []
  let names: string[]
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.sock'))
  } catch {
    return []
  }
  return Promise.all(
    names.sort().map(async (name): Promise<AgentListing> => {
      const socketPath = join(dir, name)
      const socket = await connect(socketPath)
      if (socket === undefined) return { socket: socketPath }
      const answer = await exchange(socket, { kind: 'hello' }, 2_000, (frame) =>
        frame.kind === 'hello' ? frame : undefined,
      ).catch(() => 'closed' as const)
      return answer === 'closed' ? { socket: socketPath } : { socket: socketPath, hello: answer.value }
    }),
  )
}

/** Asks one agent to exit; true when it said it would. */
export async function stopAgent(socketPath: string): Promise<boolean> {
  const socket = await connect(socketPath)
  if (socket === undefined) return false
  const answer = await exchange(socket, { kind: 'stop' }, 2_000, (frame) =>
    frame.kind === 'stopping' ? true : undefined,
  ).catch(() => 'closed' as const)
  return answer !== 'closed'
}
