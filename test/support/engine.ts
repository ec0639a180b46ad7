// Test helpers: build a PolicyEngine from YAML text exactly as the CLI does,
// and requests with sensible defaults that each test overrides field by field.

import assert from 'node:assert/strict';
import { loadResourcesFromText } from '../../src/api/load.ts';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../../src/api/mesh-config.ts';
import { PolicyEngine, type EngineInput, type EngineOptions } from '../../src/policy/engine.ts';
import type { Decision } from '../../src/policy/decision.ts';

export function engineFrom(yamlText: string, mesh: Partial<MeshConfig> = {}, options: EngineOptions = {}): PolicyEngine {
  const { resources, diagnostics } = loadResourcesFromText('test.yaml', yamlText);
  const errors = diagnostics.filter((d) => d.severity === 'error');
  assert.deepEqual(errors, [], 'test policies must be valid');
  return new PolicyEngine(resources, { ...DEFAULT_MESH_CONFIG, ...mesh }, options);
}

export interface RequestOverrides {
  namespace?: string;
  labels?: Record<string, string>;
  port?: number;
  destinationIp?: string;
  service?: { host: string; port: number };
  principal?: string | null;
  mtls?: boolean | 'auto';
  clientNamespace?: string | null;
  ip?: string;
  remoteIp?: string;
  sni?: string;
  tcp?: boolean;
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  extAuthz?: Record<string, 'ALLOW' | 'DENY'>;
}

/** A request from `sleep` in namespace `bar` to `httpbin` in `foo`, over mTLS, unless overridden. */
export function request(o: RequestOverrides = {}): EngineInput {
  return {
    destination: {
      namespace: o.namespace ?? 'foo',
      labels: o.labels ?? { app: 'httpbin' },
      serviceAccount: 'httpbin',
      port: o.port ?? 8080,
      ...(o.destinationIp ? { ip: o.destinationIp } : {}),
      ...(o.service ? { service: o.service } : {}),
    },
    connection: {
      mtls: o.mtls ?? true,
      principal: o.principal === undefined ? 'cluster.local/ns/bar/sa/sleep' : o.principal,
      clientNamespace: o.clientNamespace === undefined ? 'bar' : o.clientNamespace,
      ip: o.ip ?? '10.0.2.7',
      ...(o.remoteIp ? { remoteIp: o.remoteIp } : {}),
      ...(o.sni ? { sni: o.sni } : {}),
    },
    request: o.tcp
      ? { protocol: 'tcp' }
      : {
          protocol: 'http',
          method: o.method ?? 'GET',
          path: o.path ?? '/',
          host: o.host ?? 'httpbin.foo.svc.cluster.local',
          headers: o.headers ?? {},
        },
    ...(o.extAuthz ? { extAuthz: o.extAuthz } : {}),
  };
}

export async function decide(engine: PolicyEngine, o: RequestOverrides = {}): Promise<Decision> {
  return engine.check(request(o));
}

/** Asserts decision, status and (for denials) stage, with the reason in the failure message. */
export function expectDecision(d: Decision, decision: 'ALLOW' | 'DENY', status: Decision['status'], stage: Decision['stage'] = null): void {
  assert.deepEqual(
    { decision: d.decision, status: d.status, stage: d.stage },
    { decision, status, stage },
    `unexpected decision: ${d.reason}`,
  );
}
