// `meshward proxy --config FILE`: runs one workload proxy in this process.
// Its identity comes from the config: files an operator wrote, or a CA
// server and a bootstrap token (a WorkloadAgent then keeps the certificate
// renewed in memory and the proxy follows its rotations). Relative paths in
// the config are read relative to the config file, so a config directory can
// be moved whole. SIGINT or SIGTERM stops the listeners, lets open requests
// finish briefly, and exits 0.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { formatDiagnostic } from '../api/diagnostics.ts';
import type { ProxyConfig } from '../api/proxy-config.ts';
import { loadProxyConfig } from '../api/proxy-config-schema.ts';
import { trimMemoryWhenIdle } from '../lib/memory-trim.ts';
import { RUNNING_FROM } from '../lib/installation.ts';
import type { WorkloadAgent } from '../identity/agent/index.ts';
import { ProxyConfigError, WorkloadProxy } from '../proxy/proxy.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { untilSignal } from './signals.ts';

function logLine(level: string, event: string, fields: Readonly<Record<string, unknown>>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'proxy', level, event, ...fields })}\n`);
}

function withPathsFrom(dir: string, c: ProxyConfig): ProxyConfig {
  const at = (p: string): string => resolve(dir, p);
  const files = c.identity?.files;
  const ca = c.identity?.ca;
  return {
    ...c,
    identity: {
      ...(files ? { files: { keyFile: at(files.keyFile), certChainFile: at(files.certChainFile), bundleFile: at(files.bundleFile) } } : {}),
      ...(ca ? { ca: { ...ca, bundleFile: at(ca.bundleFile) } } : {}),
    },
    inbound: c.inbound.map((p) => (p.tls === undefined ? p : { ...p, tls: { certFile: at(p.tls.certFile), keyFile: at(p.tls.keyFile) } })),
    policyPaths: c.policyPaths.map(at),
  };
}

export async function runProxy(opts: { config: string }): Promise<number> {
  const loaded = loadProxyConfig(opts.config);
  if ('diagnostics' in loaded) {
    for (const d of loaded.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return EXIT_USAGE;
  }
  if (loaded.config.identity === undefined) {
    process.stderr.write(`${opts.config}: identity: required here: "files" (key, chain, bundle) or "ca" (address, bundle, bootstrap token)\n`);
    return EXIT_USAGE;
  }
  const config = withPathsFrom(dirname(resolve(opts.config)), loaded.config);
  const { signalled, release } = untilSignal();

  let agent: WorkloadAgent | undefined;
  let proxy: WorkloadProxy;
  try {
    const ca = config.identity?.ca;
    if (ca !== undefined) {
      // Loaded only here: the agent brings gRPC and the X.509 library, which a
      // proxy with certificate files never needs (tens of MiB of RSS).
      const { WorkloadAgent } = await import('../identity/agent/index.ts');
      const w = config.workload;
      agent = new WorkloadAgent({
        spiffeId: `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`,
        caAddress: ca.address,
        trustBundlePem: readFileSync(ca.bundleFile, 'utf8'),
        bootstrapToken: ca.bootstrapToken,
        metadata: { WorkloadName: w.name },
        log: (level, event, fields) => {
          if (level !== 'debug') logLine(level, event, { component: 'agent', ...fields });
        },
      });
      agent.on('error', () => {});
      await agent.start();
    }
    proxy = await WorkloadProxy.start(config, agent !== undefined ? { material: agent } : {});
  } catch (err) {
    release();
    await agent?.stop();
    if (err instanceof ProxyConfigError) {
      for (const d of err.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    } else {
      process.stderr.write(`meshward: proxy could not start: ${(err as Error).message}\n`);
    }
    return EXIT_USAGE;
  }
  const st = proxy.status();
  logLine('info', 'proxy-started', { workload: st.workload, spiffeId: st.spiffeId, adminPort: st.adminPort, inbound: st.inbound, runningFrom: RUNNING_FROM });
  const stopTrim = trimMemoryWhenIdle();
  const sig = await signalled;
  stopTrim();
  logLine('info', 'proxy-stopping', { signal: sig });
  await proxy.stop();
  await agent?.stop();
  return EXIT_OK;
}
