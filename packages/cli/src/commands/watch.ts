import { EXIT } from '../exit-codes.ts'
import { withClient } from './connect.ts'
import type { ClientCommandOptions } from './connect.ts'
import { capabilities } from './records.ts'

/** These commands talk to the leader: dial the last one first. */
const LEADER_FIRST = { preferLeader: true }

/**
 * `watch`: one line per changed record as its entry commits, from `--from INDEX` (default: now),
 * following the leader across failovers (AuthorityClient.watch resumes from the last index it
 * delivered). Ctrl-C ends it with exit 0.
 */
export async function watch(options: ClientCommandOptions & { from: number | undefined }): Promise<number> {
  return withClient(
    options,
    async ({ client }) => {
      const controller = new AbortController()
      const stop = (): void => controller.abort(new Error('stopped'))
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      try {
        // Default: what commits from now on, i.e. after the leader's commit as it is.
        const from = options.from ?? (await client.get(client.libp2p.peerId.toString())).index
        if (!options.json) process.stderr.write(`watching from log index ${from} (Ctrl-C to stop)\n`)
        for await (const event of client.watch(from, { signal: controller.signal })) {
          for (const record of event.records) {
            if (options.json) {
              console.log(JSON.stringify({ index: record.changedIndex, throughIndex: event.throughIndex, record }))
            } else {
              console.log(
                [
                  String(record.changedIndex).padStart(8),
                  record.peerId,
                  record.isActive ? 'active' : 'inactive',
                  `seq=${record.originSeq}`,
                  `version=${record.version || '-'}`,
                  `capabilities=${capabilities(record)}`,
                  `staked=${record.isStaked}`,
                ].join('  '),
              )
            }
          }
        }
      } catch (error) {
        if (!controller.signal.aborted) throw error
      } finally {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
      }
      return EXIT.OK
    },
    LEADER_FIRST,
  )
}
