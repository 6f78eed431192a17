import { gossipsub } from '@libp2p/gossipsub'
import type { GossipSub } from '@libp2p/gossipsub'
import { createPeerScoreParams, createTopicScoreParams } from '@libp2p/gossipsub/score'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { DELTAS_TOPIC } from '@nodeledger/protocol'
import { createLibp2p } from 'libp2p'
import { WORKER_CONNECTIONS_MAX, WORKER_PING_INTERVAL_MS } from './constants.ts'

export type WorkerHost = Libp2p<{ identify: Identify; gossip: GossipSub }>

/**
 * A worker's libp2p host: the replicas' stack (TCP, Noise, Yamux, identify) plus gossipsub for
 * DELTAS_TOPIC. Messages are signed by their author (StrictSign: gossipsub drops unsigned or
 * badly signed messages before our validator runs). Peer scoring is on for the topic with a heavy
 * weight on invalid messages, so a peer whose messages our validator rejects (forged origin,
 * malformed, oversized) loses score and is pruned from the mesh, then ignored.
 */
export async function createWorkerHost(options: {
  privateKey: PrivateKey
  listen: readonly string[]
}): Promise<WorkerHost> {
  return await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: [...options.listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    connectionManager: { maxConnections: WORKER_CONNECTIONS_MAX },
    // Not libp2p's 10 s: see WORKER_PING_INTERVAL_MS.
    connectionMonitor: { pingInterval: WORKER_PING_INTERVAL_MS },
    services: {
      identify: identify(),
      gossip: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        emitSelf: false,
        // The first worker of a network has nobody to gossip to; its submit still reaches the log.
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        scoreParams: createPeerScoreParams({
          topics: {
            [DELTAS_TOPIC]: createTopicScoreParams({
              topicWeight: 1,
              // P4: each rejected message costs its sender -10 (squared counter), decaying slowly.
              invalidMessageDeliveriesWeight: -10,
              invalidMessageDeliveriesDecay: 0.5,
              // Without these at zero, a quiet topic would penalise honest peers for not delivering.
              meshMessageDeliveriesWeight: 0,
              meshFailurePenaltyWeight: 0,
              firstMessageDeliveriesWeight: 0,
              timeInMeshWeight: 0,
            }),
          },
        }),
      }),
    },
  })
}
