// `meshward authz check`: load resources, read one request, decide it with
// the same engine the proxy enforces with, print the decision. The JSON
// output is a contract other tools consume: keep its fields exact.

import { loadResources } from '../api/load.ts';
import { formatDiagnostic } from '../api/diagnostics.ts';
import { parseAuthzCheckRequest, type AuthzCheckRequest } from '../api/authz-request.ts';
import { PolicyEngine, type EngineInput } from '../policy/engine.ts';
import type { Decision } from '../policy/decision.ts';
import { EXIT_OK, EXIT_USAGE, readTextArgument } from './io.ts';
import { explainDecision } from './explain-text.ts';

export function toEngineInput(req: AuthzCheckRequest): EngineInput {
  const r = req.request;
  return {
    destination: req.destination,
    connection: {
      mtls: req.source.mtls,
      principal: req.source.principal,
      clientNamespace: req.source.namespace,
      ip: req.source.ip,
      ...(req.source.remoteIp !== undefined ? { remoteIp: req.source.remoteIp } : {}),
      ...(r.sni !== undefined ? { sni: r.sni } : {}),
    },
    request:
      r.protocol === 'tcp'
        ? { protocol: 'tcp' }
        : { protocol: 'http', method: r.method, path: r.path, host: r.host, headers: r.headers },
    ...(req.extAuthz !== undefined ? { extAuthz: req.extAuthz } : {}),
  };
}

/** The contract's JSON object: exactly these fields, in this order, then extras. */
export function decisionJson(d: Decision): Record<string, unknown> {
  return {
    decision: d.decision,
    status: d.status,
    stage: d.stage,
    policy: d.policy,
    principal: d.principal,
    requestPrincipal: d.requestPrincipal,
    rule: d.rule,
    reason: d.reason,
  };
}

export async function runAuthzCheck(paths: readonly string[], requestPath: string, output: 'text' | 'json'): Promise<number> {
  const { resources, diagnostics } = loadResources(paths);
  for (const d of diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
  if (diagnostics.some((d) => d.severity === 'error')) {
    process.stderr.write('meshward: the configuration is invalid; no decision made\n');
    return EXIT_USAGE;
  }

  const { name, text } = await readTextArgument(requestPath);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    process.stderr.write(`${name}: error: request is not valid JSON: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  const parsed = parseAuthzCheckRequest(name, json);
  if (parsed.request === undefined) {
    for (const d of parsed.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return EXIT_USAGE;
  }
  const request = parsed.request;

  const engine = new PolicyEngine(resources, request.meshConfig);
  const decision = await engine.check(toEngineInput(request), { explain: output === 'text' });
  if (output === 'json') process.stdout.write(`${JSON.stringify(decisionJson(decision))}\n`);
  else process.stdout.write(explainDecision(decision, request));
  return EXIT_OK;
}
