// One parsed YAML/JSON document in, typed frozen resources and diagnostics
// out. A Kubernetes List (`kubectl get -o yaml` output) is read item by item.

import type * as z from 'zod';
import type { Diagnostic, Severity } from './diagnostics.ts';
import { formatPath, type FieldPath } from './field-path.ts';
import { deepFreeze } from './freeze.ts';
import { describeValue, issuesToDiagnostics } from './issues.ts';
import { classify } from './kinds.ts';
import type { IstioResource, ObjectMeta, SourceRef } from './resources.ts';
import { isRecord, type Finding } from './schemas/build.ts';
import type { ParsedObjectMeta } from './schemas/metadata.ts';
import { authorizationPolicyDocument, decodeAuthorizationPolicy } from './schemas/authorization-policy.ts';
import { decodeDestinationRule, destinationRuleDocument } from './schemas/destination-rule.ts';
import { decodePeerAuthentication, peerAuthenticationDocument } from './schemas/peer-authentication.ts';
import { decodeRequestAuthentication, requestAuthenticationDocument } from './schemas/request-authentication.ts';
import type { LineFinder } from './yaml-lines.ts';

export interface DocumentContext {
  readonly file: string;
  readonly documentIndex: number;
  /** Line of a path in this document; without one, diagnostics carry no line (e.g. JSON from an API). */
  readonly lineOf?: LineFinder;
}

export interface Decoded {
  readonly resources: IstioResource[];
  readonly diagnostics: Diagnostic[];
}

export function decodeDocument(value: unknown, ctx: DocumentContext): Decoded {
  const out: Decoded = { resources: [], diagnostics: [] };
  if (isRecord(value) && isList(value)) {
    (value['items'] as unknown[]).forEach((item, i) => decodeObject(item, ctx, ['items', i], out));
  } else {
    decodeObject(value, ctx, [], out);
  }
  return out;
}

function isList(value: Readonly<Record<string, unknown>>): boolean {
  return typeof value['kind'] === 'string' && value['kind'].endsWith('List') && Array.isArray(value['items']);
}

function decodeObject(value: unknown, ctx: DocumentContext, prefix: FieldPath, out: Decoded): void {
  const report = (severity: Severity, path: FieldPath, message: string): void => {
    out.diagnostics.push(diagnostic(ctx, severity, [...prefix, ...path], message));
  };

  if (!isRecord(value)) {
    report('error', [], `expected a Kubernetes resource (a mapping with apiVersion and kind), got ${describeValue(value)}`);
    return;
  }
  const { apiVersion, kind } = value;
  for (const [field, v] of [['apiVersion', apiVersion], ['kind', kind]] as const) {
    if (v === undefined) report('error', [field], `missing required field "${field}"`);
    else if (typeof v !== 'string') report('error', [field], `expected string, got ${describeValue(v)}`);
  }
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return;

  const c = classify(apiVersion, kind);
  if (c.type === 'skip') {
    report('warning', [], c.message);
    return;
  }
  if (c.type === 'error') {
    report('error', [c.field], c.message);
    return;
  }

  const source: SourceRef = { file: ctx.file, documentIndex: ctx.documentIndex, line: ctx.lineOf?.(prefix) ?? 1 };
  const built = build(c.kind, apiVersion, value, source);
  if ('issues' in built) {
    out.diagnostics.push(
      ...issuesToDiagnostics(built.issues, {
        file: ctx.file,
        documentIndex: ctx.documentIndex,
        prefix,
        input: value,
        schema: built.schema,
        ...(ctx.lineOf !== undefined ? { lineOf: ctx.lineOf } : {}),
      }),
    );
    return;
  }
  for (const f of built.findings) report('warning', ['spec', ...f.path], f.message);
  out.resources.push(deepFreeze(built.resource));
}

type Built =
  | { readonly resource: IstioResource; readonly findings: readonly Finding[] }
  | { readonly issues: readonly z.core.$ZodIssue[]; readonly schema: z.ZodType };

function build(kind: IstioResource['kind'], apiVersion: string, value: unknown, source: SourceRef): Built {
  switch (kind) {
    case 'PeerAuthentication': {
      const r = decodePeerAuthentication(value);
      if (!r.ok) return { issues: r.issues, schema: peerAuthenticationDocument };
      return { resource: { apiVersion, kind, metadata: meta(r), spec: r.spec, source }, findings: r.findings };
    }
    case 'AuthorizationPolicy': {
      const r = decodeAuthorizationPolicy(value);
      if (!r.ok) return { issues: r.issues, schema: authorizationPolicyDocument };
      return { resource: { apiVersion, kind, metadata: meta(r), spec: r.spec, source }, findings: r.findings };
    }
    case 'RequestAuthentication': {
      const r = decodeRequestAuthentication(value);
      if (!r.ok) return { issues: r.issues, schema: requestAuthenticationDocument };
      return { resource: { apiVersion, kind, metadata: meta(r), spec: r.spec, source }, findings: r.findings };
    }
    case 'DestinationRule': {
      const r = decodeDestinationRule(value);
      if (!r.ok) return { issues: r.issues, schema: destinationRuleDocument };
      return { resource: { apiVersion, kind, metadata: meta(r), spec: r.spec, source }, findings: r.findings };
    }
  }
}

/** Only the metadata meshward reads; the namespace defaults as kubectl's does. */
function meta(r: { readonly metadata: ParsedObjectMeta }): ObjectMeta {
  const m = r.metadata;
  return { name: m.name, namespace: m.namespace ?? 'default', labels: m.labels ?? {}, annotations: m.annotations ?? {} };
}

function diagnostic(ctx: DocumentContext, severity: Severity, path: FieldPath, message: string): Diagnostic {
  const line = ctx.lineOf?.(path);
  const formatted = formatPath(path);
  return {
    severity,
    file: ctx.file,
    documentIndex: ctx.documentIndex,
    ...(line !== undefined ? { line } : {}),
    ...(formatted !== '' ? { path: formatted } : {}),
    message,
  };
}
