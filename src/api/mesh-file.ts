// The mesh file: one local mesh described whole — trust domain, the policy
// directory, the control plane's addresses, the workloads (identity, labels,
// the command that starts the app, ports, upstreams), the ingress gateway
// and plain processes that run beside the mesh. `meshward up` reads it, the
// control plane builds each proxy's config from it. See docs/mesh-file.md.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import * as z from 'zod';
import type { Diagnostic } from './diagnostics.ts';
import { deepFreeze } from './freeze.ts';
import { issuesToDiagnostics } from './issues.ts';
import { lineFinder } from './yaml-lines.ts';

const port = z.number().int().min(1).max(65535);
// DNS-1123 labels, as Kubernetes names namespaces, service accounts and services.
const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a DNS-1123 label (lower-case letters, digits, "-")');
const loopbackIp = z
  .string()
  .refine((a) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a) && a.split('.').every((o) => Number(o) <= 255), {
    message: 'expected a loopback IPv4 address (127.0.0.0/8): a local mesh listens on loopback only',
  });
const hostPort = z.string().refine((v) => {
  const m = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})$/.exec(v);
  return m !== null && Number(m[2]) <= 65535;
}, 'expected 127.x.y.z:port (loopback only)');
const command = z.array(z.string().min(1)).min(1);
const env = z.record(z.string(), z.string());

const meshPort = z.strictObject({
  port,
  protocol: z.enum(['http', 'http2', 'grpc', 'tcp']),
  appPort: port,
  healthPaths: z.array(z.string().startsWith('/')).optional(),
});

const upstreamRef = z.strictObject({ service: dnsLabel, port, localPort: port });

/** One workload, as in the mesh file (also what a proxy registers itself with on the config stream). */
export const meshWorkloadSchema = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel,
  serviceAccount: dnsLabel,
  labels: z.record(z.string(), z.string()).default({}),
  address: loopbackIp,
  adminPort: port,
  command: command.optional(),
  env: env.default({}),
  ports: z.array(meshPort).min(1),
  upstreams: z.array(upstreamRef).default([]),
});

const gateway = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel,
  serviceAccount: dnsLabel,
  labels: z.record(z.string(), z.string()).default({}),
  listen: hostPort,
  adminPort: port,
  route: upstreamRef,
});

const processSpec = z.strictObject({ name: dnsLabel, command, env: env.default({}) });

// What `meshward up` prints once the mesh is ready: things to try, as
// copy-pasteable commands. `{stateDir}` is replaced by the state directory.
const tourStep = z.strictObject({ title: z.string().min(1), commands: z.array(z.string().min(1)).min(1) });

export const meshFileSchema = z
  .strictObject({
    trustDomain: z.string().min(1).default('cluster.local'),
    rootNamespace: dnsLabel.default('istio-system'),
    policies: z.string().min(1),
    controlPlane: z
      .strictObject({ listen: hostPort.default('127.0.0.1:15012'), admin: hostPort.default('127.0.0.1:15014') })
      .default({ listen: '127.0.0.1:15012', admin: '127.0.0.1:15014' }),
    workloads: z.array(meshWorkloadSchema).min(1),
    gateway: gateway.optional(),
    processes: z.array(processSpec).default([]),
    tour: z.array(tourStep).default([]),
  })
  .superRefine((m, ctx) => {
    const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
    // Every listener on the machine must be distinct: say which entry repeats which.
    const taken = new Map<string, string>();
    const claim = (key: string, path: (string | number)[], what: string): void => {
      const first = taken.get(key);
      if (first !== undefined) issue(path, `${what} is already used by ${first}`);
      else taken.set(key, path.join('.'));
    };
    const names = new Map<string, number>();
    m.workloads.forEach((w, i) => {
      const key = `${w.namespace}/${w.name}`;
      const first = names.get(key);
      if (first !== undefined) issue(['workloads', i, 'name'], `workload ${key} is already defined by workloads.${first}`);
      else names.set(key, i);
      claim(`127.0.0.1:${w.adminPort}`, ['workloads', i, 'adminPort'], `127.0.0.1:${w.adminPort}`);
      w.ports.forEach((p, j) => {
        claim(`${w.address}:${p.port}`, ['workloads', i, 'ports', j, 'port'], `${w.address}:${p.port}`);
        claim(`127.0.0.1:${p.appPort}`, ['workloads', i, 'ports', j, 'appPort'], `127.0.0.1:${p.appPort}`);
      });
      w.upstreams.forEach((u, j) => {
        claim(`127.0.0.1:${u.localPort}`, ['workloads', i, 'upstreams', j, 'localPort'], `127.0.0.1:${u.localPort}`);
        if (!m.workloads.some((t) => t.name === u.service && t.ports.some((p) => p.port === u.port))) {
          issue(['workloads', i, 'upstreams', j], `no workload named ${u.service} serves port ${u.port}`);
        }
      });
    });
    const g = m.gateway;
    if (g !== undefined) {
      claim(g.listen, ['gateway', 'listen'], g.listen);
      claim(`127.0.0.1:${g.adminPort}`, ['gateway', 'adminPort'], `127.0.0.1:${g.adminPort}`);
      claim(`127.0.0.1:${g.route.localPort}`, ['gateway', 'route', 'localPort'], `127.0.0.1:${g.route.localPort}`);
      if (!m.workloads.some((t) => t.name === g.route.service && t.ports.some((p) => p.port === g.route.port))) {
        issue(['gateway', 'route'], `no workload named ${g.route.service} serves port ${g.route.port}`);
      }
    }
    claim(m.controlPlane.listen, ['controlPlane', 'listen'], m.controlPlane.listen);
    claim(m.controlPlane.admin, ['controlPlane', 'admin'], m.controlPlane.admin);
  });

type Parsed = z.output<typeof meshFileSchema>;
export type MeshWorkload = Parsed['workloads'][number];
export type MeshGateway = NonNullable<Parsed['gateway']>;
export type MeshProcess = Parsed['processes'][number];
export type MeshPort = MeshWorkload['ports'][number];

export interface MeshFile extends Parsed {
  /** The file it was read from, absolute. */
  readonly file: string;
  /** Directory relative paths (policies, commands) are resolved against. */
  readonly dir: string;
  /** `policies`, resolved. */
  readonly policyDir: string;
}

export type MeshFileResult = { readonly mesh: MeshFile } | { readonly diagnostics: readonly Diagnostic[] };

/** Reads and validates a mesh file; every problem is reported with its line and field. */
export function loadMeshFile(path: string): MeshFileResult {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { diagnostics: [{ severity: 'error', file: path, message: `cannot read: ${(err as Error).message}` }] };
  }
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    return { diagnostics: [{ severity: 'error', file: path, line: counter.linePos(syntax.pos[0]).line, message: `YAML syntax error: ${syntax.message}` }] };
  }
  const input: unknown = doc.toJS({ maxAliasCount: 100 });
  const r = meshFileSchema.safeParse(input);
  if (!r.success) {
    return { diagnostics: issuesToDiagnostics(r.error.issues, { file: path, input, schema: meshFileSchema, lineOf: lineFinder(doc, counter) }) };
  }
  const dir = dirname(file);
  return { mesh: deepFreeze({ ...r.data, file, dir, policyDir: resolve(dir, r.data.policies) }) };
}

/** The SPIFFE ID of a workload or the gateway. */
export function meshIdentity(mesh: Pick<MeshFile, 'trustDomain'>, w: { namespace: string; serviceAccount: string }): string {
  return `spiffe://${mesh.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
}

/** `PAYMENT_SERVICE_URL` for `payment-service`: how an app finds an upstream's local port. */
export function upstreamEnvName(service: string): string {
  return `${service.toUpperCase().replace(/-/g, '_')}_URL`;
}
