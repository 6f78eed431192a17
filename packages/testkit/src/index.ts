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
export {
  HistoryRecorder,
  LinearizabilityError,
  pairHistory,
  registerModel,
  seqRegisterModel,
  checkHistory,
  checkOperations,
  SEARCH_STATES_MAX_DEFAULT,
} from './linearizability/index.ts'
export type {
  HistoryEvent,
  OpType,
  Operation,
  RegisterValue,
  Model,
  RegisterState,
  Verdict,
  CheckOptions,
  KeyResult,
  HistoryRecorderOptions,
  LinearizabilityErrorCode,
} from './linearizability/index.ts'
export { Netns, NetnsUnavailableError, faketimeEnv, libfaketimePath } from './process/netns.ts'
export type { DropRule } from './process/netns.ts'
export { NetnsCluster, WorkloadAgent } from './process/netns-cluster.ts'
export type { NetnsClusterOptions, ReplicaObservation, WorkloadOptions, FinalReads } from './process/netns-cluster.ts'
export { NEMESES, NEMESIS_NAMES, parseNemeses } from './process/nemesis.ts'
export type { Nemesis, NemesisName, NemesisContext, InjectedFault } from './process/nemesis.ts'
export { runChaos, CHAOS_DEFAULTS, UNAVAILABILITY_THRESHOLD_MS } from './chaos/run.ts'
export type { ChaosOptions, ChaosReport, ChaosProgress, FaultRecord } from './chaos/run.ts'
export { writeReport, markdown as chaosMarkdown, timelineSvg } from './chaos/report.ts'
export { HistoryWriter, readHistory } from './chaos/history-file.ts'
