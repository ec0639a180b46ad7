// The CA server's admin endpoint: plain HTTP on a loopback address, for the
// operator's CLI and for whatever launches workloads on this host.
//
//   GET  /status            the CA's status and the server's (rotation, agents)
//   GET  /metrics           the registry in Prometheus text format
//   POST /rotate-root       start, resume or join the root rotation; 202 at once
//   POST /bootstrap-token   {"spiffeId": "..."} → a single-use token for it
//
// Loopback is not an identity: every local user can reach the port. So the
// POST endpoints, which change the roots or hand out a way to get a
// certificate, want the bearer token the server writes into its 0600
// server.json: reaching them takes the same file access as reading the CA's
// keys. A Host header naming anything but this listener is refused, so a web
// page that rebinds its name to 127.0.0.1 cannot read /status either.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http } from '../../lib/node-http.ts';
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { decodeJwt } from 'jose';
import type { Registry } from '../../lib/prometheus.ts';
import type { CertificateAuthority, CaStatus } from '../../identity/ca/index.ts';
import { CaError } from '../../identity/ca/index.ts';
import { parseSpiffeId } from '../../identity/spiffe.ts';
import type { CaServer, CaServerLogEntry, CaServerStatus } from './server.ts';
import type { RotationStatus, RotationStep } from './root-rotation.ts';

export interface CaAdminOptions {
  server: CaServer;
  ca: CertificateAuthority;
  /** Served at /metrics: pass the registry the CA and the server count on. */
  registry: Registry;
  /** A loopback address; default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** The bearer token the POST endpoints require. */
  token: string;
  log?: (entry: CaServerLogEntry) => void;
  /** More of the process's state for GET /status (the control plane's), under `controlPlane`. */
  extraStatus?: () => unknown;
}

export interface CaAdminStatus {
  ca: CaStatus;
  server: CaServerStatus;
  controlPlane?: unknown;
}

/** What POST /rotate-root answers (202). */
export interface RotateOutcome {
  /** `started` a new rotation, `resumed` one the CA's state recorded, or `joined` the one running. */
  action: 'started' | 'resumed' | 'joined';
  phase: RotationStep;
  rotation: RotationStatus;
}

export interface BootstrapTokenGrant {
  spiffeId: string;
  token: string;
  expiresAt: string;
  /** Where the workload's agent reaches the CA server, and the roots it checks it against. */
  caAddress: string;
  trustBundlePem: string;
}

/** Raised by rotateRoot() when the rotation stops before its first step (e.g. a plug-in CA). */
export class RotationRefused extends Error {
  override readonly name = 'RotationRefused';
}

const MAX_BODY_BYTES = 4096;
/** How long POST /rotate-root waits for the rotation to reach its first step (adding a root takes a key generation). */
const FIRST_STEP_WAIT_MS = 10_000;
const RUNNING: readonly RotationStep[] = ['distributing', 'reissuing', 'retiring'];

class HttpProblem extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function isLoopbackHost(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return new URL(`http://[${host}]/`).hostname === '[::1]';
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class CaAdmin {
  readonly #server: CaServer;
  readonly #ca: CertificateAuthority;
  readonly #registry: Registry;
  readonly #token: Buffer;
  readonly #log: (entry: CaServerLogEntry) => void;
  readonly #http: Server;
  /** Stops a background rotation from waiting when the server shuts down; a later start resumes it. */
  readonly #abort = new AbortController();
  #address = '';
  #allowedHosts = new Set<string>();

  readonly #extraStatus: (() => unknown) | undefined;
  private constructor(opts: CaAdminOptions) {
    this.#server = opts.server;
    this.#ca = opts.ca;
    this.#registry = opts.registry;
    this.#token = Buffer.from(opts.token);
    this.#extraStatus = opts.extraStatus;
    this.#log = opts.log ?? (() => {});
    this.#http = http.createServer((req, res) => void this.#handle(req, res));
  }

  static async start(opts: CaAdminOptions): Promise<CaAdmin> {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopbackHost(host)) throw new Error(`admin address ${host} is not a loopback address`);
    if (opts.token.length < 32) throw new Error('admin token must be at least 32 characters');
    const admin = new CaAdmin(opts);
    await new Promise<void>((resolve, reject) => {
      admin.#http.once('error', reject);
      admin.#http.listen(opts.port ?? 0, host, () => {
        admin.#http.off('error', reject);
        resolve();
      });
    });
    const port = (admin.#http.address() as { port: number }).port;
    const named = isIP(host) === 6 ? `[${host}]` : host;
    admin.#address = `${named}:${port}`;
    admin.#allowedHosts = new Set([admin.#address, `localhost:${port}`]);
    return admin;
  }

  /** `host:port` the admin endpoint listens on. */
  get address(): string {
    return this.#address;
  }

  /**
   * Starts a root rotation, resumes one the CA's state records, or joins the
   * one running, and lets it go on in the background. Resolves once it has
   * entered a step (or finished); rejects with RotationRefused if it stopped
   * before that.
   */
  async rotateRoot(): Promise<RotateOutcome> {
    const before = this.#server.status().rotation.step;
    const action: RotateOutcome['action'] = RUNNING.includes(before) ? 'joined' : this.#ca.rotationPhase === 'none' ? 'started' : 'resumed';
    let failure: Error | undefined;
    let settled = false;
    this.#server
      .rotateRoot({ signal: this.#abort.signal })
      .catch((err: unknown) => {
        // The rotation logs its own stop (root-rotation-stopped).
        failure = err as Error;
      })
      .finally(() => (settled = true));
    const deadline = Date.now() + FIRST_STEP_WAIT_MS;
    while (!settled && this.#server.status().rotation.history.length === 0 && Date.now() < deadline) await sleep(10);
    if (failure) throw new RotationRefused(failure instanceof CaError ? `${failure.detail} (${failure.reason})` : failure.message);
    const rotation = this.#server.status().rotation;
    return { action, phase: rotation.step, rotation };
  }

  /** Stops any rotation from waiting, then closes the listener and its connections. */
  async stop(): Promise<void> {
    this.#abort.abort(new Error('the CA server is stopping'));
    await new Promise<void>((resolve) => {
      this.#http.close(() => resolve());
      this.#http.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (!this.#allowedHosts.has(req.headers.host ?? '')) {
        throw new HttpProblem(403, 'host-not-allowed', `Host must name this listener (${this.#address})`);
      }
      const route = `${req.method} ${path}`;
      switch (route) {
        case 'GET /status':
          return send(res, 200, this.status());
        case 'GET /metrics': {
          const text = await this.#registry.metrics();
          res.writeHead(200, { 'content-type': this.#registry.contentType, 'cache-control': 'no-store' });
          res.end(text);
          return;
        }
        case 'POST /rotate-root':
          this.#authorize(req, path);
          await readBody(req);
          return send(res, 202, await this.#rotate(req));
        case 'POST /bootstrap-token':
          this.#authorize(req, path);
          return send(res, 200, await this.#bootstrapToken(req));
      }
      const allowed = ({ '/status': 'GET', '/metrics': 'GET', '/rotate-root': 'POST', '/bootstrap-token': 'POST' } as Record<string, string>)[path!];
      if (allowed) {
        res.setHeader('allow', allowed);
        throw new HttpProblem(405, 'method-not-allowed', `${path} takes ${allowed}`);
      }
      throw new HttpProblem(404, 'not-found', `no endpoint ${path}`);
    } catch (err) {
      if (err instanceof HttpProblem) {
        if (err.status === 401 || err.status === 403) {
          this.#log({ level: 'warn', event: 'admin-refused', fields: { method: req.method, path, peer: req.socket.remoteAddress, reason: err.code } });
        }
        if (err.status === 401) res.setHeader('www-authenticate', 'Bearer');
        return send(res, err.status, { error: { code: err.code, message: err.message } });
      }
      this.#log({ level: 'error', event: 'admin-error', fields: { method: req.method, path, error: (err as Error).message } });
      return send(res, 500, { error: { code: 'internal', message: 'internal error' } });
    }
  }

  status(): CaAdminStatus {
    const extra = this.#extraStatus?.();
    return { ca: this.#ca.status(), server: this.#server.status(), ...(extra !== undefined ? { controlPlane: extra } : {}) };
  }

  #authorize(req: IncomingMessage, path: string | undefined): void {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const given = Buffer.from(m?.[1] ?? '');
    if (given.length !== this.#token.length || !timingSafeEqual(given, this.#token)) {
      throw new HttpProblem(401, 'unauthorized', `${path} needs the bearer token from the server's server.json`);
    }
  }

  async #rotate(req: IncomingMessage): Promise<RotateOutcome> {
    try {
      const outcome = await this.rotateRoot();
      this.#log({ level: 'info', event: 'admin-rotate-root', fields: { peer: req.socket.remoteAddress, action: outcome.action, phase: outcome.phase } });
      return outcome;
    } catch (err) {
      if (err instanceof RotationRefused) throw new HttpProblem(409, 'rotation-refused', err.message);
      throw err;
    }
  }

  async #bootstrapToken(req: IncomingMessage): Promise<BootstrapTokenGrant> {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      throw new HttpProblem(415, 'unsupported-media-type', 'send {"spiffeId": "..."} as application/json');
    }
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      if (err instanceof HttpProblem) throw err;
      throw new HttpProblem(400, 'bad-request', 'body is not JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpProblem(400, 'bad-request', 'body must be {"spiffeId": "..."}');
    const extra = Object.keys(body).filter((k) => k !== 'spiffeId');
    if (extra.length > 0) throw new HttpProblem(400, 'bad-request', `unknown field ${extra[0]}; the body is {"spiffeId": "..."}`);
    const raw = (body as { spiffeId?: unknown }).spiffeId;
    if (typeof raw !== 'string') throw new HttpProblem(400, 'bad-request', 'spiffeId must be a string');
    const id = parseSpiffeId(raw);
    if ('error' in id) throw new HttpProblem(400, 'bad-spiffe-id', `spiffeId: ${id.error}`);
    if (id.trustDomain !== this.#ca.trustDomain) {
      throw new HttpProblem(400, 'bad-spiffe-id', `spiffeId: ${id.uri} is not in trust domain ${this.#ca.trustDomain}`);
    }
    if (id.path === '') throw new HttpProblem(400, 'bad-spiffe-id', `spiffeId: ${id.uri} names a trust domain, not a workload`);
    // With a certificate for the control plane's own identity, a workload
    // could pose as the CA server to every agent.
    if (id.uri === this.#server.identity) throw new HttpProblem(403, 'reserved-identity', `${id.uri} is the CA server's identity, not a workload's`);
    const token = await this.#server.mintBootstrapToken(id.uri);
    const claims = decodeJwt(token);
    const expiresAt = new Date((claims.exp ?? 0) * 1000).toISOString();
    this.#log({ level: 'info', event: 'admin-bootstrap-token', fields: { peer: req.socket.remoteAddress, spiffeId: id.uri, jti: claims.jti, expiresAt } });
    return { spiffeId: id.uri, token, expiresAt, caAddress: this.#server.address, trustBundlePem: this.#server.trustBundlePem() };
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, 'body-too-large', `the body is limited to ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
