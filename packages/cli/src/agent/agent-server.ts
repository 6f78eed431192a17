/**
 * The CLI agent (`nodeledger agent serve`, started by agent-client.ts): one process per cluster
 * file that keeps an operator client connected and runs get, put, ls and status for the CLI
 * processes that ask over its Unix socket. A command runs here exactly as it would in its own
 * process (the same function, on this open connection), its lines streamed back as it prints them.
 *
 * It exits when nobody has asked anything for the idle time, when its cluster file or key changes
 * (a new agent, under a new socket name, serves the new one), when its socket is removed or taken
 * over, on `nodeledger agent stop`, and on SIGTERM/SIGINT.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { chmodSync, statSync, unlinkSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { CliError, codeOf } from '../exit-codes.ts'
import { setSinkLookup } from '../output.ts'
import type { OutputSink } from '../output.ts'
import { get, ls, put } from '../commands/records.ts'
import { status } from '../commands/status.ts'
import { openClient, setSharedConnection } from '../commands/connect.ts'
import type { Connection } from '../commands/connect.ts'
import {
  AGENT_COMMANDS,
  AGENT_CONCURRENT_COMMANDS_MAX,
  AGENT_FRAME_BYTES_MAX,
  AGENT_PROTOCOL_VERSION,
  FrameReader,
  agentKey,
  encodeFrame,
  idleExitMs,
} from './wire.ts'
import type { AgentCommand, AgentFrame, AgentRequest } from './wire.ts'

/** How often the agent checks its idle time, its socket and its cluster file. */
const AGENT_CHECK_INTERVAL_MS = 1_000
/** A CLI that stops reading its answer is cut off past this much unsent output. */
const AGENT_CLIENT_BUFFER_BYTES_MAX = 4 * AGENT_FRAME_BYTES_MAX

export interface AgentServeOptions {
  readonly cluster: string
  readonly timeoutMs: number
}

type CommandFunction = (...args: never[]) => Promise<number>
const COMMANDS: Record<AgentCommand, CommandFunction> = {
  get: get as CommandFunction,
  put: put as CommandFunction,
  ls: ls as CommandFunction,
  // The agent never runs `status --watch` (main.ts keeps it in the CLI's own process).
  status: status as CommandFunction,
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** Whether something answers on `path` (an agent already serving it). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Runs until the agent exits; the exit code (0: idle, stopped or superseded). */
export async function serveAgent(options: AgentServeOptions): Promise<number> {
  const key = agentKey(options.cluster, options.timeoutMs, true)
  if (key === undefined)
    throw new CliError('INVALID', `cannot serve an agent for ${options.cluster}: unreadable cluster file or agent dir`)
  const socketPath = `${key.base}.sock`
  const lockPath = `${key.base}.spawn`
  const removeLock = (): void => {
    try {
      unlinkSync(lockPath)
    } catch {
      // gone already
    }
  }
  if (await answers(socketPath)) {
    removeLock()
    return 0 // another agent serves this cluster already
  }
  // The file's own order (status labels its rows by it); the client learns the leader at the first request.
  const connection: Connection = await openClient({ cluster: key.cluster, timeoutMs: options.timeoutMs })
  // Dial every replica now, so that the first command the agent runs finds its links up.
  await connection.client.statusAll().catch(() => {})

  const sinks = new AsyncLocalStorage<OutputSink>()
  setSinkLookup(() => sinks.getStore())
  setSharedConnection(() => connection)

  const startedMs = Date.now()
  let lastActivityMs = Date.now()
  let running = 0
  let commandsRun = 0
  let stopping: Promise<number> | undefined
  const sockets = new Set<Socket>()

  const server = createServer((socket) => serve(socket))
  try {
    await listen(server, socketPath)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
    // A socket file whose agent is gone (it was killed): take it over. One that answers wins.
    if (await answers(socketPath)) {
      await connection.client.stop()
      await connection.libp2p.stop()
      removeLock()
      return 0
    }
    unlinkSync(socketPath)
    await listen(server, socketPath)
  }
  chmodSync(socketPath, 0o600)
  const socketIno = statSync(socketPath).ino
  removeLock()

  const ownsSocket = (): boolean => {
    try {
      return statSync(socketPath).ino === socketIno
    } catch {
      return false
    }
  }

  let resolveExit: (code: number) => void = () => {}
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve
  })
  const shutdown = (why: string): Promise<number> => {
    stopping ??= (async () => {
      clearInterval(checks)
      server.close()
      if (ownsSocket()) {
        try {
          unlinkSync(socketPath)
        } catch {
          // gone already
        }
      }
      for (const socket of sockets) socket.destroy()
      if (process.env.NODELEDGER_DEBUG === '1') process.stderr.write(`nodeledger agent: exiting (${why})\n`)
      try {
        await connection.client.stop()
        await connection.libp2p.stop()
      } catch {
        // exiting anyway
      }
      resolveExit(0)
      return 0
    })()
    return stopping
  }

  const limitMs = idleExitMs()
  const checks = setInterval(() => {
    if (running === 0 && Date.now() - lastActivityMs > limitMs) void shutdown('idle')
    else if (!ownsSocket()) void shutdown('socket removed or taken over')
    else if (agentKey(key.cluster, options.timeoutMs, false)?.base !== key.base)
      void shutdown('cluster file or operator key changed')
  }, AGENT_CHECK_INTERVAL_MS)
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
  process.once('SIGINT', () => void shutdown('SIGINT'))

  function send(socket: Socket, frame: AgentFrame): void {
    if (socket.destroyed) return
    if (socket.writableLength > AGENT_CLIENT_BUFFER_BYTES_MAX) {
      socket.destroy() // the CLI stopped reading: do not buffer its answer without bound
      return
    }
    socket.write(encodeFrame(frame))
  }

  function serve(socket: Socket): void {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    const reader = new FrameReader()
    let handled = false
    socket.on('data', (chunk: Buffer) => {
      let frames: unknown[]
      try {
        frames = reader.push(chunk)
      } catch {
        socket.destroy()
        return
      }
      const request = frames[0] as AgentRequest | undefined
      if (request === undefined || handled) return
      handled = true // one request per connection
      void handle(socket, request)
    })
  }

  async function handle(socket: Socket, request: AgentRequest): Promise<void> {
    if (request.kind === 'hello') {
      send(socket, {
        kind: 'hello',
        pid: process.pid,
        protocol: AGENT_PROTOCOL_VERSION,
        cluster: key!.cluster,
        timeoutMs: options.timeoutMs,
        startedMs,
        commandsRun,
        idleMs: running > 0 ? 0 : Date.now() - lastActivityMs,
        idleExitMs: limitMs,
      })
      socket.end()
      return
    }
    if (request.kind === 'stop') {
      send(socket, { kind: 'stopping' })
      socket.end()
      void shutdown('agent stop')
      return
    }
    if (request.kind !== 'run' || !AGENT_COMMANDS.includes(request.command) || !Array.isArray(request.args)) {
      send(socket, { kind: 'error', code: 'INVALID', message: 'the CLI agent was sent a request it does not know' })
      socket.end()
      return
    }
    if (running >= AGENT_CONCURRENT_COMMANDS_MAX || stopping !== undefined) {
      socket.destroy() // the CLI runs the command itself (it saw nothing printed)
      return
    }
    running += 1
    commandsRun += 1
    lastActivityMs = Date.now()
    const sink: OutputSink = {
      out: (text) => send(socket, { kind: 'out', text }),
      err: (text) => send(socket, { kind: 'err', text }),
      tty: request.tty === true,
    }
    try {
      const command = COMMANDS[request.command]
      const exitCode = await sinks.run(sink, () => command(...(request.args as never[])))
      send(socket, { kind: 'done', exitCode })
    } catch (error) {
      const code = codeOf(error)
      send(socket, { kind: 'error', ...(code === undefined ? {} : { code }), message: (error as Error).message })
    } finally {
      running -= 1
      lastActivityMs = Date.now()
      socket.end()
    }
  }

  return exited
}
