// The policy engine: every decision meshward makes about inbound traffic goes
// through here, in Istio's order of stages —
//   1. peer authentication (PeerAuthentication: is this connection allowed at all?)
//   2. path normalization (HTTP)
//   3. request authentication (RequestAuthentication: JWTs)
//   4. authorization (AuthorizationPolicy: CUSTOM, DENY, ALLOW)
// The first refusal wins. The engine is compiled once per configuration;
// `check` reads only compiled state and never throws on request input.

import { h2Upgrade } from './destination/h2-upgrade.ts';
import type { ResourceSet } from '../api/resources.ts';
import type { MeshConfig } from '../api/mesh-config.ts';
import { parseIp } from '../lib/cidr.ts';
import type { DestinationWorkload, HttpRequest } from './facts.ts';
import type { Decision, DecisionTrace, Stage, Status } from './decision.ts';
import { AuthorizationIndex } from './authz/index.ts';
import { authorize, type ExtAuthzAnswers } from './authz/evaluate.ts';
import { nearestAllowRule } from './authz/explain.ts';
import type { JwtFacts, RequestAttributes } from './authz/attributes.ts';
import { normalizePath } from './normalize-path.ts';
import { compilePeerAuthn, namespaceMtlsMode, type WorkloadPeerAuthn } from './peer/index.ts';
import { WorkloadMemo } from './workload-memo.ts';
import { compileDestinationRules, type ClientTlsDecision } from './destination/index.ts';
import { compileRequestAuthn, selectRequestAuthentications, type CompiledRequestAuthn } from './authn/compile.ts';
import { authenticate, type AuthnOutcome } from './authn/authenticate.ts';
import { failClosedJwksResolver, type JwksResolver } from './authn/remote-jwks.ts';

export interface ConnectionFacts {
  /** true: Istio mTLS; false: plaintext; 'auto': decide as the client's sidecar would (DestinationRule, auto mTLS). */
  readonly mtls: boolean | 'auto';
  /** Peer identity without `spiffe://` (the client sidecar's identity for 'auto'). */
  readonly principal: string | null;
  /** Client namespace; only used to find the client's DestinationRules for 'auto'. */
  readonly clientNamespace: string | null;
  readonly ip: string;
  readonly remoteIp?: string;
  readonly sni?: string;
  /**
   * The connection arrived on a gateway's external TLS port: the gateway
   * terminated TLS for a client outside the mesh, and PeerAuthentication
   * (which governs sidecars' mesh ports) does not apply. Authentication is
   * RequestAuthentication's, and authorization sees no peer principal.
   */
  readonly ingress?: boolean;
}

export type RequestFacts = { readonly protocol: 'tcp' } | ({ readonly protocol: 'http' } & HttpRequest);

export interface EngineInput {
  readonly destination: DestinationWorkload;
  readonly connection: ConnectionFacts;
  readonly request: RequestFacts;
  readonly extAuthz?: ExtAuthzAnswers;
}

export interface EngineOptions {
  /** How `jwksUri` keys are fetched; the default refuses (fail closed) so that a check never touches the network. */
  readonly jwksResolver?: JwksResolver;
  /** Clock for JWT `exp`/`nbf`. */
  readonly now?: () => Date;
}

type ConnectionKind = 'istio-mtls' | 'tls' | 'plaintext';

const EMPTY_HEADERS: Readonly<Record<string, string>> = Object.freeze(Object.create(null) as Record<string, string>);

export class PolicyEngine {
  readonly mesh: MeshConfig;
  readonly resources: ResourceSet;
  readonly authz: AuthorizationIndex;
  readonly #peer: ReturnType<typeof compilePeerAuthn>;
  readonly #destinations: ReturnType<typeof compileDestinationRules>;
  readonly #authn: WorkloadMemo<CompiledRequestAuthn>;
  readonly #peerViews: WorkloadMemo<WorkloadPeerAuthn>;
  readonly #jwksResolver: JwksResolver;
  readonly #now: () => Date;

  constructor(resources: ResourceSet, mesh: MeshConfig, options: EngineOptions = {}) {
    this.mesh = mesh;
    this.resources = resources;
    this.authz = new AuthorizationIndex(resources.authorizationPolicies, mesh);
    this.#peer = compilePeerAuthn(resources.peerAuthentications, mesh.rootNamespace);
    this.#destinations = compileDestinationRules(resources.destinationRules, { rootNamespace: mesh.rootNamespace });
    this.#jwksResolver = options.jwksResolver ?? failClosedJwksResolver;
    this.#peerViews = new WorkloadMemo((ns, labels) => this.#peer.forWorkload(ns, labels));
    this.#authn = new WorkloadMemo((namespace, labels) =>
      compileRequestAuthn(
        selectRequestAuthentications(resources.requestAuthentications, { namespace, labels: { ...labels } }, mesh.rootNamespace),
        { jwksResolver: this.#jwksResolver },
      ),
    );
    this.#now = options.now ?? (() => new Date());
  }

  /** The full pipeline for one request or connection. Never rejects. */
  async check(input: EngineInput, options: CheckOptions = {}): Promise<Decision> {
    return this.decide(input, options);
  }

  /**
   * The same pipeline, synchronous unless a JWT signature has to be verified
   * (the only asynchronous step): the proxy's hot path. Never throws, never
   * rejects — a bug must never turn into an allow.
   */
  decide(input: EngineInput, options: CheckOptions = {}): Decision | Promise<Decision> {
    try {
      const d = this.#decide(input, options.explain === true);
      return d instanceof Promise ? d.catch(internalError) : d;
    } catch (err) {
      return internalError(err);
    }
  }

  /** The mode STRICT/PERMISSIVE/DISABLE in force on a workload port, and which policy set it. */
  peerMode(destination: DestinationWorkload) {
    return this.#peerViews.get(destination.namespace, destination.labels).modeForPort(destination.port);
  }

  /** Whether a client sidecar in `clientNamespace` carries HTTP/1.1 to `host:port` as HTTP/2 (DestinationRule h2UpgradePolicy). */
  h2Upgrade(clientNamespace: string, host: string, port: number): boolean {
    return h2Upgrade(this.#destinations.rules, clientNamespace, host, port);
  }

  /** How a client sidecar in `clientNamespace` would send to `host:port` (DestinationRule, auto mTLS). */
  clientTls(clientNamespace: string, host: string, port: number, destinationNamespace: string): ClientTlsDecision {
    const d = this.#destinations.resolve({ clientNamespace, host, port });
    if (!d.auto) return d;
    // Auto mTLS: the client sends Istio mTLS to a sidecar unless the service's
    // namespace (or the mesh) disables mTLS; workload- and port-level
    // PeerAuthentications are not consulted, exactly as Istio's best effort.
    const nsMode = namespaceMtlsMode(this.resources.peerAuthentications, destinationNamespace, this.mesh.rootNamespace);
    if (nsMode === 'DISABLE') {
      return { ...d, mode: 'DISABLE', reason: `${d.reason}; auto mTLS sends plaintext because PeerAuthentication disables mTLS in namespace ${destinationNamespace}` };
    }
    return d;
  }

  #decide(input: EngineInput, explain: boolean): Decision | Promise<Decision> {
    const { destination, connection, request } = input;
    const trace: MutableTrace = {};

    // 1. Peer authentication -------------------------------------------------
    let kind: ConnectionKind;
    let principal: string | null = null;
    let clientTls: ClientTlsDecision | undefined;
    if (connection.mtls === 'auto') {
      const service = destination.service;
      clientTls = service
        ? this.clientTls(connection.clientNamespace ?? 'default', service.host, service.port, destination.namespace)
        : undefined;
      const mode = clientTls?.mode ?? 'ISTIO_MUTUAL';
      kind = mode === 'ISTIO_MUTUAL' ? 'istio-mtls' : mode === 'DISABLE' ? 'plaintext' : 'tls';
    } else {
      kind = connection.mtls ? 'istio-mtls' : 'plaintext';
    }
    if (kind === 'istio-mtls') principal = connection.principal;

    const peer = this.peerMode(destination);
    trace.peerAuthentication = {
      mode: peer.mode,
      policy: peer.policy,
      connection: kind,
      ...(clientTls ? { clientTls: { mode: clientTls.mode, auto: clientTls.auto, destinationRule: clientTls.destinationRule, reason: clientTls.reason } } : {}),
    };
    const ingress = connection.ingress === true;
    if (ingress) kind = 'plaintext';
    if (!ingress && peer.mode === 'STRICT' && kind !== 'istio-mtls') {
      const what = kind === 'plaintext' ? 'plaintext connection' : 'TLS connection without an Istio mesh identity';
      return deny('peer-authentication', 'reset', null, null, null, `${what} refused: mTLS is STRICT on port ${destination.port} (${peer.policy ?? 'mesh default'})`, trace);
    }
    // With mTLS off the sidecar does not terminate TLS: on an HTTP port the
    // TLS bytes fail to parse as HTTP and the connection is reset.
    if (!ingress && peer.mode === 'DISABLE' && kind !== 'plaintext') {
      if (request.protocol === 'http') {
        return deny('peer-authentication', 'reset', null, null, null, `TLS connection to port ${destination.port} where mTLS is DISABLE: the sidecar expects plaintext HTTP`, trace);
      }
      principal = null;
    }
    // A TLS connection that is not Istio mTLS carries no identity; the sidecar
    // passes it through as TCP and can only authorize it as TCP.
    const asTcp = request.protocol === 'tcp' || kind === 'tls' || (peer.mode === 'DISABLE' && kind !== 'plaintext');
    if (kind !== 'istio-mtls') principal = null;

    // 2. Path normalization ----------------------------------------------------
    let path = '';
    let http: HttpRequest | null = null;
    if (!asTcp && request.protocol === 'http') {
      http = request;
      const normalized = normalizePath(request.path, this.mesh.pathNormalization);
      if (!normalized.ok) {
        return deny('normalization', 400, null, principal, null, `request path rejected: ${normalized.reason}`, trace);
      }
      path = normalized.path;
      trace.normalizedPath = path;

      // 3. Request authentication ----------------------------------------------
      const compiled = this.#authn.get(destination.namespace, destination.labels);
      if (compiled.rules.length > 0) {
        const ctx: Pending = { input, trace, principal, path, http, explain };
        const outcome = authenticate(compiled, request, { now: this.#now() });
        return outcome instanceof Promise ? outcome.then((o) => this.#afterAuthn(ctx, o)) : this.#afterAuthn(ctx, outcome);
      }
    }
    return this.#authorize({ input, trace, principal, path, http, explain }, null, null);
  }

  #afterAuthn(ctx: Pending, outcome: AuthnOutcome): Decision {
    ctx.trace.requestAuthentication = { status: outcome.status, reason: outcome.reason, policy: outcome.policy };
    if (outcome.status !== 'ok') {
      // The contract names only authorization policies; the RequestAuthentication is in the trace.
      return deny('request-authentication', outcome.status, null, ctx.principal, null, outcome.reason, ctx.trace);
    }
    if (outcome.headerMutations.length > 0) ctx.trace.headerMutations = outcome.headerMutations;
    if (outcome.requestPrincipal === null || outcome.issuer === null || outcome.claims === null) return this.#authorize(ctx, null, null);
    const sub = outcome.claims['sub'];
    const jwt: JwtFacts = {
      issuer: outcome.issuer,
      subject: typeof sub === 'string' ? sub : '',
      claims: outcome.claims,
      audiences: outcome.audiences,
      presenter: outcome.presenter,
    };
    return this.#authorize(ctx, jwt, outcome.requestPrincipal);
  }

  // 4. Authorization -----------------------------------------------------------
  #authorize(ctx: Pending, jwt: JwtFacts | null, requestPrincipal: string | null): Decision {
    const { input, trace, principal, path, http } = ctx;
    const { destination, connection } = input;
    const sourceIp = parseIp(connection.ip);
    const attributes: RequestAttributes = {
      http: http !== null,
      principal,
      principalUri: principal === null ? null : `spiffe://${principal}`,
      sourceIp,
      // A forwarded client address is text from a header: an IPv4-mapped
      // IPv6 form stays IPv6, as Envoy reads it.
      remoteIp: connection.remoteIp === undefined ? sourceIp : parseIp(connection.remoteIp, true),
      destinationIp: destination.ip === undefined ? null : parseIp(destination.ip),
      destinationPort: destination.port,
      sni: connection.sni ?? '',
      method: http?.method ?? '',
      path,
      hostLower: http === null ? '' : http.host.toLowerCase(),
      headers: http?.headers ?? EMPTY_HEADERS,
      jwt,
    };
    const view = this.authz.forWorkload(destination.namespace, destination.labels);
    const result = authorize(view, attributes, input.extAuthz);
    trace.authorization = {
      action: result.action,
      reason: result.reason,
      observed: result.observed,
      ...(ctx.explain && !result.allowed && result.action === null ? { nearest: nearestAllowRule(view, attributes) } : {}),
    };
    if (!result.allowed) {
      return deny('authorization', attributes.http ? 403 : 'reset', result.policy, principal, requestPrincipal, result.reason, trace, result.rule);
    }
    return {
      decision: 'ALLOW',
      status: 200,
      stage: null,
      policy: result.policy,
      principal,
      requestPrincipal,
      rule: result.rule,
      reason: result.reason,
      trace,
    };
  }
}

type MutableTrace = { -readonly [K in keyof DecisionTrace]: DecisionTrace[K] };

/** What the stages before authorization established, carried across the JWT await. */
interface Pending {
  readonly input: EngineInput;
  readonly trace: MutableTrace;
  readonly principal: string | null;
  readonly path: string;
  readonly http: HttpRequest | null;
  readonly explain: boolean;
}

export interface CheckOptions {
  /** Also find the nearest ALLOW rule for a default deny (for people; costs time). */
  readonly explain?: boolean;
}

function internalError(err: unknown): Decision {
  return deny('authorization', 403, null, null, null, `internal error while deciding: ${(err as Error)?.message ?? String(err)}`, {});
}

function deny(
  stage: Stage,
  status: Status,
  policy: string | null,
  principal: string | null,
  requestPrincipal: string | null,
  reason: string,
  trace: DecisionTrace,
  rule: number | null = null,
): Decision {
  return { decision: 'DENY', status, stage, policy, principal, requestPrincipal, rule, reason, trace };
}
