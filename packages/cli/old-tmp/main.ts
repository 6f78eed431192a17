#!/usr/bin/env node
/**
 * `nodeledger`: start and inspect an authority cluster, and read and write the registry as its
 * operator. Exit codes (exit-codes.ts): 0 ok, 2 bad input, 3 not found, 4 stale, 5 unavailable,
 * 6 unauthorized, 1 internal.
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { EXIT, exitCodeFor } from './exit-codes.ts'
import { clusterInit } from './commands/cluster-init.ts'
import { runAuthority } from './commands/authority.ts'
import { get, ls, put, status } from './commands/client-commands.ts'
import { runWorker, runWorkers } from './commands/worker.ts'
import type { WorkerCommandOptions } from './commands/worker.ts'

const DEFAULT_CLUSTER = process.env.NODELEDGER_CLUSTER ?? '.run/cluster/cluster.json'

function integer(name: string, min: number) {
  return (value: string): number => {
    const parsed = Number(value)
    if (!Number.isSafeInteger(parsed) || parsed < min)
      throw new InvalidArgumentError(`${name} takes an integer >= ${min}`)
    return parsed
  }
}

const consistency = new Option('--consistency <mode>', 'read consistency')
  .choices(['linearizable', 'lease', 'stale'])
  .default('linearizable')
const clusterOption = new Option('--cluster <file>', 'cluster file').default(DEFAULT_CLUSTER)
const timeoutOption = new Option('--timeout-ms <ms>', 'deadline of each request')
  .argParser(integer('--timeout-ms', 1))
  .default(2000)

async function run(action: () => Promise<number | undefined>): Promise<void> {
  try {
    const code = await action()
    process.exitCode = typeof code === 'number' ? code : EXIT.OK
  } catch (error) {
    const code = (error as { code?: string }).code
    console.error(`nodeledger: ${code !== undefined ? `${code}: ` : ''}${(error as Error).message}`)
    if (process.env.NODELEDGER_DEBUG === '1') console.error(error)
    process.exitCode = exitCodeFor(error)
  }
}

const program = new Command()
  .name('nodeledger')
  .description('a durable, replicated registry of the nodes of a libp2p network')
  .showHelpAfterError()
// Commander's own usage errors exit with 2 like ours.
program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT.BAD_INPUT))

const cluster = program.command('cluster').description('set up an authority cluster')
cluster
  .command('init')
  .description('write replica keys and a cluster file (every replica on its own 127.0.0.x address)')
  .addOption(new Option('--replicas <n>', 'number of replicas').choices(['3', '5']).default('3'))
  .requiredOption('--dir <dir>', 'where to write keys, data dirs and cluster.json')
  .option('--port <port>', 'TCP port of every replica', integer('--port', 1), 7001)
  .option('--force', 'overwrite an existing cluster file (keys are kept)', false)
  .option('--json', 'machine-readable output', false)
  .action((options) =>
    run(
      async () =>
        void (await clusterInit({
          replicas: Number(options.replicas),
          dir: options.dir,
          port: options.port,
          force: options.force,
          json: options.json,
        })),
    ),
  )

program
  .command('authority')
  .description('run one replica in the foreground (SIGTERM: a leader hands over, then exits)')
  .addOption(clusterOption)
  .requiredOption('--id <n>', 'replica id from the cluster file', integer('--id', 1))
  .addOption(
    new Option(
      '--initial-cluster-state <state>',
      'for an empty data dir: new creates the cluster (founders, once); existing joins it as an added learner',
    )
      .choices(['new', 'existing'])
      .default('existing'),
  )
  .option('--multiaddr <ma>', 'a member added after creation: where it listens (ending in /p2p/<peerId>)')
  .option('--key <file>', 'a member added after creation: its key file')
  .option('--data <dir>', 'a member added after creation: its data dir')
  .option('--log-level <level>', 'pino level', 'info')
  .option('--pretty', 'human-readable logs', false)
  .action((options) =>
    runAuthority({
      cluster: options.cluster,
      id: options.id,
      initialClusterState: options.initialClusterState,
      multiaddr: options.multiaddr,
      keyFile: options.key,
      dataDir: options.data,
      logLevel: options.logLevel,
      pretty: options.pretty,
    }).catch((error: unknown) => {
      console.error(
        `nodeledger authority: ${(error as { code?: string }).code ?? 'ERROR'}: ${(error as Error).message}`,
      )
      process.exit(exitCodeFor(error))
    }),
  )

program
  .command('status')
  .description('a table of every replica: role, term, commit, applied, lag, leader')
  .addOption(clusterOption)
  .addOption(timeoutOption)
  .option('--json', 'machine-readable output', false)
  .action((options) =>
    run(() => status({ cluster: options.cluster, json: options.json, timeoutMs: options.timeoutMs })),
  )

program
  .command('put')
  .description('write fields of a node record as the operator: nodeledger put PEER_ID isStaked=true version=1.2.0')
  .argument('<peerId>')
  .argument('<assignments...>', 'FIELD=VALUE pairs')
  .addOption(clusterOption)
  .addOption(timeoutOption)
  .option('--json', 'machine-readable output', false)
  .action((peerId, assignments, options) =>
    run(() => put(peerId, assignments, { cluster: options.cluster, json: options.json, timeoutMs: options.timeoutMs })),
  )

program
  .command('get')
  .description('one node record (exit 3 if the registry does not have it)')
  .argument('<peerId>')
  .addOption(clusterOption)
  .addOption(timeoutOption)
  .addOption(consistency)
  .option('--json', 'machine-readable output', false)
  .action((peerId, options) =>
    run(() =>
      get(peerId, {
        cluster: options.cluster,
        json: options.json,
        timeoutMs: options.timeoutMs,
        consistency: options.consistency,
      }),
    ),
  )

program
  .command('ls')
  .description('list node records')
  .addOption(clusterOption)
  .addOption(timeoutOption)
  .addOption(consistency)
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
  .option('--limit <n>', 'at most this many', integer('--limit', 1), 100)
  .option('--json', 'machine-readable output', false)
  .action((options) =>
    run(() =>
      ls(
        { active: options.active, staked: options.staked, capability: options.capability, limit: options.limit },
        {
          cluster: options.cluster,
          json: options.json,
          timeoutMs: options.timeoutMs,
          consistency: options.consistency,
        },
      ),
    ),
  )

/** The options `worker` and `workers` share. */
function workerCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--bootstrap <multiaddrs...>', "replica multiaddrs (default: the cluster file's)", [])
    .addOption(clusterOption)
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
      'heartbeat interval (default 3000; keep well below the lease TTL)',
      integer('--heartbeat-ms', 100),
    )
    .option('--log-level <level>', 'pino level', 'info')
    .option('--pretty', 'human-readable logs', false)
}

function workerOptions(options: Record<string, unknown>, data: string): WorkerCommandOptions {
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
    logLevel: options.logLevel as string,
    pretty: options.pretty === true,
  }
}

function exitOnStartFailure(what: string) {
  return (error: unknown): never => {
    console.error(`nodeledger ${what}: ${(error as { code?: string }).code ?? 'ERROR'}: ${(error as Error).message}`)
    process.exit(exitCodeFor(error))
  }
}

workerCommand('worker', 'run one worker node (its NodeEventTracker) in the foreground; SIGTERM leaves gracefully')
  .requiredOption('--data <dir>', "the worker's LevelDB data dir")
  .action((options) => runWorker(workerOptions(options, options.data)).catch(exitOnStartFailure('worker')))

workerCommand('workers', 'run N worker nodes in one process (density tests); SIGTERM leaves gracefully')
  .requiredOption('--count <n>', 'number of workers', integer('--count', 1))
  .requiredOption('--data <dir>', 'root dir: worker-<i>/data and worker-<i>/peer.key under it')
  .action((options) =>
    runWorkers(options.count, workerOptions(options, options.data)).catch(exitOnStartFailure('workers')),
  )

await program.parseAsync()
