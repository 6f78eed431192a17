import { parentPort } from 'node:worker_threads'
import { runSeed } from '../sim/simulation.ts'

// Runs batches of seeds for cli/sim.ts; results carry only what the parent prints.
parentPort!.on('message', (seeds: number[]) => {
  parentPort!.postMessage(seeds.map((seed) => runSeed(seed)))
})
