// DestinationRule: which rule a client applies to a service, and the TLS it sends.
export {
  compileDestinationRules,
  decideClientTls,
  resolveClientTls,
  type ClientTlsDecision,
  type ClientTlsOutcome,
  type ClientTlsQuery,
  type ClientTlsSettingsInMesh,
  type CompiledDestinationRules,
} from './client-tls.ts';
export {
  indexDestinationRules,
  namespaceOfServiceHost,
  resolveRuleHost,
  type ConsolidatedRule,
  type DestinationRuleIndex,
  type DestinationRuleMatch,
  type DestinationRuleSettings,
  type IgnoredDestinationRule,
  type LookupOptions,
  type LookupStep,
} from './rules-index.ts';
