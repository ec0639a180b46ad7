// The inbound HTTP/1.1 fast lane: one downstream connection served without
// node's per-request objects. Each request whose head (and body, if any)
// has arrived whole and is in the strict subset of ../http1/head.ts is
// decided by the same engine call as the full path (./http.ts), answered
// or forwarded to the app over a pooled keep-alive connection, its response
// passed back byte for byte. The first request that is not (a head still
// arriving, a chunked body, an upgrade, a limit to enforce) hands the
// connection, with the bytes already read, to node's HTTP/1.1 server for
// good, where every rule and limit of the full path applies. Both paths
// record the same metric and access log entry (recordInbound), and, when
// the proxy traces, the same SERVER span with the same trace headers sent
// on to the app.

import { performance } from 'node:perf_hooks';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { InboundPort } from '../../api/proxy-config.ts';
import type { Decision } from '../../policy/decision.ts';
import type { DestinationWorkload } from '../../policy/facts.ts';
import { resolveProxyLimits } from '../../api/proxy-limits.ts';
import { hopByHop, isHeaderValue, type RequestHead } from '../http1/head.ts';
import { DownstreamLane, type LaneLimits } from '../http1/lane.ts';
import { isTraceHeader, traceHeaders, traceLines, untracedFields, type HeaderFields } from '../http1/trace.ts';
import { SharedReads } from '../http1/shared-reads.ts';
import { sendAgain, type H1Upstream } from '../http1/upstream.ts';
import { endServerSpan, startServerSpan, type InboundFacts } from '../tracing/hop.ts';
import type { Span } from '../tracing/tracer.ts';
import { destinationOf, inboundPort, type ProxySnapshot } from '../snapshot.ts';
import type { ConnectionInfo, InboundContext } from './context.ts';
import { forwardedTarget, isPeerClaim, recordInbound, sourceWorkloadOf, UPSTREAM_CONNECT_ERROR, xfccOf } from './http.ts';
import { PEER_WORKLOAD } from '../peer-workload.ts';

const XFCC = 'x-forwarded-client-cert';

type Mutations = NonNullable<Decision['trace']['headerMutations']>;

/** What the listener lends the lane: its context, and the way to node's server. */
export interface LaneHost {
  readonly ctx: InboundContext;
  /** The listener's configured port. */
  readonly port: number;
  /** Node's HTTP/1.1 server takes the connection, `pending` first. */
  handOff(socket: Duplex, pending: Buffer | null): void;
}

function isTarget(target: string): boolean {
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return target.length > 0;
}

/**
 * `out` with the caller's header lines the app is sent, each CRLF-prefixed,
 * the engine's header mutations applied; never a peer claim (isPeerClaim).
 */
function withFields(out: string, fields: HeaderFields, mutations: Mutations): string {
  for (let i = 0; i < fields.names.length; i++) {
    const name = fields.names[i]!;
    if (isPeerClaim(name) || hopByHop(name)) continue;
    if (mutations.length > 0 && mutations.some((m) => m.name.toLowerCase() === name)) continue;
    out += `\r\n${name}: ${fields.values[i]!}`;
  }
  for (const m of mutations) {
    // A claim copied into a header must be a valid header value, or it is not sent.
    if (m.op === 'set' && isHeaderValue(m.value)) out += `\r\n${m.name.toLowerCase()}: ${m.value}`;
  }
  return out;
}

/**
 * withFields, the trace headers being the ones `span` writes as the app's
 * parent instead of the caller's. As on the full path, a mutation of one of
 * them applies first and the span writes over it.
 */
function withTracedFields(out: string, head: RequestHead, mutations: Mutations, span: Span): string {
  const trace = traceHeaders(head);
  let others = mutations;
  if (mutations.length > 0) {
    const kept: Mutations[number][] = [];
    for (const m of mutations) {
      const name = m.name.toLowerCase();
      if (!isTraceHeader(name)) kept.push(m);
      else if (m.op === 'remove') delete trace[name];
      else trace[name] = m.value;
    }
    others = kept;
  }
  span.inject(trace);
  return withFields(out, untracedFields(head), others) + traceLines(trace);
}

/** What the SERVER span is ended with, as the full path reads it from node's request. */
function inboundFacts(info: ConnectionInfo, head: RequestHead): InboundFacts {
  return {
    method: head.method,
    host: head.host,
    path: head.target,
    port: info.port,
    httpVersion: '1.1',
    principal: info.principal,
    remoteIp: info.remoteIp,
    userAgent: head.userAgent,
  };
}

export class InboundFastLane extends DownstreamLane {
  /** The connection's facts with the config in force at its last request (a new object when that changes). */
  #info: ConnectionInfo;
  readonly #host: LaneHost;
  #port: InboundPort | undefined;
  #destination: DestinationWorkload | undefined;
  #destinationFor: ConnectionInfo | undefined;
  #limitsFor: ProxySnapshot | undefined;
  #limits: LaneLimits | null = null;
  /** The x-forwarded-client-cert line for the app: the same for every request of the connection. */
  #xfccLine: string | undefined;

  /** `reads`: the socket reads into the shared buffer (../http1/secured-reads.ts); null: 'data' events. */
  constructor(socket: Duplex, info: ConnectionInfo, host: LaneHost, reads: SharedReads | null = null) {
    super(socket, host.handOff, reads);
    this.#info = info;
    this.#host = host;
    this.begin();
  }

  protected limits(): LaneLimits | null {
    const snap = this.#host.ctx.snapshot();
    // The same for every request under one config: looked up once per config.
    if (snap !== this.#limitsFor) {
      this.#limitsFor = snap;
      this.#port = inboundPort(snap, this.#host.port);
      const l = resolveProxyLimits(snap.config.limits);
      this.#limits = this.#port === undefined ? null : { maxHeadBytes: l.maxRequestHeadersBytes, maxHeaders: l.maxRequestHeadersCount, idleMs: l.idleTimeoutMs };
    }
    return this.#limits;
  }

  protected idleTimedOut(): void {
    this.#host.ctx.metrics.limits.exceeded('idle_timeout');
  }

  protected serve(head: RequestHead, body: Buffer | null): void {
    // Each request decides with the policy in force when it began.
    const snap = this.#host.ctx.snapshot();
    if (snap !== this.#info.snapshot) this.#info = { ...this.#info, snapshot: snap };
    const info = this.#info;
    this.#serve(info, this.#port!, head, body);
  }

  #serve(info: ConnectionInfo, port: InboundPort, head: RequestHead, body: Buffer | null): void {
    const ctx = this.#host.ctx;
    const started = performance.now();
    // As on the full path, the span starts before anything is decided.
    // Without a tracer, nothing is built for it: only null checks, here,
    // where the app's request head is written and where the request is recorded.
    const tracer = ctx.tracer();
    const span = tracer === null ? null : startServerSpan(tracer, traceHeaders(head), info.port);
    const snap = info.snapshot;
    const { method, target: path, host } = head;
    // The same for every request of a connection under one config: built once.
    if (this.#destinationFor !== info) {
      this.#destination = destinationOf(snap, info.port, info.localIp);
      this.#destinationFor = info;
    }
    const destination = this.#destination!;
    const { mode } = snap.engine.peerMode(destination);
    if (!info.mtls && !info.ingress && mode === 'STRICT') {
      // Probes rewritten by Istio reach the app in plaintext even under STRICT, and only on the exact paths configured.
      if ((port.healthPaths ?? []).includes(path)) {
        this.#forward(info, port, head, body, path, null, 'unknown', started, true, false, span);
        return;
      }
      this.socket.destroy();
      this.#record(info, port, 'unknown', started, head, 'reset', null, false, span);
      return;
    }
    // What the engine reads, as on the full path: every header but Host and
    // x-meshward-peer-workload, repeated ones joined. The caller's workload
    // is picked up on the way, for the metrics; sent twice, it names no one.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    let peer: string | undefined;
    for (let i = 0; i < head.names.length; i++) {
      const name = head.names[i]!;
      if (name === PEER_WORKLOAD) {
        peer = peer === undefined ? head.values[i]! : '';
        continue;
      }
      const seen = headers[name];
      headers[name] = seen === undefined ? head.values[i]! : `${seen},${head.values[i]!}`;
    }
    const source = sourceWorkloadOf(info, peer);
    const decision = snap.engine.decide({
      destination,
      connection: { mtls: info.mtls, principal: info.principal, clientNamespace: null, ip: info.remoteIp, ingress: info.ingress },
      request: { protocol: 'http', method, path, host, headers },
    });
    const proceed = (d: Decision): void => {
      if (this.gone) {
        this.#record(info, port, source, started, head, 'reset', d, false, span);
        return;
      }
      if (d.decision === 'DENY') {
        const status = d.status === 200 ? 403 : d.status;
        if (status === 'reset') this.socket.destroy();
        else if (status === 401) this.answer(401, 'Jwt verification fails', `\r\nwww-authenticate: Bearer realm="http://${host}${path}"`);
        else if (status === 400) this.answer(400, 'Bad Request', '');
        else this.answer(403, 'RBAC: access denied', '');
        this.#record(info, port, source, started, head, status, d, false, span);
        this.done();
        return;
      }
      this.#forward(info, port, head, body, forwardedTarget(path, d.trace.normalizedPath), d, source, started, false, false, span);
    };
    if (decision instanceof Promise) {
      decision.then(proceed, () => {
        this.answer(403, 'RBAC: access denied', '');
        this.#record(info, port, source, started, head, 403, null, false, span);
        this.done();
      });
    } else proceed(decision);
  }

  #forward(
    info: ConnectionInfo,
    port: InboundPort,
    head: RequestHead,
    body: Buffer | null,
    target: string,
    d: Decision | null,
    source: string,
    started: number,
    bypass: boolean,
    retried: boolean,
    span: Span | null,
  ): void {
    const ctx = this.#host.ctx;
    const finish = (code: number | 'reset'): void => this.#record(info, port, source, started, head, code, d, bypass, span);
    // The app gets the path the policy checked, or nothing: never the raw one in its place.
    if (!isTarget(target)) {
      this.answer(400, 'Bad Request');
      finish(400);
      this.done();
      return;
    }
    const mutations = d?.trace.headerMutations ?? [];
    // Connection: keep-alive said outright, as node's agent does on the full path.
    const line = `${head.method} ${target} HTTP/1.1\r\nhost: ${head.host}\r\nconnection: keep-alive`;
    // The app sees the proxy's span as its parent.
    let out = span === null ? withFields(line, head, mutations) : withTracedFields(line, head, mutations, span);
    if (this.#xfccLine === undefined) {
      const xfcc = xfccOf(ctx, info);
      this.#xfccLine = xfcc === null ? '' : `\r\n${XFCC}: ${xfcc}`;
    }
    out += `${this.#xfccLine}\r\n\r\n`;

    const key = String(port.appPort);
    const pool = ctx.appPool;
    const send = (up: H1Upstream): void => {
      if (this.gone) {
        pool.release(key, up, true, -1);
        finish('reset');
        return;
      }
      this.relay(up, out, body, head.method === 'HEAD', (end) => {
        if (end.kind === 'complete') {
          pool.release(key, up, end.reusable, end.keepAliveMs);
          finish(end.status);
          this.done();
          return;
        }
        if (end.kind === 'aborted') {
          finish(end.headSent ? end.status : 'reset');
          return;
        }
        if (end.headSent) {
          this.socket.destroy();
          finish(end.status);
          return;
        }
        if (!retried && sendAgain(end, up, head.method)) {
          this.#forward(info, port, head, body, target, d, source, started, bypass, true, span);
          return;
        }
        this.#unreachable(span, finish);
      });
    };
    // A retry takes a new connection: the pooled ones may be as stale as the last.
    const pooled = retried ? null : pool.take(key);
    if (pooled !== null) {
      send(pooled);
      return;
    }
    const reads = new SharedReads();
    const socket = net.connect({ host: '127.0.0.1', port: port.appPort, onread: reads.onread });
    socket.setNoDelay(true);
    const refused = (): void => {
      if (this.gone) {
        finish('reset');
        return;
      }
      this.#unreachable(span, finish);
    };
    socket.once('error', refused);
    socket.once('connect', () => {
      socket.off('error', refused);
      send(pool.adopt(socket, reads));
    });
  }

  /** The app could not be reached: Envoy's 503, and the span flagged UF as the full path flags it. */
  #unreachable(span: Span | null, finish: (code: number) => void): void {
    if (span !== null) span.responseFlags = 'UF';
    this.answer(503, UPSTREAM_CONNECT_ERROR, '');
    finish(503);
    this.done();
  }

  /**
   * The request's metric and access log entry, however it ended, and the
   * end of its span when traced, with the same facts and status as the full
   * path's (`reset`: no response).
   */
  #record(
    info: ConnectionInfo,
    port: InboundPort,
    source: string,
    started: number,
    head: RequestHead,
    code: number | 'reset',
    d: Decision | null,
    bypass: boolean,
    span: Span | null,
  ): void {
    const ctx = this.#host.ctx;
    if (span === null) {
      recordInbound(ctx, info, port, source, started, head.method, head.target, code, d, bypass);
      return;
    }
    recordInbound(ctx, info, port, source, started, head.method, head.target, code, d, bypass, undefined, span.traceId);
    endServerSpan(span, code, inboundFacts(info, head), d, bypass);
  }
}
