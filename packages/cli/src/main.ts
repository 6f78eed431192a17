#!/usr/bin/env node
/**
 * `nodeledger`: start and inspect an authority cluster, change its membership, and read and
 * write the registry as its operator. Exit codes: exit-codes.ts (EXIT_CODE_TABLE, also in
 * `--help`).
 *
 * Startup is the point of this file's shape: it imports commander and nothing else, and each
 * command imports its own module when it runs (`await import(...)`), so `--help` and `--version`
 * never load libp2p, and `status` never loads LevelDB or the replica. The installed `nodeledger`
 * (bin/nodeledger.mjs) runs the bundle of this file that the install builds (build.ts).
 */
import { readFileSync } from 'node:fs'
import { Command, InvalidArgumentError, Option } from 'commander'
import { EXIT, exitCodeFor, exitCodeHelp } from './exit-codes.ts'
import type { WorkerCommandOptions } from './commands/worker.ts'
import { registerSnapshotCommand } from './commands/snapshot-command.ts'

const DEFAULT_CLUSTER = process.env.NODELEDGER_CLUSTER ?? '.run/cluster/cluster.json'
/** pino's levels: anything else makes pino throw a bare `unknown level`. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
/** How long `member promote --wait` and `member replace` wait for a learner, by default. */
const WAIT_TIMEOUT_S_DEFAULT = 600

/** The CLI's version: package.json is one level up from src/ and from dist/ alike. */
function version(): string {
  try {
    const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8')
    return (JSON.parse(text) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const parsed = Number(value)
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max)
      throw new InvalidArgumentError(
        `${name} takes an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}`,
      )
    return parsed
  }
}

const consistency = (): Option =>
  new Option('--consistency <mode>', 'read consistency')
    .choices(['linearizable', 'lease', 'stale'])
    .default('linearizable')
const clusterOption = (): Option => new Option('--cluster <file>', 'cluster file').default(DEFAULT_CLUSTER)
const timeoutOption = (): Option =>
  new Option('--timeout-ms <ms>', 'deadline of each request').argParser(integer('--timeout-ms', 1)).default(2000)
const jsonOption = (): Option => new Option('--json', 'machine-readable output (whole ids, numbers)').default(false)
const logLevelOption = (): Option => new Option('--log-level <level>', 'pino level').choices(LOG_LEVELS).default('info')

/**
 * Runs a one-shot command and exits with its code: an error becomes `nodeledger: CODE: message`
 * and its exit code, never a stack trace (NODELEDGER_DEBUG=1 adds it). Exiting explicitly, once
 * the answer is out, keeps a lingering socket or timer from holding the prompt.
 */
async function run(action: () => Promise<number | undefined>): Promise<void> {
  let code: number
  try {
    const result = await action()
    code = typeof result === 'number' ? result : EXIT.OK
  } catch (error) {
    report(error)
    code = exitCodeFor(error)
  }
  process.exit(code)
}

function report(error: unknown, prefix = 'nodeledger'): void {
  const code = (error as { code?: string }).code
  console.error(`${prefix}: ${code !== undefined ? `${code}: ` : ''}${(error as Error).message}`)
  if (process.env.NODELEDGER_DEBUG === '1') console.error(error)
}

/** For the long-running commands: a failure to start exits with its code; success keeps running. */
function exitOnStartFailure(what: string) {
  return (error: unknown): never => {
    report(error, `nodeledger ${what}`)
    process.exit(exitCodeFor(error))
  }
}

/**
 * get, put, ls and status go to the user's CLI agent for this cluster first (agent/agent-client.ts:
 * a Unix socket, Node's built-ins only), and run here when there is none (starting one for next time).
 */
async function viaAgent(
  command: 'get' | 'put' | 'ls' | 'status',
  args: readonly unknown[],
  options: { cluster: string; timeoutMs: number },
): Promise<number | undefined> {
  const { viaAgent: ask } = await import('./agent/agent-client.ts')
  return ask(command, args, options)
}

type Options = Record<string, unknown>
const client = (options: Options) => ({
  cluster: options.cluster as string,
  json: options.json === true,
  timeoutMs: options.timeoutMs as number,
})

const program = new Command()
  .name('nodeledger')
  .description('a durable, replicated registry of the nodes of a libp2p network')
  .version(`nodeledger ${version()} (node ${process.version})`, '-V, --version', 'print the version')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `\n--cluster defaults to $NODELEDGER_CLUSTER, else .run/cluster/cluster.json. Client commands act as the\ncluster file's operator.\n\n${exitCodeHelp()}`,
  )
// Commander's own usage errors exit with 2 like ours.
program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT.BAD_INPUT))

const cluster = program.command('cluster').description('set up an authority cluster')
cluster
  .command('init')
  .description(
    'write replica keys and a cluster file: replicas on --hosts or --multiaddrs, else each on its own 127.0.0.x',
  )
  .addOption(
    new Option('--replicas <n>', 'number of replicas (default: as many as --hosts/--multiaddrs, else 3)').choices([
      '3',
      '5',
    ]),
  )
  .requiredOption('--dir <dir>', 'where to write keys, data dirs and cluster.json')
  .option('--hosts <list>', 'comma-separated hosts, one per replica: IPs or DNS names (/ip4/, /ip6/ or /dns4/)')
  .option('--multiaddrs <list>', 'comma-separated multiaddrs, one per replica, without /p2p/ (each its own port)')
  .option(
    '--port <port>',
    'TCP port of every replica (with --hosts, or on 127.0.0.x)',
    integer('--port', 1, 65_535),
    7001,
  )
  .option(
    '--http-port <port>',
    'give every replica an HTTP listener (/metrics, /health, /ready, the cluster page) on its own host at this port',
    integer('--http-port', 1, 65_535),
  )
  .option('--force', 'overwrite an existing cluster file (keys are kept)', false)
  .addOption(jsonOption())
  .action((options) =>
    run(async () => {
      const { clusterInit } = await import('./commands/cluster-init.ts')
      await clusterInit({
        replicas: options.replicas === undefined ? undefined : Number(options.replicas),
        dir: options.dir,
        port: options.port,
        ...(options.hosts === undefined ? {} : { hosts: options.hosts }),
        ...(options.multiaddrs === undefined ? {} : { multiaddrs: options.multiaddrs }),
        ...(options.httpPort === undefined ? {} : { httpPort: options.httpPort }),
        force: options.force,
        json: options.json,
      })
      return EXIT.OK
    }),
  )

program
  .command('authority')
  .description('run one replica in the foreground (SIGTERM: a leader hands over, then exits)')
  .addOption(clusterOption())
  .requiredOption('--id <n>', 'replica id from the cluster file (or given to member add)', integer('--id', 1))
  .addOption(
    new Option(
      '--initial-cluster-state <state>',
      'for an empty data dir: new creates the cluster (founders, once); existing joins it as an added learner',
    )
      .choices(['new', 'existing'])
      .default('existing'),
  )
  .option('--multiaddr <ma>', 'a member added after creation: its address (ending in /p2p/<peerId>)')
  .option('--key <file>', 'a member added after creation: its key file')
  .option('--data <dir>', 'a member added after creation: its data dir')
  .option(
    '--http <host:port>',
    "serve /metrics, /health, /ready here (default: the cluster file's http of this replica; none if absent)",
  )
  .option('--listen <ma>', 'bind this instead of the advertised address, e.g. /ip4/0.0.0.0/tcp/7001 (for a DNS name)')
  .addOption(logLevelOption())
  .option('--pretty', 'human-readable logs', false)
  .action(async (options) => {
    const { runAuthority } = await import('./commands/authority.ts')
    await runAuthority({
      cluster: options.cluster,
      id: options.id,
      initialClusterState: options.initialClusterState,
      multiaddr: options.multiaddr,
      keyFile: options.key,
      dataDir: options.data,
      http: options.http,
      ...(options.listen === undefined ? {} : { listen: options.listen }),
      logLevel: options.logLevel,
      pretty: options.pretty,
    }).catch(exitOnStartFailure('authority'))
  })

program
  .command('status')
  .description(
    'every replica as it answers for itself: role, term, commit, applied, lag, leader (exit 14 on a mismatch)',
  )
  .addOption(clusterOption())
  .addOption(timeoutOption())
  .addOption(jsonOption())
  .option('--replica <n>', 'one replica in detail: version, members, digest, lag, clusterId', integer('--replica', 1))
  .option('--watch', 'redraw every --interval-ms, leader highlighted and its changes listed; Ctrl-C exits 0', false)
  .option('--interval-ms <ms>', 'refresh interval of --watch', integer('--interval-ms', 100), 1000)
  .action((options) =>
    run(async () => {
      const args = {
        ...client(options),
        ...(options.replica === undefined ? {} : { replica: options.replica }),
        watch: options.watch,
        intervalMs: options.intervalMs,
      }
      // --watch redraws a terminal for minutes: it keeps its own connection, not the agent's.
      if (!options.watch) {
        const code = await viaAgent('status', [args], args)
        if (code !== undefined) return code
      }
      const { status } = await import('./commands/status.ts')
      return status(args)
    }),
  )

program
  .command('put')
  .description('write fields of a node record as the operator: nodeledger put PEER_ID isStaked=true version=1.2.0')
  .argument('<peerId>')
  .argument('<assignments...>', 'FIELD=VALUE pairs')
  .addOption(clusterOption())
  .addOption(timeoutOption())
  .addOption(jsonOption())
  .action((peerId, assignments, options) =>
    run(
      async () =>
        (await viaAgent('put', [peerId, assignments, client(options)], client(options))) ??
        (await import('./commands/records.ts')).put(peerId, assignments, client(options)),
    ),
  )

program
  .command('get')
  .description('one node record (exit 3 if the registry does not have it)')
  .argument('<peerId>')
  .addOption(clusterOption())
  .addOption(timeoutOption())
  .addOption(consistency())
  .addOption(jsonOption())
  .action((peerId, options) =>
    run(async () => {
      const args = { ...client(options), consistency: options.consistency }
      return (await viaAgent('get', [peerId, args], args)) ?? (await import('./commands/records.ts')).get(peerId, args)
    }),
  )

program
  .command('ls')
  .description('list node records, in peer id order, a page at a time (--after to go on, --all for everything)')
  .addOption(clusterOption())
  .addOption(timeoutOption())
  .addOption(consistency())
  .option('--active', 'only active nodes')
  .option('--staked', 'only staked nodes')
  .addOption(
    new Option('--capability <category>', 'only nodes with this capability').choices([
      'twitter',
      'web',
      'discord',
      'telegram',
    ]),
  )
  .option('--limit <n>', 'show at most this many (read 1000 per request)', integer('--limit', 1), 100)
  .option('--after <peerId>', 'start after this peer id (the cursor the previous page printed)')
  .option('--all', 'every record, page after page (ignores --limit)', false)
  .addOption(jsonOption())
  .action((options) =>
    run(async () => {
      const filter = {
        active: options.active,
        staked: options.staked,
        capability: options.capability,
        limit: options.limit,
        after: options.after,
        all: options.all,
      }
      const args = { ...client(options), consistency: options.consistency }
      return (await viaAgent('ls', [filter, args], args)) ?? (await import('./commands/records.ts')).ls(filter, args)
    }),
  )

program
  .command('watch')
  .description('one line per changed record as it commits, following the leader across failovers; Ctrl-C exits 0')
  .addOption(clusterOption())
  .addOption(timeoutOption())
  .option('--from <index>', 'start after this log index (0: every record; default: now)', integer('--from', 0))
  .addOption(jsonOption())
  .action((options) =>
    run(async () => (await import('./commands/watch.ts')).watch({ ...client(options), from: options.from })),
  )

const member = program
  .command('member')
  .description("the membership of record (the log's): list, add, promote, remove, replace")
const memberCommand = (name: string, description: string): Command =>
  member
    .command(name)
    .description(description)
    .addOption(clusterOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())

memberCommand('list', 'every member: id, peer id, address, voter or learner, started, match and lag').action(
  (options) => run(async () => (await import('./commands/member.ts')).memberList(client(options))),
)

memberCommand('add', 'add a learner (prints the command that starts it on its host)')
  .requiredOption('--id <n>', 'its id: never one a member had before (exit 11 CONFLICT)', integer('--id', 1))
  .requiredOption('--multiaddr <ma>', "where it will listen, e.g. /ip4/10.0.0.4/tcp/7001 (its /p2p/ is the key's)")
  .requiredOption('--key <file>', 'its key file (generated when missing)')
  .option('--data <dir>', 'its data dir, for the printed start command (default: beside the key)')
  .action((options) =>
    run(async () =>
      (await import('./commands/member.ts')).memberAdd({
        ...client(options),
        id: options.id,
        multiaddr: options.multiaddr,
        key: options.key,
        ...(options.data === undefined ? {} : { data: options.data }),
      }),
    ),
  )

memberCommand('promote', 'make a caught-up learner a voter (exit 12 NOT_READY until it is; --wait waits)')
  .argument('<id>', 'the learner', integer('id', 1))
  .option('--wait', 'wait until it has caught up, then promote', false)
  .option(
    '--wait-timeout-s <s>',
    'give up waiting after this long',
    integer('--wait-timeout-s', 1),
    WAIT_TIMEOUT_S_DEFAULT,
  )
  .action((id, options) =>
    run(async () =>
      (await import('./commands/member.ts')).memberPromote(id, {
        ...client(options),
        wait: options.wait,
        waitTimeoutS: options.waitTimeoutS,
      }),
    ),
  )

memberCommand(
  'remove',
  'remove a member for good (its id is retired; exit 13 REFUSED for the leader or the last voter)',
)
  .argument('<id>', 'the member', integer('id', 1))
  .action((id, options) => run(async () => (await import('./commands/member.ts')).memberRemove(id, client(options))))

memberCommand(
  'replace',
  'replace a member whose disk died: a new key, id, address and data dir are added, caught up and promoted, then the old one removed (safe to re-run)',
)
  .argument('<id>', 'the member to replace', integer('id', 1))
  .requiredOption('--multiaddr <ma>', "the new member's address, e.g. /ip4/10.0.0.4/tcp/7001")
  .requiredOption('--key <file>', "the new member's key file (generated when missing)")
  .requiredOption('--data <dir>', "the new member's data dir (empty)")
  .option('--start', 'start the new replica here, in the background (log and pid beside the cluster file)', false)
  .option(
    '--wait-timeout-s <s>',
    'give up waiting for it after this long',
    integer('--wait-timeout-s', 1),
    WAIT_TIMEOUT_S_DEFAULT,
  )
  .action((id, options) =>
    run(async () =>
      (await import('./commands/member.ts')).memberReplace(id, {
        ...client(options),
        multiaddr: options.multiaddr,
        key: options.key,
        data: options.data,
        start: options.start,
        waitTimeoutS: options.waitTimeoutS,
      }),
    ),
  )

program
  .command('transfer-leader')
  .description('hand leadership to a voter (answers once it leads)')
  .requiredOption('--to <id>', 'the voter to lead', integer('--to', 1))
  .addOption(clusterOption())
  .addOption(timeoutOption())
  .addOption(jsonOption())
  .action((options) =>
    run(async () => (await import('./commands/member.ts')).transferLeader(options.to, client(options))),
  )

/** The options `worker` and `workers` share. */
function workerCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--bootstrap <multiaddrs...>', "replica multiaddrs (default: the cluster file's)", [])
    .addOption(clusterOption())
    .option('--key <file>', 'identity key file (default: beside the data dir, so wiping the data keeps the identity)')
    .option('--listen-host <ip>', 'IPv4 address to listen on for gossip peers', '127.0.0.1')
    .option(
      '--capabilities <list>',
      'comma-separated: twitter,web,discord,telegram',
      (value: string) => value.split(',').filter((part) => part !== ''),
      [] as string[],
    )
    .option('--staked', 'report the node as staked', false)
    .option('--node-version <version>', 'software version the node reports', '0.1.0')
    .option(
      '--heartbeat-ms <ms>',
      "heartbeat interval (default 3000): refused at or above the cluster's lease TTL (liveness.ttlMs), warned above half of it",
      integer('--heartbeat-ms', 100),
    )
    .option(
      '--http <host:port>',
      'serve /metrics, /health, /ready here, and for `worker` the HTTP gateway /v1/... (docs/HTTP.md); :PORT is 127.0.0.1; default: no listener',
    )
    .addOption(logLevelOption())
    .option('--pretty', 'human-readable logs', false)
}

function workerOptions(options: Options, data: string): WorkerCommandOptions {
  return {
    bootstrap: options.bootstrap as string[],
    cluster: options.cluster as string,
    data,
    ...(options.key === undefined ? {} : { key: options.key as string }),
    listenHost: options.listenHost as string,
    capabilities: options.capabilities as string[],
    staked: options.staked === true,
    version: options.nodeVersion as string,
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs as number }),
    ...(options.http === undefined ? {} : { http: options.http as string }),
    logLevel: options.logLevel as string,
    pretty: options.pretty === true,
  }
}

workerCommand('worker', 'run one worker node (its NodeEventTracker) in the foreground; SIGTERM leaves gracefully')
  .requiredOption('--data <dir>', "the worker's LevelDB data dir")
  .action(async (options) => {
    const { runWorker } = await import('./commands/worker.ts')
    await runWorker(workerOptions(options, options.data)).catch(exitOnStartFailure('worker'))
  })

workerCommand('workers', 'run N worker nodes in one process (density tests); SIGTERM leaves gracefully')
  .requiredOption('--count <n>', 'number of workers', integer('--count', 1))
  .requiredOption('--data <dir>', 'root dir: worker-<i>/data and worker-<i>/peer.key under it')
  .action(async (options) => {
    const { runWorkers } = await import('./commands/worker.ts')
    await runWorkers(options.count, workerOptions(options, options.data)).catch(exitOnStartFailure('workers'))
  })

program
  .command('ui')
  .description("serve the live cluster page here, read from the replicas' HTTP listeners (cluster file `http`)")
  .addOption(clusterOption())
  .option('--http <host:port>', 'where to serve the page (:PORT is 127.0.0.1; :0 picks a free port)', '127.0.0.1:7080')
  .option('--open', 'open it in the desktop browser', false)
  .action(async (options) => {
    const { runUi } = await import('./commands/ui.ts')
    await runUi({ cluster: options.cluster, http: options.http, open: options.open === true }).catch(
      exitOnStartFailure('ui'),
    )
  })

registerSnapshotCommand(program, { defaultCluster: DEFAULT_CLUSTER })

const agent = program
  .command('agent')
  .description(
    'the CLI agent: get, put, ls and status run in a background process that keeps the cluster connected (started by the first such command, exits after $NODELEDGER_AGENT_IDLE_S idle seconds, default 300; NODELEDGER_AGENT=off runs without it)',
  )
agent
  .command('status')
  .description("this user's agents: pid, cluster file, commands run, idle time")
  .addOption(jsonOption())
  .action((options) => run(async () => (await import('./agent/agent-admin.ts')).agentStatus({ json: options.json })))
agent
  .command('stop')
  .description("stop this user's agents (the next command runs on its own and starts a new one)")
  .action(() => run(async () => (await import('./agent/agent-admin.ts')).agentStop()))
agent
  .command('serve', { hidden: true })
  .description('run the agent for a cluster file in the foreground (the CLI starts it; exits when idle)')
  .addOption(clusterOption())
  .addOption(timeoutOption())
  .action((options) =>
    run(async () =>
      (await import('./agent/agent-server.ts')).serveAgent({ cluster: options.cluster, timeoutMs: options.timeoutMs }),
    ),
  )

await program.parseAsync()
