/**
 * The linearizability checker: record client histories, then judge them key by key.
 *
 * @example
 * ```ts
 * import { HistoryRecorder, checkHistory } from '@nodeledger/testkit'
 * const recorder = new HistoryRecorder()
 * const p = recorder.newProcess()
 * recorder.invoke(p, 'write', 'node-a', { seq: 1, value: 'v1' })
 * recorder.ok(p)
 * const verdict = checkHistory(recorder.events)   // seqRegisterModel by default
 * if (verdict.valid !== true) console.log(verdict.failures, verdict.unknownKeys)
 * ```
 */
export { HistoryRecorder, LinearizabilityError, pairHistory } from './history.ts'
export type {
  HistoryEvent,
  HistoryRecorderOptions,
  LinearizabilityErrorCode,
  OpType,
  Operation,
  RegisterValue,
} from './history.ts'
export { registerModel, seqRegisterModel } from './models.ts'
export type { Model, RegisterState } from './models.ts'
export { SEARCH_STATES_MAX_DEFAULT, checkHistory, checkOperations } from './checker.ts'
export type { CheckOptions, KeyResult, Verdict } from './checker.ts'
