// One-shot form of the PeerAuthentication decision, for the CLI and tests.
// Anything that asks more than once should compile once (./compile.ts).
//
//   resolvePeerMode(resources.peerAuthentications,
//     { namespace: 'production', labels: { app: 'payment-service' } }, 8080, mesh.rootNamespace)
//   // → { mode: 'STRICT', policy: 'production/payment-service', reason: '…' }

import type { PeerAuthentication } from '../../api/resources.ts';
import { compilePeerAuthn, type PeerModeDecision, type PeerMtlsMode } from './compile.ts';

export function resolvePeerMode(
  all: readonly PeerAuthentication[],
  workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> },
  port: number,
  rootNamespace: string,
): PeerModeDecision {
  return compilePeerAuthn(all, rootNamespace).forWorkload(workload.namespace, workload.labels).modeForPort(port);
}

/**
 * The mode from mesh and namespace policies alone: Istio's hint for a
 * client's auto mTLS toward services in `namespace` (see CompiledPeerAuthn.namespaceMode).
 */
export function namespaceMtlsMode(
  all: readonly PeerAuthentication[],
  namespace: string,
  rootNamespace: string,
): PeerMtlsMode {
  return compilePeerAuthn(all, rootNamespace).namespaceMode(namespace).mode;
}
