// The admin API, on loopback only: readiness, liveness, Prometheus metrics,
// the config in force (secrets redacted), the current certificate, and the
// process's memory (`GET /memory`; `POST /memory/trim` gives idle memory
// back now instead of after the idle minutes ../../lib/memory-trim.ts waits).

import type { Server } from 'node:http';
import { http } from '../../lib/node-http.ts';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig } from '../../api/proxy-config.ts';
import type { Registry } from '../../lib/prometheus.ts';
import { memoryReport, trimMemory } from '../../lib/memory-trim.ts';

export interface AdminSource {
  ready(): boolean;
  config(): ProxyConfig;
  certs(): unknown;
  /** The proxy's status (ports, mTLS mode per port, upstream ports, certificate), for `meshward status`. */
  status?(): unknown;
  readonly registry: Registry;
}

/** The config with the key file paths and the bootstrap token replaced. */
export function redactConfig(config: ProxyConfig): unknown {
  const identity = config.identity;
  return {
    ...config,
    inbound: config.inbound.map((p) => (p.tls === undefined ? p : { ...p, tls: { ...p.tls, keyFile: '[redacted]' } })),
    identity: identity === undefined ? undefined : {
      ...(identity.files ? { files: { ...identity.files, keyFile: '[redacted]' } } : {}),
      ...(identity.ca ? { ca: { ...identity.ca, bootstrapToken: '[redacted]' } } : {}),
    },
  };
}

export async function startAdmin(bindPort: number, source: AdminSource): Promise<Server> {
  let lastTrim = 0;
  const server = http.createServer((req, res) => {
    const json = (status: number, body: unknown): void => {
      const text = `${JSON.stringify(body, null, 2)}\n`;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(text);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/memory/trim') {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      // Loopback is not enough for a POST: a web page the operator has open
      // can send one too, and browsers say so in Origin; tools do not send it.
      if (req.headers.origin !== undefined) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('admin POSTs from a web page are refused\n');
        return;
      }
      // Each trim pauses the process for tens of milliseconds: at most one a second.
      const now = Date.now();
      if (now - lastTrim < 1000) {
        res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '1' }).end('one trim a second\n');
        return;
      }
      lastTrim = now;
      const before = memoryReport();
      const trimmed = trimMemory();
      json(200, { trimmed, before, after: memoryReport() });
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    switch (path) {
      case '/ready':
        res.writeHead(source.ready() ? 200 : 503, { 'content-type': 'text/plain' }).end(source.ready() ? 'LIVE\n' : 'NOT READY\n');
        return;
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('OK\n');
        return;
      case '/stats/prometheus':
        source.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': source.registry.contentType }).end(text),
          () => res.writeHead(500).end(),
        );
        return;
      case '/config_dump':
        json(200, redactConfig(source.config()));
        return;
      case '/memory':
        json(200, memoryReport());
        return;
      case '/certs':
        json(200, source.certs());
        return;
      case '/status':
        if (source.status !== undefined) {
          json(200, source.status());
          return;
        }
        break;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(bindPort, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}
