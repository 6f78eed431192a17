/**
 * The CLI agent's wire (agent-client.ts ↔ agent-server.ts): JSON frames behind a 4-byte
 * big-endian length on a Unix socket, and where that socket lives. Node's built-ins only: the CLI
 * imports this before it knows whether it will need libp2p, so it must cost nothing.
 *
 * One agent serves one (cluster file, operator key, --timeout-ms, CLI build): the socket's name is
 * a hash of all of them, so an edited cluster file, a new key or an upgraded CLI gets a new agent
 * and the old one idles out. The directory is the user's own (0700, checked): the agent acts as the
 * cluster's operator, with the key file that user can read anyway, and nobody else may reach it.
 */
import { createHash } from 'node:crypto'
import { lstatSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Bumped when a frame changes meaning: a CLI and an agent of different versions hash to different sockets. */
export const AGENT_PROTOCOL_VERSION = 1
/** No frame is larger (an `ls --all` of a big registry streams many frames, one per printed block). */
export const AGENT_FRAME_BYTES_MAX = 8 * 1024 * 1024
/** An agent nobody has asked anything for this long exits (NODELEDGER_AGENT_IDLE_S overrides). */
export const AGENT_IDLE_S_DEFAULT = 300
/** How long the CLI waits to connect before it runs the command itself. */
export const AGENT_CONNECT_TIMEOUT_MS = 250
/** A spawn lock younger than this means another CLI is starting the agent: do not start a second. */
export const AGENT_SPAWN_LOCK_MS = 10_000
/** Commands in flight in one agent at once; more wait for a slot (each CLI waits on its own socket). */
export const AGENT_CONCURRENT_COMMANDS_MAX = 64

/** sun_path is 108 bytes on Linux, its last one the terminating NUL. */
export const SOCKET_PATH_BYTES_MAX = 107

/** The commands an agent runs for the CLI: one-shot reads and writes whose output is text. */
export const AGENT_COMMANDS = ['get', 'put', 'ls', 'status'] as const
export type AgentCommand = (typeof AGENT_COMMANDS)[number]

export type AgentRequest =
  | { readonly kind: 'hello' }
  | { readonly kind: 'stop' }
  | {
      readonly kind: 'run'
      readonly command: AgentCommand
      /** The command function's arguments, as main.ts would pass them (paths absolute). */
      readonly args: readonly unknown[]
      /** Whether the CLI's stdout is a terminal (colour, layout). */
      readonly tty: boolean
    }

export interface AgentHello {
  readonly kind: 'hello'
  readonly pid: number
  readonly protocol: number
  readonly cluster: string
  readonly timeoutMs: number
  readonly startedMs: number
  readonly commandsRun: number
  readonly idleMs: number
  readonly idleExitMs: number
}

export type AgentFrame =
  | AgentHello
  | { readonly kind: 'out' | 'err'; readonly text: string }
  | { readonly kind: 'done'; readonly exitCode: number }
  | { readonly kind: 'error'; readonly code?: string; readonly message: string }
  | { readonly kind: 'stopping' }

export class AgentWireError extends Error {
  readonly code = 'INVALID'
}

export function encodeFrame(value: AgentRequest | AgentFrame): Buffer {
  const body = Buffer.from(JSON.stringify(value), 'utf8')
  if (body.length > AGENT_FRAME_BYTES_MAX)
    throw new AgentWireError(`agent frame of ${body.length} bytes is over ${AGENT_FRAME_BYTES_MAX}`)
  const frame = Buffer.allocUnsafe(4 + body.length)
  frame.writeUInt32BE(body.length, 0)
  body.copy(frame, 4)
  return frame
}

/** Reassembles frames from socket chunks; refuses a length over the bound before buffering it. */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): unknown[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const frames: unknown[] = []
    while (this.buffered.length >= 4) {
      const length = this.buffered.readUInt32BE(0)
      if (length > AGENT_FRAME_BYTES_MAX)
        throw new AgentWireError(`agent frame of ${length} bytes is over ${AGENT_FRAME_BYTES_MAX}`)
      if (this.buffered.length < 4 + length) break
      const body = this.buffered.subarray(4, 4 + length)
      this.buffered = this.buffered.subarray(4 + length)
      try {
        frames.push(JSON.parse(body.toString('utf8')))
      } catch (error) {
        throw new AgentWireError(`agent frame is not JSON: ${(error as Error).message}`)
      }
    }
    return frames
  }
}

function uid(): string {
  try {
    return String(userInfo().uid)
  } catch {
    return 'user'
  }
}

/**
 * The user's agent directory: NODELEDGER_AGENT_DIR, else <tmp>/nodeledger-agent-<uid>. Created
 * 0700; refused (undefined: the CLI runs without an agent) when it is a symlink, not a directory,
 * not ours, or open to others, so that nobody can plant a socket the CLI would talk to.
 */
export function agentDir(create: boolean): string | undefined {
  const dir = process.env.NODELEDGER_AGENT_DIR ?? join(tmpdir(), `nodeledger-agent-${uid()}`)
  try {
    if (create) mkdirSync(dir, { recursive: true, mode: 0o700 })
    const stat = lstatSync(dir)
    if (!stat.isDirectory()) return undefined
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) return undefined
    if ((stat.mode & 0o077) !== 0) return undefined
    return dir
  } catch {
    return undefined
  }
}

/** This build of the CLI: the mtime of the file this code runs from (a bundle chunk, or this source). */
function buildId(): string {
  try {
    return String(statSync(fileURLToPath(import.meta.url)).mtimeMs)
  } catch {
    return 'unknown'
  }
}

export interface AgentKey {
  /** The cluster file, absolute and with symlinks resolved. */
  readonly cluster: string
  /** <dir>/<hash>: the socket is `${base}.sock`, the spawn lock `${base}.spawn`. */
  readonly base: string
}

/**
 * The agent for this cluster file, operator key, request timeout and CLI build. Undefined when
 * the cluster file cannot be read or parsed (the command itself then reports that properly) or the
 * agent directory is unusable.
 */
export function agentKey(clusterPath: string, timeoutMs: number, create: boolean): AgentKey | undefined {
  try {
    const cluster = realpathSync(resolve(clusterPath))
    const bytes = readFileSync(cluster)
    const hash = createHash('sha256')
      .update(`nodeledger-agent ${AGENT_PROTOCOL_VERSION} ${buildId()} ${timeoutMs}\0${cluster}\0`)
      .update(bytes)
    // The operator key the agent would load: replaced key, new agent.
    const parsed = JSON.parse(bytes.toString('utf8')) as { operators?: Array<{ keyFile?: unknown }> }
    const keyFile = parsed.operators?.[0]?.keyFile
    if (typeof keyFile === 'string') {
      const path = isAbsolute(keyFile) ? keyFile : resolve(dirname(cluster), keyFile)
      try {
        const stat = statSync(path)
        hash.update(`\0${path}\0${stat.ino}\0${stat.size}\0${stat.mtimeMs}`)
      } catch {
        hash.update(`\0${path}\0absent`)
      }
    }
    const dir = agentDir(create)
    if (dir === undefined) return undefined
    const base = join(dir, hash.digest('hex').slice(0, 24))
    // A Unix socket's path is at most 107 bytes: with a longer NODELEDGER_AGENT_DIR there is no agent.
    if (Buffer.byteLength(`${base}.sock`) > SOCKET_PATH_BYTES_MAX) return undefined
    return { cluster, base }
  } catch {
    return undefined
  }
}

/** What the idle timeout is, from the environment (seconds; 0 is refused and means the default). */
export function idleExitMs(): number {
  const fromEnv = Number(process.env.NODELEDGER_AGENT_IDLE_S)
  return (Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : AGENT_IDLE_S_DEFAULT) * 1000
}

/** NODELEDGER_AGENT=off (or 0, false, no) runs every command in its own process, as before the agent. */
export function agentEnabled(): boolean {
  const value = (process.env.NODELEDGER_AGENT ?? 'on').toLowerCase()
  return !['off', '0', 'false', 'no'].includes(value)
}
