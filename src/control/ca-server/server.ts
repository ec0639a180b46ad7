// The CA server: Istio's CSR API (istio.v1.auth.IstioCertificateService/
// CreateCertificate) and meshward's trust bundle stream
// (meshward.identity.v1.TrustBundleService/Watch) over TLS, in front of a
// CertificateAuthority.
//
//   const server = await CaServer.start({ ca, registry });
//   const token = await server.mintBootstrapToken(workloadUri);   // hand to the workload with server.trustBundlePem()
//   await server.rotateRoot();                                    // add → activate → retire, waiting on agents
//
// Per call, as Istio's server.go: authenticate the caller (authn.ts), sign
// for the caller's identity and nothing else (the CA refuses a CSR naming
// anyone else), answer with an opaque status (status-map.ts), log the
// detail, count the outcome. The server serves with its own SVID, issued by
// the same CA for the control plane's identity and renewed like any
// workload's (at half its lifetime, and at once when a new root starts
// signing).

import { X509Certificate, randomUUID } from 'node:crypto';
import {
  Server,
  status,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type sendUnaryData,
  type ServiceError,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { Registry } from '../../lib/prometheus.ts';
import {
  AGENT_ID_METADATA,
  CA_SERVER_NAMESPACE,
  CA_SERVER_SERVICE_ACCOUNT,
  MAX_MESSAGE_BYTES,
  fromProtoStruct,
  identityServices,
  type IstioCertificateRequest,
  type IstioCertificateResponse,
  type TrustBundleAck,
  type TrustBundleMessage,
} from '../../api/identity-messages.ts';
import type { CertificateAuthority } from '../../identity/ca/index.ts';
import { parseSpiffeId, workloadId } from '../../identity/spiffe.ts';
import { trustBundleFromPem, type TrustBundle } from '../../identity/trust-bundle.ts';
import { verifySvid } from '../../identity/verify-svid.ts';
import { generateKeyAndCsr } from '../../identity/agent/keys.ts';
import { AgentRegistry, type AgentView } from './agents.ts';
import {
  BootstrapTokenAuthenticator,
  ClientCertificateAuthenticator,
  authenticate,
  type CallContext,
  type CallerAuthenticator,
  type SvidCheck,
} from './authn.ts';
import { BootstrapTokens, type MintOptions } from './bootstrap-tokens.ts';
import { BundlePublisher } from './bundle.ts';
import { RotatingServerCredentials } from './credentials.ts';
import { describeCsrProblem } from './csr-input.ts';
import { createCaServerMetrics, type CaServerMetrics } from './metrics.ts';
import { RootRotation, type RotateOptions, type RotationResult, type RotationStatus } from './root-rotation.ts';
import { failureOf, toStatus } from './status-map.ts';

export interface CaServerLogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  /** Stable event name: `certificate-issued`, `authn-refused`, `csr-refused`, … */
  event: string;
  fields: Readonly<Record<string, unknown>>;
}

export interface CaServerOptions {
  ca: CertificateAuthority;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** The server's SPIFFE ID; default spiffe://<td>/ns/meshward-system/sa/meshward-control. */
  identity?: string;
  /** Lifetime of the server's own certificate; default the CA's workload default. */
  servingCertTtlSeconds?: number;
  /** Default: a fresh in-memory key, audience = the server's identity. */
  bootstrapTokens?: BootstrapTokens;
  /**
   * Tried in order, first success wins. Default: the client certificate,
   * then the bootstrap token. Add a Kubernetes token reviewer here.
   */
  authenticators?: readonly CallerAuthenticator[];
  /** Where the server's metrics go (pass the CA's registry to see both). */
  registry?: Registry;
  /** Default: warn and error as JSON lines on stderr. */
  log?: (entry: CaServerLogEntry) => void;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
  /**
   * More gRPC services on the same listener and credentials (the control
   * plane's config stream, as istiod serves CA and xDS on one port). Handlers
   * authenticate callers with `server.verifyCaller(call)`.
   */
  services?: (server: CaServer) => readonly { definition: ServiceDefinition; implementation: UntypedServiceImplementation }[];
}

export interface CaServerStatus {
  address: string;
  identity: string;
  servingCertificate: { serial: string; notAfter: string; root: string };
  bundle: { version: number; roots: readonly string[]; signingRoot: string };
  agents: (Omit<AgentView, 'lastSeen' | 'certNotAfter' | 'lastIssued'> & { lastSeen: string; certNotAfter: string | null })[];
  rotation: RotationStatus;
}

interface Serving {
  keyPem: string;
  certChainPem: string;
  /** Certificates between leaf and root, for checking client chains (plug-in CAs). */
  intermediates: X509Certificate[];
  serial: string;
  notAfter: number;
  root: string;
}

function defaultLog(entry: CaServerLogEntry): void {
  if (entry.level === 'warn' || entry.level === 'error') {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'ca-server', ...entry })}\n`);
  }
}

const first = (values: unknown[]): string | undefined => (values.length > 0 ? String(values[0]) : undefined);

export class CaServer {
  readonly identity: string;
  readonly #ca: CertificateAuthority;
  readonly #grpc: Server;
  readonly #credentials: RotatingServerCredentials;
  readonly #publisher: BundlePublisher;
  readonly #agents: AgentRegistry;
  readonly #tokens: BootstrapTokens;
  readonly #authenticators: readonly CallerAuthenticator[];
  readonly #metrics: CaServerMetrics;
  readonly #rotation: RootRotation;
  readonly #log: (entry: CaServerLogEntry) => void;
  readonly #now: () => number;
  readonly #servingTtl: number;
  readonly #streams = new Map<string, ServerDuplexStream<TrustBundleAck, TrustBundleMessage>>();
  readonly #waiters = new Set<() => void>();
  readonly #rootOfPem = new Map<string, string>();
  #serving: Serving;
  #bundleCache: { version: number; bundle: TrustBundle } | undefined;
  #servingTimer: NodeJS.Timeout | undefined;
  #address = '';
  #port = 0;
  #stopped = false;

  private constructor(opts: CaServerOptions, identity: string, serving: Serving) {
    this.#ca = opts.ca;
    this.identity = identity;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? defaultLog;
    this.#servingTtl = opts.servingCertTtlSeconds ?? 0;
    this.#serving = serving;
    this.#publisher = new BundlePublisher(opts.ca, this.#now());
    this.#agents = new AgentRegistry(this.#now, () => this.#notify());
    this.#tokens = opts.bootstrapTokens ?? new BootstrapTokens({ audience: identity, now: this.#now });
    const parse = (uri: string) => parseSpiffeId(uri);
    this.#authenticators = opts.authenticators ?? [
      new ClientCertificateAuthenticator((leaf) => this.#verifyClient(leaf.raw)),
      new BootstrapTokenAuthenticator(this.#tokens, parse),
    ];
    this.#metrics = createCaServerMetrics(opts.registry ?? new Registry(), {
      agents: () => {
        const all = this.#agents.all();
        return { connected: all.filter((a) => a.connected).length, counted: this.#agents.counted().length, total: all.length };
      },
      bundleVersion: () => this.#publisher.current.version,
      rotationPhase: () => this.#rotation.step,
    });
    this.#credentials = new RotatingServerCredentials({
      keyPem: serving.keyPem,
      certChainPem: serving.certChainPem,
      clientRootsPem: this.#publisher.rootsPem,
    });
    this.#publisher.subscribe((b) => {
      for (const call of this.#streams.values()) call.write(b);
    });
    this.#rotation = new RootRotation({
      ca: opts.ca,
      bundle: this.#publisher,
      agents: this.#agents,
      reissueServingCertificate: () => this.#renewServing('root-activated'),
      publish: () => this.refreshBundle(),
      changed: (ms) => this.#changed(ms),
      log: (level, event, fields) => this.#log({ level, event, fields }),
      now: this.#now,
    });
    this.#grpc = new Server({
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // Find dead Watch streams, so a vanished agent stops counting as connected.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    const services = identityServices();
    this.#grpc.addService(services.certificate, {
      CreateCertificate: (call: ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: sendUnaryData<IstioCertificateResponse>) =>
        void this.#createCertificate(call, cb),
    });
    this.#grpc.addService(services.trustBundle, {
      Watch: (call: ServerDuplexStream<TrustBundleAck, TrustBundleMessage>) => void this.#watch(call),
    });
  }

  /** Issues the server's own certificate, then listens. */
  static async start(opts: CaServerOptions): Promise<CaServer> {
    const td = opts.ca.trustDomain;
    let identity = opts.identity;
    if (identity === undefined) {
      const id = workloadId(td, CA_SERVER_NAMESPACE, CA_SERVER_SERVICE_ACCOUNT);
      if ('error' in id) throw new Error(`CA server identity: ${id.error}`);
      identity = id.uri;
    }
    const serving = await CaServer.#issueServing(opts.ca, identity, opts.servingCertTtlSeconds ?? 0);
    const server = new CaServer(opts, identity, serving);
    for (const s of opts.services?.(server) ?? []) server.#grpc.addService(s.definition, s.implementation);
    await server.#listen(opts.host ?? '127.0.0.1', opts.port ?? 0);
    server.#scheduleServingRenewal();
    server.#log({ level: 'info', event: 'ca-server-started', fields: { address: server.address, identity, serial: serving.serial } });
    return server;
  }

  /** `host:port` the server listens on. */
  get address(): string {
    return this.#address;
  }

  get port(): number {
    return this.#port;
  }

  /** The roots a workload needs to reach this server: hand them over with the bootstrap token. */
  trustBundlePem(): string {
    return this.#publisher.rootsPem;
  }

  /** A single-use bootstrap token for the workload `spiffeId` (default lifetime 5 minutes). */
  mintBootstrapToken(spiffeId: string, opts?: MintOptions): Promise<string> {
    return this.#tokens.mint(spiffeId, opts);
  }

  /**
   * Re-reads the CA's roots; if they changed, pushes the new bundle to every
   * agent and trusts client certificates from exactly those roots.
   */
  refreshBundle(): TrustBundleMessage {
    const before = this.#publisher.current.version;
    const b = this.#publisher.refresh();
    if (b.version !== before) this.#applyCredentials();
    return b;
  }

  /** Rotates the root in three steps (see root-rotation.ts); resolves when the old root is gone everywhere. */
  rotateRoot(opts?: RotateOptions): Promise<RotationResult> {
    return this.#rotation.rotate(opts);
  }

  /**
   * Who is calling, by the X509-SVID of the call's TLS client certificate
   * (chained by Node to the current bundle, then checked as an SVID of this
   * trust domain). Bootstrap tokens do not count here: they only buy a
   * first certificate.
   */
  verifyCaller(call: Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): { ok: true; spiffeId: string } | { ok: false; reason: string; detail: string } {
    const peer = call.getAuthContext().sslPeerCertificate;
    if (peer === undefined) return { ok: false, reason: 'no-client-certificate', detail: 'the call carries no client certificate' };
    const check = this.#verifyClient(peer.raw);
    return check.ok ? { ok: true, spiffeId: check.spiffeId } : { ok: false, reason: check.reason, detail: check.detail };
  }

  agents(): AgentView[] {
    return this.#agents.all();
  }

  status(): CaServerStatus {
    const b = this.#publisher.current;
    return {
      address: this.#address,
      identity: this.identity,
      servingCertificate: {
        serial: this.#serving.serial,
        notAfter: new Date(this.#serving.notAfter).toISOString(),
        root: this.#serving.root,
      },
      bundle: { version: b.version, roots: b.root_fingerprints, signingRoot: b.signing_root },
      agents: this.#agents.all().map(({ lastIssued: _issued, ...a }) => ({
        ...a,
        lastSeen: new Date(a.lastSeen).toISOString(),
        certNotAfter: a.certNotAfter === null ? null : new Date(a.certNotAfter).toISOString(),
      })),
      rotation: this.#rotation.status(),
    };
  }

  /**
   * Ends every Watch stream (agents reconnect to whatever listens next),
   * then closes the listener. The CA stays open: it is the caller's.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#servingTimer);
    for (const call of this.#streams.values()) call.end();
    this.#streams.clear();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.#grpc.forceShutdown();
        resolve();
      }, 1000);
      this.#grpc.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.#log({ level: 'info', event: 'ca-server-stopped', fields: { address: this.#address } });
  }

  // --- serving certificate ------------------------------------------------------

  static async #issueServing(ca: CertificateAuthority, identity: string, ttlSeconds: number): Promise<Serving> {
    const { keyPem, csrPem } = await generateKeyAndCsr(identity);
    const res = await ca.sign({ csrPem, identity: { uri: identity, trustDomain: ca.trustDomain }, ttlSeconds });
    const certs = res.certChainPem.map((pem) => new X509Certificate(pem));
    const root = certs[certs.length - 1]!;
    const presented = certs.length > 1 ? certs.slice(0, -1) : certs;
    return {
      keyPem,
      certChainPem: presented.map((c) => c.toString()).join(''),
      intermediates: presented.slice(1),
      serial: res.serial,
      notAfter: res.notAfter.getTime(),
      root: root.fingerprint256,
    };
  }

  async #renewServing(reason: string): Promise<void> {
    this.#serving = await CaServer.#issueServing(this.#ca, this.identity, this.#servingTtl);
    this.#applyCredentials();
    this.#scheduleServingRenewal();
    this.#log({
      level: 'info',
      event: 'serving-certificate-renewed',
      fields: { reason, serial: this.#serving.serial, root: this.#serving.root, notAfter: new Date(this.#serving.notAfter).toISOString() },
    });
  }

  /** At half the remaining lifetime; a failure retries in a tenth of it (at least a second). */
  #scheduleServingRenewal(delayMs?: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#servingTimer);
    const remaining = this.#serving.notAfter - this.#now();
    this.#servingTimer = setTimeout(() => {
      this.#renewServing('scheduled').catch((err: unknown) => {
        this.#log({ level: 'error', event: 'serving-certificate-renewal-failed', fields: { error: (err as Error).message } });
        this.#scheduleServingRenewal(Math.max(1000, remaining / 10));
      });
    }, delayMs ?? Math.max(0, remaining / 2)).unref();
  }

  #applyCredentials(): void {
    this.#credentials.update({
      keyPem: this.#serving.keyPem,
      certChainPem: this.#serving.certChainPem,
      clientRootsPem: this.#publisher.rootsPem,
    });
  }

  async #listen(host: string, port: number): Promise<void> {
    // An IPv6 literal needs brackets, or its last group reads as the port.
    const named = host.includes(':') ? `[${host}]` : host;
    const bound = await new Promise<number>((resolve, reject) => {
      this.#grpc.bindAsync(`${named}:${port}`, this.#credentials, (err, p) => (err ? reject(err) : resolve(p)));
    });
    this.#port = bound;
    this.#address = `${named}:${bound}`;
  }

  // --- caller authentication ---------------------------------------------------

  #context(call: ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>, method: string): CallContext {
    return { metadata: call.metadata, peerCertificate: call.getAuthContext().sslPeerCertificate, peer: call.getPeer(), method };
  }

  #trustBundle(): TrustBundle {
    const cur = this.#publisher.current;
    if (this.#bundleCache?.version !== cur.version) {
      const parsed = trustBundleFromPem(cur.trust_domain, cur.roots.join(''));
      if ('error' in parsed) throw new Error(`served trust bundle does not parse: ${parsed.error}`);
      this.#bundleCache = { version: cur.version, bundle: parsed };
    }
    return this.#bundleCache.bundle;
  }

  /** SPIFFE rules on a client certificate Node has already chained to the bundle. */
  #verifyClient(raw: Buffer): SvidCheck {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(raw);
    } catch {
      return { ok: false, reason: 'malformed', detail: 'client certificate cannot be parsed' };
    }
    const verdict = verifySvid([leaf, ...this.#serving.intermediates], this.#trustBundle(), {
      now: new Date(this.#now()),
      expectedTrustDomain: this.#ca.trustDomain,
    });
    if (!verdict.ok) return { ok: false, reason: verdict.check, detail: verdict.reason };
    return { ok: true, spiffeId: verdict.id.uri, trustDomain: verdict.id.trustDomain, serial: leaf.serialNumber.toLowerCase() };
  }

  // --- CreateCertificate -------------------------------------------------------

  async #createCertificate(
    call: ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>,
    cb: sendUnaryData<IstioCertificateResponse>,
  ): Promise<void> {
    const t0 = this.#now();
    const ctx = this.#context(call, 'CreateCertificate');
    const agentId = first(call.metadata.get(AGENT_ID_METADATA)) ?? '';
    const reply = (err: (Partial<ServiceError> & { code: status; details: string }) | null, res?: IstioCertificateResponse) => {
      this.#metrics.response('CreateCertificate', status[err?.code ?? status.OK]);
      if (err) cb(err as ServiceError);
      else cb(null, res);
    };
    let authn;
    try {
      authn = await authenticate(this.#authenticators, ctx);
    } catch (err) {
      this.#log({ level: 'error', event: 'authn-error', fields: { peer: ctx.peer, error: (err as Error).message } });
      return reply(toStatus({ kind: 'internal', error: err }));
    }
    if (!authn.ok) {
      this.#metrics.authnFailure(authn.authenticator, authn.reason, 'CreateCertificate');
      this.#log({
        level: 'warn',
        event: 'authn-refused',
        fields: { method: 'CreateCertificate', peer: ctx.peer, agentId, authenticator: authn.authenticator, reason: authn.reason, detail: authn.detail },
      });
      return reply(toStatus({ kind: 'unauthenticated', reason: authn.reason }));
    }
    const { caller } = authn;
    const req = call.request;
    const requestFields = {
      peer: ctx.peer,
      agentId,
      identity: caller.spiffeId,
      authenticator: caller.authenticator,
      credential: caller.credential,
      requestedTtlSeconds: req.validity_duration,
      metadata: fromProtoStruct(req.metadata),
    };
    try {
      const res = await this.#ca.sign({
        csrPem: req.csr,
        identity: { uri: caller.spiffeId, trustDomain: caller.trustDomain },
        ttlSeconds: req.validity_duration,
      });
      const root = this.#rootFingerprint(res.certChainPem[res.certChainPem.length - 1]!);
      if (agentId) this.#agents.issued(agentId, caller.spiffeId, ctx.peer, { root, serial: res.serial, notAfter: res.notAfter.getTime() });
      this.#log({
        level: 'info',
        event: 'certificate-issued',
        fields: { ...requestFields, serial: res.serial, notAfter: res.notAfter.toISOString(), root, latencyMs: this.#now() - t0 },
      });
      // One certificate per element, each ending in a newline, as Istio
      // answers (clients that concatenate the elements depend on it).
      reply(null, { cert_chain: res.certChainPem.map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`)) });
    } catch (err) {
      const failure = failureOf(err);
      const st = toStatus(failure);
      if (failure.kind === 'ca' && (failure.error.reason === 'malformed-csr' || failure.error.reason === 'csr-too-large')) {
        st.details = describeCsrProblem(req.csr) ?? st.details;
      }
      this.#log({
        level: failure.kind === 'internal' ? 'error' : 'warn',
        event: 'csr-refused',
        fields: {
          ...requestFields,
          reason: failure.kind === 'ca' ? failure.error.reason : 'internal',
          detail: failure.kind === 'ca' ? failure.error.detail : failure.kind === 'internal' ? String(failure.error) : '',
          code: status[st.code],
        },
      });
      reply(st);
    }
  }

  #rootFingerprint(pem: string): string {
    let fp = this.#rootOfPem.get(pem);
    if (fp === undefined) {
      fp = new X509Certificate(pem).fingerprint256;
      if (this.#rootOfPem.size > 16) this.#rootOfPem.clear();
      this.#rootOfPem.set(pem, fp);
    }
    return fp;
  }

  // --- Watch -------------------------------------------------------------------

  async #watch(call: ServerDuplexStream<TrustBundleAck, TrustBundleMessage>): Promise<void> {
    const ctx = this.#context(call, 'Watch');
    const authn = await authenticate(this.#authenticators, ctx).catch((err: unknown) => ({
      ok: false as const,
      authenticator: 'none',
      reason: 'internal',
      detail: (err as Error).message,
    }));
    if (!authn.ok) {
      this.#metrics.authnFailure(authn.authenticator, authn.reason, 'Watch');
      this.#metrics.response('Watch', status[status.UNAUTHENTICATED]);
      this.#log({
        level: 'warn',
        event: 'authn-refused',
        fields: { method: 'Watch', peer: ctx.peer, authenticator: authn.authenticator, reason: authn.reason, detail: authn.detail },
      });
      call.emit('error', toStatus({ kind: 'unauthenticated', reason: authn.reason }));
      return;
    }
    if (this.#stopped) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'server is stopping' });
      return;
    }
    const spiffeId = authn.caller.spiffeId;
    const agentId = first(call.metadata.get(AGENT_ID_METADATA)) ?? `unnamed-${randomUUID()}`;
    // A reconnecting agent replaces its previous stream.
    this.#streams.get(agentId)?.end();
    this.#streams.set(agentId, call);
    this.#agents.connected(agentId, spiffeId, ctx.peer);
    this.#log({ level: 'info', event: 'watch-opened', fields: { agentId, spiffeId, peer: ctx.peer } });

    let closed = false;
    const close = (how: 'departed' | 'disconnected') => {
      if (closed) return;
      closed = true;
      if (this.#streams.get(agentId) === call) this.#streams.delete(agentId);
      else if (how === 'departed') how = 'disconnected'; // superseded by a newer stream: not gone
      if (how === 'departed') this.#agents.departed(agentId);
      else if (!this.#streams.has(agentId)) this.#agents.disconnected(agentId);
      this.#log({ level: 'info', event: `watch-${how}`, fields: { agentId, spiffeId } });
    };
    call.on('data', (ack: TrustBundleAck) => {
      this.#agents.acked(agentId, {
        version: Number(ack.version),
        certRoot: ack.cert_root,
        certSerial: ack.cert_serial,
        certNotAfter: Number(ack.cert_not_after),
        error: ack.error,
      });
      if (ack.error) {
        this.#metrics.nack();
        this.#log({ level: 'warn', event: 'bundle-nack', fields: { agentId, spiffeId, version: ack.version, error: ack.error } });
      }
    });
    call.on('end', () => {
      close('departed');
      call.end();
    });
    call.on('cancelled', () => close('disconnected'));
    call.on('error', () => close('disconnected'));
    call.on('close', () => close('disconnected'));
    call.write(this.#publisher.current);
  }

  // --- waiting on agents -------------------------------------------------------

  #notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  #changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.add(done);
    });
  }
}

