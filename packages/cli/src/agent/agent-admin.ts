/** `nodeledger agent status` and `agent stop`: what a person needs to see and end the agents. */
import { formatDuration } from '../commands/format.ts'
import { out } from '../output.ts'
import { renderTable } from '../output.ts'
import { listAgents, stopAgent } from './agent-client.ts'

export async function agentStatus(options: { json: boolean }): Promise<number> {
  const agents = await listAgents()
  const nowMs = Date.now()
  if (options.json) {
    out(
      JSON.stringify({
        agents: agents.map((agent) => ({ socket: agent.socket, ...(agent.hello ?? { stale: true }) })),
      }),
    )
    return 0
  }
  if (agents.length === 0) {
    out('no CLI agent running (the next get, put, ls or status starts one)')
    return 0
  }
  out(
    renderTable(
      agents.map((agent) =>
        agent.hello === undefined
          ? { pid: '-', cluster: agent.socket, state: 'stale socket (its agent is gone)' }
          : {
              pid: agent.hello.pid,
              cluster: agent.hello.cluster,
              state: 'serving',
              up: formatDuration(nowMs - agent.hello.startedMs),
              commands: agent.hello.commandsRun,
              idle: formatDuration(agent.hello.idleMs),
              exitsIn: formatDuration(Math.max(0, agent.hello.idleExitMs - agent.hello.idleMs)),
            },
      ),
      ['pid', 'cluster', 'state', 'up', 'commands', 'idle', 'exitsIn'],
    ),
  )
  return 0
}

export async function agentStop(): Promise<number> {
  const agents = await listAgents()
  let stopped = 0
  for (const agent of agents) if (agent.hello !== undefined && (await stopAgent(agent.socket))) stopped += 1
  out(stopped === 0 ? 'no CLI agent was running' : `stopped ${stopped} CLI agent(s)`)
  return 0
}
