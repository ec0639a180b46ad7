// What every shop app shares: an HTTP server on 127.0.0.1:$PORT with one log
// line per request, a request counter served as Prometheus text on
// $APP_PORT_9090, the caller's identity read from x-forwarded-client-cert,
// plain-HTTP calls to other services, and a clean stop on SIGTERM.
//
// The apps know nothing of the mesh: they listen on loopback, call the URLs
// in their environment, and let their proxy add mTLS and policy.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface Reply {
  readonly status: number;
  readonly body: unknown;
}

export type Handler = (req: IncomingMessage, body: unknown) => Reply | Promise<Reply>;

/** A downstream answer, whatever its status: `body` is parsed JSON when it is JSON, text otherwise. */
export interface Answer {
  readonly ok: boolean;
  readonly status: number;
  readonly body: unknown;
}

const counts = new Map<string, number>();

/**
 * Serves `handler` on 127.0.0.1:$PORT and, when $APP_PORT_9090 is set, the
 * request counter on 127.0.0.1:$APP_PORT_9090/metrics. GET /healthz answers
 * `ok` on the main port. SIGTERM closes both servers and exits 0.
 */
export function serve(name: string, handler: Handler): void {
  const servers = [listen(name, requiredPort('PORT'), async (req) => {
    if (req.method === 'GET' && req.url === '/healthz') return { status: 200, body: 'ok' };
    return handler(req, await readBody(req));
  })];
  const metricsPort = process.env['APP_PORT_9090'];
  if (metricsPort !== undefined) {
    servers.push(listen(name, Number(metricsPort), (req) =>
      req.method === 'GET' && req.url === '/metrics' ? { status: 200, body: metrics(name) } : { status: 404, body: { error: 'not found' } },
    ));
  }
  process.once('SIGTERM', () => {
    log(`${name} stopping`);
    for (const s of servers) {
      s.close();
      s.closeAllConnections();
    }
    process.exit(0);
  });
}

/** The caller's SPIFFE ID from the proxy's x-forwarded-client-cert, or null (plaintext, or no proxy). */
export function callerOf(req: IncomingMessage): string | null {
  const xfcc = req.headers['x-forwarded-client-cert'];
  if (typeof xfcc !== 'string') return null;
  // Elements are comma-separated, the last one added by the nearest proxy.
  const last = xfcc.split(',').at(-1) ?? '';
  const uri = last.split(';').find((kv) => kv.trim().toLowerCase().startsWith('uri='));
  return uri === undefined ? null : uri.trim().slice('uri='.length).replace(/^"|"$/g, '');
}

/** Calls `${base}${path}` with an optional JSON body; never throws (a failed connection is status 0). */
export async function call(base: string, method: string, path: string, body?: unknown): Promise<Answer> {
  try {
    const res = await fetch(new URL(path, base), {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { ok: res.ok, status: res.status, body: parse(text) };
  } catch (err) {
    return { ok: false, status: 0, body: `cannot reach ${base}: ${(err as Error).message}` };
  }
}

/** The URL of an upstream the mesh file declares, e.g. upstream('PAYMENT_SERVICE'). */
export function upstream(name: string): string {
  const url = process.env[`${name}_URL`];
  if (url === undefined) throw new Error(`${name}_URL is not set: declare the upstream in the mesh file`);
  return url;
}

export function log(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

function listen(name: string, port: number, handler: (req: IncomingMessage) => Reply | Promise<Reply>): Server {
  const server = createServer((req, res) => {
    Promise.resolve()
      .then(() => handler(req))
      .catch((err: unknown) => ({ status: 500, body: { error: (err as Error).message } }))
      .then((reply) => {
        send(res, reply);
        const key = `method="${req.method ?? ''}",code="${reply.status}"`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        log(`${name} ${req.method} ${req.url} ${reply.status} caller=${callerOf(req) ?? '-'}`);
      });
  });
  server.listen(port, '127.0.0.1', () => log(`${name} listening on 127.0.0.1:${port}`));
  return server;
}

function send(res: ServerResponse, reply: Reply): void {
  const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
  const type = typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
  res.writeHead(reply.status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function metrics(name: string): string {
  const lines = [
    '# HELP shop_http_requests_total Requests served by the app.',
    '# TYPE shop_http_requests_total counter',
    ...[...counts].map(([labels, n]) => `shop_http_requests_total{app="${name}",${labels}} ${n}`),
    '# HELP shop_up 1 while the app is serving.',
    '# TYPE shop_up gauge',
    `shop_up{app="${name}"} 1`,
  ];
  return `${lines.join('\n')}\n`;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return chunks.length === 0 ? null : parse(Buffer.concat(chunks).toString('utf8'));
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function requiredPort(name: string): number {
  const port = Number(process.env[name]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`${name} must be a port number`);
  return port;
}
