import type { Command } from 'commander'
import { InvalidArgumentError, Option } from 'commander'
import type { SnapshotSaveOptions } from './snapshot.ts'

/**
 * The `snapshot` commands' flags and help, with commander alone: main.ts registers them at every
 * start, and the work (snapshot.ts: the replica's storage, LevelDB, libp2p) is imported only when
 * one of them runs, so `--help` and the other commands never load it.
 */

type SnapshotModule = typeof import('./snapshot.ts')

async function run(action: (module: SnapshotModule) => Promise<number>): Promise<void> {
  const module = await import('./snapshot.ts')
  await module.runSnapshotCommand(() => action(module))
}

export interface SnapshotCommandDefaults {
  /** The cluster file `save` reads when --cluster is not given (restore always needs its own). */
  readonly defaultCluster: string
}

/** Registers `snapshot save`, `snapshot status` and `snapshot restore` on `program`. */
export function registerSnapshotCommand(program: Command, defaults: SnapshotCommandDefaults): void {
  const snapshot = program.command('snapshot').description('back up the registry to a file, inspect one, restore one')
  snapshot
    .command('save')
    .description("save the leader's state at a linearizable point to FILE (atomically; checksummed)")
    .argument('<file>')
    .addOption(new Option('--cluster <file>', 'cluster file of the running cluster').default(defaults.defaultCluster))
    .addOption(
      new Option('--timeout-ms <ms>', 'deadline of each request (finding the leader)')
        .argParser(positiveInteger('--timeout-ms'))
        .default(5_000),
    )
    .addOption(
      new Option(
        '--frame-timeout-ms <ms>',
        "deadline of each frame of the transfer (the first one waits for the leader's read barrier and encode)",
      )
        .argParser(positiveInteger('--frame-timeout-ms'))
        .default(30_000),
    )
    .option('--json', 'machine-readable output', false)
    .action((file: string, options: SnapshotSaveOptions) => run((m) => m.snapshotSave(file, options)))
  snapshot
    .command('status')
    .description('what a snapshot file holds: cluster, index, term, members, records, bytes; checks every checksum')
    .argument('<file>')
    .option('--json', 'machine-readable output', false)
    .action((file: string, options: { json: boolean }) => run((m) => m.snapshotStatus(file, options)))
  snapshot
    .command('restore')
    .description(
      "seed a NEW cluster's data dirs from FILE (its cluster file from `cluster init`: new keys, a new clusterId)",
    )
    .argument('<file>')
    .requiredOption('--cluster <file>', 'cluster file of the new cluster (its founders get the restored state)')
    .option('--json', 'machine-readable output', false)
    .action((file: string, options: { cluster: string; json: boolean }) => run((m) => m.snapshotRestore(file, options)))
}

function positiveInteger(name: string) {
  return (value: string): number => {
    const parsed = Number(value)
    if (!Number.isSafeInteger(parsed) || parsed < 1) throw new InvalidArgumentError(`${name} takes an integer >= 1`)
    return parsed
  }
}
