// Talking to listeners on 127.0.0.1 the way an app behind a proxy does: one
// HTTP/1.1 request at a time, on a fresh connection unless the test brings
// its own agent, and a free port for configs that must name one up front.

import * as http from 'node:http';
import { once } from 'node:events';
import * as net from 'node:net';

/** What most tests look at, and compare whole with deepEqual. */
export interface Reply {
  readonly status: number;
  readonly body: string;
}

/** A reply with the response's headers and trailers as well. */
export interface FullReply extends Reply {
  readonly headers: http.IncomingHttpHeaders;
  readonly trailers: NodeJS.Dict<string>;
}

export interface RequestOptions {
  /** Default GET. */
  method?: string;
  /** Sent as given; without `host`, node sends `127.0.0.1:<port>`. */
  headers?: http.OutgoingHttpHeaders;
  /** Written, not passed to end(), so it goes chunked (no content-length). */
  body?: string;
  /** Request trailers, after the body (needs a chunked request). */
  trailers?: Record<string, string>;
  /** Default false: a fresh connection, closed after the response. */
  agent?: http.Agent | false;
  /** Destroys the request if no socket activity for this long. Default none. */
  timeoutMs?: number;
}

/**
 * One HTTP/1.1 request to 127.0.0.1:`port`, its body read as UTF-8. `path` may
 * be an absolute URL (HTTP proxy form). Rejects on a connection or response
 * error; an error status resolves.
 *
 * @example
 *   const reply = await request(port, '/api/v1/payments/1', { headers: { te: 'trailers' } });
 *   assert.equal(reply.trailers['x-checksum'], 'len=0');
 */
export function request(port: number, path: string, o: RequestOptions = {}): Promise<FullReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: o.headers, agent: o.agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, trailers: res.trailers }));
      res.on('error', reject);
    });
    const timeoutMs = o.timeoutMs;
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response activity in ${timeoutMs} ms`)));
    req.on('error', reject);
    if (o.body !== undefined) req.write(o.body);
    if (o.trailers !== undefined) req.addTrailers(o.trailers);
    req.end();
  });
}

/** {@link request}, reduced to status and body. */
export async function get(port: number, path: string, o: RequestOptions = {}): Promise<Reply> {
  const { status, body } = await request(port, path, o);
  return { status, body };
}

/** A port on 127.0.0.1 that was free a moment ago, for configs that name their ports. */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
