// The CA server (see server.ts) and the pieces a caller may swap or extend:
// authenticators, bootstrap tokens; and its loopback admin endpoint.

export { CaServer, type CaServerOptions, type CaServerStatus, type CaServerLogEntry } from './server.ts';
export {
  BootstrapTokenAuthenticator,
  ClientCertificateAuthenticator,
  type CallerAuthenticator,
  type CallContext,
  type Caller,
  type AuthnOutcome,
} from './authn.ts';
export { BootstrapTokens, type BootstrapTokensOptions, type TokenRefusal, type MintOptions } from './bootstrap-tokens.ts';
export { type RotationStatus, type RotationStep, type RotationResult, type RotateOptions } from './root-rotation.ts';
export { type AgentView } from './agents.ts';
export {
  CaAdmin,
  RotationRefused,
  isLoopbackHost,
  type CaAdminOptions,
  type CaAdminStatus,
  type RotateOutcome,
  type BootstrapTokenGrant,
} from './admin.ts';
