// The workload identity agent (see agent.ts): in-memory keys, X509-SVIDs
// from the CA server, rotation, and the trust bundle.

export {
  WorkloadAgent,
  AgentError,
  type WorkloadAgentOptions,
  type AgentSnapshot,
  type AgentEvents,
  type AgentLog,
  type RotationReason,
  type BootstrapTokenSource,
} from './agent.ts';
export { type WorkloadKeyType } from './keys.ts';
export { DEFAULT_ROTATION, DEFAULT_BACKOFF, type RotationPolicy, type BackoffPolicy } from './schedule.ts';
