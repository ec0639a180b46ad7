// PeerAuthentication: the mTLS mode a workload port requires.
export {
  compilePeerAuthn,
  type CompiledPeerAuthn,
  type IgnoredPeerAuthn,
  type PeerModeDecision,
  type PeerMtlsMode,
  type WorkloadPeerAuthn,
} from './compile.ts';
export { namespaceMtlsMode, resolvePeerMode } from './resolve.ts';
