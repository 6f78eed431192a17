/**
 * @nodeledger/testkit: the deterministic Raft simulator and its checkers.
 *
 * @example
 * ```ts
 * import { runSeed } from '@nodeledger/testkit'
 * const result = runSeed(42)            // same seed, same trace, every time
 * if (result.violations.length > 0) console.log(result.violations, result.traceTail)
 * ```
 */
export { Simulation, runSeed, optionsForSeed } from './sim/simulation.ts'
export type { SimulationOptions, SimulationResult, FaultOptions } from './sim/simulation.ts'
export { SimNetwork } from './sim/network.ts'
export type { NetworkOptions } from './sim/network.ts'
export { SafetyChecker, digestBytes } from './sim/checker.ts'
export { SimRng } from './sim/rng.ts'
export { ProcessCluster, waitUntil } from './process/process-cluster.ts'
export type { ProcessClusterOptions, ClusterFileShape } from './process/process-cluster.ts'
export { HistoryRecorder, LinearizabilityError, pairHistory, registerModel, seqRegisterModel, checkHistory, checkOperations, SEARCH_STATES_MAX_DEFAULT } from './linearizability/index.ts'
export type { HistoryEvent, OpType, Operation, RegisterValue, Model, RegisterState, Verdict, CheckOptions, KeyResult, HistoryRecorderOptions, LinearizabilityErrorCode } from './linearizability/index.ts'
