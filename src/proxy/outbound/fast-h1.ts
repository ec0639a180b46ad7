// The outbound HTTP/1.1 fast lane: the app's connection to an upstream's
// local port, served without node's per-request objects. Each whole request
// in the strict subset (../http1/head.ts) goes to a mesh endpoint over a
// kept-alive HTTP/1.1 mTLS connection (secure naming checked on every new
// one, as on every dial), and the response comes back byte for byte. What
// the lane does not take — a request that is not whole or not simple, an
// upstream that is not an ISTIO_MUTUAL mesh peer or whose DestinationRule
// sets h2UpgradePolicy UPGRADE — goes with its connection to node's
// HTTP/1.1 server and ./http-forward.ts, which carries it as HTTP/2.
// Failures answer as that path does (Envoy's 503 words, the same response
// flags and metrics), and a proxy that traces opens the same CLIENT span
// and sends the upstream the same trace headers.

import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { UpstreamEndpoint } from '../../api/proxy-config.ts';
import { hopByHop, type RequestHead } from '../http1/head.ts';
import { DownstreamLane, type LaneLimits } from '../http1/lane.ts';
import type { SharedReads } from '../http1/shared-reads.ts';
import { traceHeaders, traceLines, untracedFields, type HeaderFields } from '../http1/trace.ts';
import { endClientSpan, startClientSpan, type OutboundFacts } from '../tracing/hop.ts';
import type { Span } from '../tracing/tracer.ts';
import { sendAgain, type ExchangeEnd, type H1Upstream } from '../http1/upstream.ts';
import { UpstreamError } from './dial.ts';
import { countFailure, failureBody, failureOf, FLAGS, peerWorkloadFor, type ForwardContext } from './http-forward.ts';
import { connectionLabels } from './metrics.ts';
import { PEER_WORKLOAD } from '../peer-workload.ts';
import type { Route } from './route.ts';
import type { ConnectionPool } from './pool.ts';

/** The app's side has no configured limits; node's own defaults, as the full path has. */
const APP_SIDE: LaneLimits = Object.freeze({ maxHeadBytes: 16 * 1024, maxHeaders: 100, idleMs: 5_000 });

type Counter = (code: number, flags: string, ms: number) => void;

const counters = new WeakMap<H1Upstream, Counter>();

/** `out` with the app's header lines, each CRLF-prefixed. The app's own x-meshward-peer-workload is dropped: only this proxy says who is calling. */
function withFields(out: string, fields: HeaderFields): string {
  for (let i = 0; i < fields.names.length; i++) {
    const name = fields.names[i]!;
    if (!hopByHop(name) && name !== PEER_WORKLOAD) out += `\r\n${name}: ${fields.values[i]!}`;
  }
  return out;
}

/** withFields, the trace headers being the ones `span` writes as the upstream's parent instead of the app's. */
function withTracedFields(out: string, head: RequestHead, span: Span): string {
  const trace = traceHeaders(head);
  span.inject(trace);
  return withFields(out, untracedFields(head)) + traceLines(trace);
}

/** What the CLIENT span is ended with, as the full path reads it from node's request. */
function outboundFacts(head: RequestHead, route: Route, endpoint: UpstreamEndpoint | null, flags: string): OutboundFacts {
  return {
    method: head.method,
    authority: head.host,
    path: head.target,
    upstream: route.upstream,
    endpoint,
    httpVersion: '1.1',
    flags,
    security: route.plan.security,
  };
}

export class OutboundFastLane extends DownstreamLane {
  readonly #route: () => Route | undefined;
  readonly #context: () => ForwardContext;
  /** The upstream connection this lane's last request was counted on, and its counter: a kept-alive lane usually gets the same one again. */
  #counted: H1Upstream | null = null;
  #counter: Counter | null = null;

  /** `route`: the upstream this local port leads to, as the table has it now; `reads`: as ../http1/lane.ts takes them. */
  constructor(
    socket: Duplex,
    reads: SharedReads | null,
    route: () => Route | undefined,
    context: () => ForwardContext,
    handOff: (socket: Duplex, pending: Buffer | null) => void,
  ) {
    super(socket, handOff, reads);
    this.#route = route;
    this.#context = context;
    this.begin();
  }

  protected limits(): LaneLimits | null {
    const route = this.#route();
    if (route === undefined || route.plan.kind !== 'mtls' || route.upstream.protocol !== 'http' || route.h2Upgrade) return null;
    return APP_SIDE;
  }

  protected idleTimedOut(): void {}

  protected serve(head: RequestHead, body: Buffer | null): void {
    const route = this.#route()!;
    const ctx = this.#context();
    const { upstream, plan } = route;
    const started = performance.now();
    // As on the full path, the span starts before an endpoint is picked,
    // and the upstream gets it as its parent. Without a tracer, nothing is
    // built for it: this null check and the one when the request is counted.
    const tracer = ctx.tracer;
    const line = `${head.method} ${head.target} HTTP/1.1\r\nhost: ${head.host}`;
    let span: Span | null = null;
    let out: string;
    if (tracer === null) out = withFields(line, head);
    else {
      span = startClientSpan(tracer, traceHeaders(head), upstream);
      out = withTracedFields(line, head, span);
    }
    const peerWorkload = peerWorkloadFor(ctx, route);
    if (peerWorkload !== null) out += `\r\n${PEER_WORKLOAD}: ${peerWorkload}`;
    out += '\r\n\r\n';

    let endpoint: UpstreamEndpoint | null = null;
    let peer: string | null = null;
    let flags = '-';
    let connection: H1Upstream | null = null;
    // Once per request, however it ended: 0 when the app got no response.
    const count = (code: number): void => {
      if (span !== null) endClientSpan(span, code, outboundFacts(head, route, endpoint, flags));
      const ms = performance.now() - started;
      if (connection === null) {
        ctx.metrics.request(
          { ...connectionLabels(ctx.source, upstream, endpoint, plan.security, peer), request_protocol: 'http', response_code: String(code), response_flags: flags },
          ms,
        );
        return;
      }
      // Every label but the code and flags is fixed for one upstream connection: found once.
      if (connection !== this.#counted) {
        let counter = counters.get(connection);
        if (counter === undefined) {
          counter = ctx.metrics.requestCounter({ ...connectionLabels(ctx.source, upstream, endpoint, plan.security, peer), request_protocol: 'http' });
          counters.set(connection, counter);
        }
        this.#counted = connection;
        this.#counter = counter;
      }
      this.#counter!(code, flags, ms);
    };
    const picked = route.balancer.pick();
    const fail = (err: UpstreamError): void => {
      picked?.release();
      flags = FLAGS[err.reason];
      countFailure(ctx, upstream.host, err);
      if (this.gone) {
        count(0);
        return;
      }
      this.answer(503, failureBody(err));
      count(503);
      this.done();
    };
    if (picked === null) {
      fail(new UpstreamError('no-endpoint', `${upstream.name} has no endpoints`));
      return;
    }
    endpoint = picked.endpoint;

    const pool = ctx.pool;
    const use = (key: string, up: H1Upstream, fresh: boolean): void => {
      peer = up.peer;
      connection = up;
      if (this.gone) {
        pool.releaseH1(key, up, true, -1);
        picked.release();
        count(0);
        return;
      }
      this.relay(up, out, body, head.method === 'HEAD', (end) =>
        this.#exchanged(end, pool, key, up, fresh, head.method, attempt, () => {
          picked.release();
          count(end.kind === 'complete' || end.headSent ? end.status : 0);
        }, fail),
      );
    };
    const attempt = (fresh: boolean): void => {
      // A kept-alive connection is used at once; only a new one waits for its dial.
      const kept = fresh ? null : pool.takeH1(upstream, picked.endpoint);
      if (kept !== null) {
        use(kept.key, kept.up, false);
        return;
      }
      pool.dialH1(plan, upstream, picked.endpoint).then(
        ({ key, up }) => use(key, up, fresh),
        (err: unknown) => fail(failureOf(err)),
      );
    };
    attempt(false);
  }

  #exchanged(
    end: ExchangeEnd,
    pool: ConnectionPool,
    key: string,
    up: H1Upstream,
    fresh: boolean,
    method: string,
    retry: (fresh: boolean) => void,
    finished: () => void,
    fail: (err: UpstreamError) => void,
  ): void {
    // Back to the pool it came from: after a rotation that pool is drained and closes it.
    if (end.kind === 'complete') {
      pool.releaseH1(key, up, end.reusable, end.keepAliveMs);
      finished();
      this.done();
      return;
    }
    if (end.kind === 'aborted' || end.headSent) {
      this.socket.destroy();
      finished();
      return;
    }
    if (!fresh && sendAgain(end, up, method)) {
      retry(true);
      return;
    }
    fail(new UpstreamError('reset', end.reason === 'protocol' ? 'the upstream sent a response that is not valid HTTP/1.1' : 'connection reset by the upstream before the response'));
  }
}
