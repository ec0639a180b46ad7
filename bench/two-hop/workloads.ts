// Node-proxy mode for the two-hop benchmark: N WorkloadProxy objects in one
// process (as a per-node proxy would host them), each with its own SVID, an
// inbound `http` port in front of the shared app and an outbound upstream to
// the next workload's inbound port (a ring), so every proxy has served and
// dialled mTLS before its memory is read. Every listener binds port 0 on
// 127.0.0.1 (outbound) or all addresses (inbound, as the proxy does); the
// parent reads this process's RSS from /proc.
//
// The child prints one JSON line ({ ready, requests, errors }) when its
// traffic is done, then waits for SIGTERM.

import { Agent, request } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import { NAMESPACE, TRUST_DOMAIN, spiffeId } from './pki.ts';

export interface WorkloadFiles {
  readonly sa: string;
  readonly keyFile: string;
  readonly chainFile: string;
}

/** Writes the ring's policy (STRICT, one ALLOW for the previous workload per workload). */
function writePolicy(dir: string, sas: readonly string[]): string {
  const d = join(dir, 'node-mode-policy');
  mkdirSync(d, { recursive: true });
  const docs = [
    'apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: istio-system\nspec:\n  mtls:\n    mode: STRICT\n',
    ...sas.map((sa, i) => {
      const caller = sas[(i + sas.length - 1) % sas.length]!;
      return `apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${sa}-allow\n  namespace: ${NAMESPACE}\nspec:\n  selector:\n    matchLabels:\n      app: ${sa}\n  action: ALLOW\n  rules:\n    - from:\n        - source:\n            principals: ["${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${caller}"]\n`;
    }),
  ];
  writeFileSync(join(d, 'policies.yaml'), docs.join('---\n'));
  return d;
}

function get(agent: Agent, port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

export async function runWorkloads(dir: string, rootFile: string, appPort: number, files: readonly WorkloadFiles[], requestsEach: number): Promise<void> {
  const sas = files.map((f) => f.sa);
  const policyDir = writePolicy(dir, sas);
  const proxies: WorkloadProxy[] = [];
  const config = (i: number, nextPort: number): ProxyConfig => {
    const f = files[i]!;
    const next = sas[(i + 1) % sas.length]!;
    return {
      version: 1,
      workload: { name: f.sa, namespace: NAMESPACE, serviceAccount: f.sa, labels: { app: f.sa }, trustDomain: TRUST_DOMAIN },
      identity: { files: { keyFile: f.keyFile, certChainFile: f.chainFile, bundleFile: rootFile } },
      inbound: [{ port: 8080, protocol: 'http', appPort }],
      outbound:
        nextPort === 0
          ? []
          : [{ name: next, host: `${next}.${NAMESPACE}.svc.${TRUST_DOMAIN}`, servicePort: 8080, protocol: 'http', localPort: 19001, endpoints: [{ host: '127.0.0.1', port: nextPort, identities: [spiffeId(next)] }] }],
      adminPort: 15000,
      policyPaths: [policyDir],
    };
  };
  // Inbound ports first (bound to any free port), then the ring's outbound routes by update().
  for (let i = 0; i < files.length; i++) {
    proxies.push(await WorkloadProxy.start(config(i, 0), { bindPort: () => 0, drainMs: 200 }));
  }
  const inboundPorts = proxies.map((p) => p.status().inbound[0]!.boundPort);
  for (let i = 0; i < proxies.length; i++) {
    const r = await proxies[i]!.update({ ...config(i, inboundPorts[(i + 1) % proxies.length]!), version: 2 });
    if (!r.ok) throw new Error(`update refused: ${JSON.stringify(r.diagnostics)}`);
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  let ok = 0;
  let errors = 0;
  await Promise.all(
    proxies.map(async (p) => {
      const port = p.status().outbound[0]!.boundPort;
      for (let k = 0; k < requestsEach; k++) {
        if ((await get(agent, port)) === 200) ok++;
        else errors++;
      }
    }),
  );
  agent.destroy();
  process.stdout.write(`${JSON.stringify({ ready: true, requests: ok, errors })}\n`);
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  await Promise.all(proxies.map((p) => p.stop()));
  process.exit(0);
}
