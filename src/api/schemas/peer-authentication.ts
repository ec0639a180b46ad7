// PeerAuthentication (security.istio.io/v1, v1beta1): which mTLS mode a
// workload's inbound side accepts, per workload or per port.

import * as z from 'zod';
import type { PeerAuthenticationSpec } from '../resources.ts';
import { present, recordField, withRules } from './build.ts';
import type { Finding } from './build.ts';
import { workloadSelector } from './common.ts';
import { documentSchema, type DecodeResult } from './document.ts';

const MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;

// `mtls: {}` leaves the mode UNSET (inherit), as the proto default does.
const mtls = z.strictObject({ mode: z.enum(MODES).default('UNSET') });

export const peerAuthenticationSpec = withRules(
  z.strictObject({
    selector: workloadSelector.optional(),
    mtls: mtls.optional(),
    portLevelMtls: z.record(z.string(), mtls).optional(),
  }),
  (spec, ctx) => {
    const ports = recordField(spec, 'portLevelMtls');
    if (ports === undefined) return;
    const keys = Object.keys(ports);
    if (keys.length === 0) {
      ctx.error(['portLevelMtls'], 'cannot be empty; omit portLevelMtls if no port needs its own mode');
    }
    const seen = new Set<number>();
    for (const key of keys) {
      const port = Number(key);
      if (!/^[0-9]+$/.test(key) || port < 1 || port > 65535) {
        ctx.error(['portLevelMtls', key], `invalid port "${key}": must be a number from 1 to 65535`);
      } else if (seen.has(port)) {
        ctx.error(['portLevelMtls', key], `port ${port} is listed twice`);
      }
      seen.add(port);
    }
    const labels = recordField(recordField(spec, 'selector') ?? {}, 'matchLabels');
    if (keys.length > 0 && (labels === undefined || Object.keys(labels).length === 0)) {
      ctx.error(
        ['portLevelMtls'],
        present(spec, 'selector')
          ? 'portLevelMtls needs a selector with at least one label (port-level mTLS applies to specific workloads)'
          : 'portLevelMtls needs a workload selector: mesh- and namespace-wide PeerAuthentications cannot have port-level mTLS',
      );
    }
  },
);

export const peerAuthenticationDocument = documentSchema(peerAuthenticationSpec.nullable().optional(), { dryRun: 'unsupported' });

export function toPeerAuthenticationSpec(spec: z.output<typeof peerAuthenticationSpec>): PeerAuthenticationSpec {
  const { portLevelMtls, ...rest } = spec;
  if (portLevelMtls === undefined) return rest;
  // Keys become canonical port numbers ("08080" and 8080 are the same port).
  const byPort: Record<number, { mode: (typeof MODES)[number] }> = {};
  for (const [key, value] of Object.entries(portLevelMtls)) byPort[Number(key)] = value;
  return { ...rest, portLevelMtls: byPort };
}

export function peerAuthenticationWarnings(spec: PeerAuthenticationSpec): Finding[] {
  if (spec.selector !== undefined && Object.keys(spec.selector.matchLabels).length === 0) {
    return [{ path: ['selector'], message: 'selector has no labels: the policy applies to every workload in the namespace' }];
  }
  return [];
}

export function decodePeerAuthentication(value: unknown): DecodeResult<PeerAuthenticationSpec> {
  const r = peerAuthenticationDocument.safeParse(value);
  if (!r.success) return { ok: false, issues: r.error.issues };
  const spec = toPeerAuthenticationSpec(r.data.spec ?? {});
  return { ok: true, metadata: r.data.metadata, spec, findings: peerAuthenticationWarnings(spec) };
}
