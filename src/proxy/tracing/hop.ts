// The spans of the two hops a proxy serves, named and tagged as an Istio
// sidecar's Envoy does: the inbound SERVER span `<service>:<port>/*` with
// `upstream_cluster` `inbound|<port>||` and the authorization decision, the
// outbound CLIENT span `<host>:<servicePort>/*` with `outbound|<port>||<host>`.
// Attributes are built only for spans that will be exported.

import type { IncomingHttpHeaders } from 'node:http';
import type { Upstream, UpstreamEndpoint } from '../../api/proxy-config.ts';
import type { Decision } from '../../policy/decision.ts';
import type { Tracer, Span } from './tracer.ts';

export function startServerSpan(tracer: Tracer, headers: IncomingHttpHeaders, port: number): Span {
  return tracer.start('server', `${tracer.serviceName}:${port}/*`, headers);
}

export interface InboundFacts {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly port: number;
  /** `1.1` or `2.0`, as node reports it. */
  readonly httpVersion: string;
  readonly principal: string | null;
  readonly remoteIp: string;
  readonly userAgent: string | undefined;
}

/** Ends an inbound span with the response and who decided it. */
export function endServerSpan(span: Span, code: number | 'reset', facts: InboundFacts, d: Decision | null, bypass: boolean): void {
  const status = code === 'reset' ? 0 : code;
  if (!span.recording) {
    span.end(status);
    return;
  }
  const denied = d !== null && d.decision === 'DENY';
  const attributes: Record<string, string | number | boolean> = {
    'http.method': facts.method,
    'http.url': `http://${facts.host}${facts.path}`,
    'http.protocol': facts.httpVersion === '2.0' ? 'HTTP/2' : `HTTP/${facts.httpVersion}`,
    'http.status_code': status,
    response_flags: denied && d.stage === 'authorization' ? 'RBAC' : span.responseFlags,
    upstream_cluster: `inbound|${facts.port}||`,
    'guid:x-request-id': span.requestId,
    'peer.address': facts.remoteIp,
    'meshward.authz.decision': bypass ? 'BYPASS' : (d?.decision ?? 'ALLOW'),
  };
  if (facts.userAgent !== undefined) attributes['user_agent'] = facts.userAgent;
  if (facts.principal !== null) attributes['meshward.peer.principal'] = `spiffe://${facts.principal}`;
  if (d !== null && d.policy !== null) attributes['meshward.authz.policy'] = d.policy;
  if (d !== null && d.stage !== null) attributes['meshward.authz.stage'] = d.stage;
  if (status === 0 || status >= 500) attributes['error'] = true;
  span.end(status, attributes);
}

export function startClientSpan(tracer: Tracer, headers: IncomingHttpHeaders, upstream: Upstream): Span {
  return tracer.start('client', `${upstream.host}:${upstream.servicePort}/*`, headers);
}

export interface OutboundFacts {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly upstream: Upstream;
  readonly endpoint: UpstreamEndpoint | null;
  /** `1.1` or `2.0`: the app's side. */
  readonly httpVersion: string;
  readonly flags: string;
  readonly security: string;
}

/** Ends an outbound span; `status` 0 when the app got no response. */
export function endClientSpan(span: Span, status: number, facts: OutboundFacts): void {
  if (!span.recording) {
    span.end(status);
    return;
  }
  const u = facts.upstream;
  const attributes: Record<string, string | number | boolean> = {
    'http.method': facts.method,
    'http.url': `http://${facts.authority}${facts.path}`,
    'http.protocol': facts.httpVersion === '2.0' ? 'HTTP/2' : `HTTP/${facts.httpVersion}`,
    'http.status_code': status,
    response_flags: facts.flags,
    upstream_cluster: `outbound|${u.servicePort}||${u.host}`,
    'upstream_cluster.name': `outbound|${u.servicePort}||${u.host}`,
    'peer.service': u.name,
    'guid:x-request-id': span.requestId,
    'meshward.connection_security_policy': facts.security,
  };
  if (facts.endpoint !== null) attributes['upstream_address'] = `${facts.endpoint.host}:${facts.endpoint.port}`;
  if (status === 0 || status >= 500) attributes['error'] = true;
  span.end(status, attributes);
}
