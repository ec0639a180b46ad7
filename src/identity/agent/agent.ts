// The workload identity agent: each proxy runs one. It holds the workload's
// key and X509-SVID in memory and keeps them fresh, and holds the trust
// bundle the control plane serves:
//
//   const agent = new WorkloadAgent({ spiffeId, caAddress, trustBundlePem, bootstrapToken });
//   const first = await agent.start();
//   const server = tls.createServer(serverOptions(first));
//   agent.on('rotated', (s) => server.setSecureContext(serverOptions(s)));
//   agent.on('bundle', (s) => server.setSecureContext(serverOptions(s)));
//
// The first certificate is bought with the bootstrap token; every renewal
// authenticates with the certificate being replaced (Istio's agent and
// SPIRE's agent do the same). Renewal happens at a jittered fraction of the
// lifetime (schedule.ts); while the CA is unreachable the agent retries
// with capped exponential backoff and keeps serving the certificate it has
// until it expires. Listeners swap TLS contexts in place, so connections
// open at the time of a rotation are not touched.
//
// Root rotation: the agent follows the bundle the server pushes on the
// Watch stream, ACKs each version once its listeners have applied it, and
// when the bundle says a root other than its certificate's now signs, it
// re-issues early (spread by jitter) and reports the new certificate's root.

import { EventEmitter } from 'node:events';
import { X509Certificate, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Registry } from '../../lib/prometheus.ts';
import { CA_SERVER_NAMESPACE, CA_SERVER_SERVICE_ACCOUNT, type TrustBundleMessage } from '../../api/identity-messages.ts';
import { parseSpiffeId, workloadId, type SpiffeId } from '../spiffe.ts';
import { trustBundleFromPem, type TrustBundle } from '../trust-bundle.ts';
import { verifySvid } from '../verify-svid.ts';
import { CaCallError, createCertificate, watchBundle, type BundleWatch, type CallerCredential, type CaConnection } from './ca-client.ts';
import { certifiesKey, generateKeyAndCsr, type WorkloadKeyType } from './keys.ts';
import { createAgentMetrics, type AgentMetrics } from './metrics.ts';
import {
  DEFAULT_BACKOFF,
  DEFAULT_ROTATION,
  backoffDelayMs,
  checkBackoffPolicy,
  checkRotationPolicy,
  reissueDelayMs,
  renewalDelayMs,
  type BackoffPolicy,
  type RotationPolicy,
} from './schedule.ts';

export type BootstrapTokenSource = string | (() => string | Promise<string>);

export type AgentLog = (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void;

export interface WorkloadAgentOptions {
  /** The identity this workload was launched as. */
  spiffeId: string | SpiffeId;
  /** `host:port` of the CA server. */
  caAddress: string;
  /**
   * The trust bundle handed to the workload at launch (with the token):
   * the roots the CA server's certificate must chain to until the first
   * bundle arrives on the Watch stream.
   */
  trustBundlePem: string;
  /** SPIFFE ID the CA server must present; default the control plane's in the same trust domain. */
  caIdentity?: string;
  /**
   * The single-use token for the first certificate, or a function that
   * returns a fresh one (needed again only if the certificate expired
   * before it could be renewed).
   */
  bootstrapToken?: BootstrapTokenSource;
  /** Default ec-p256. A new key is generated for every certificate. */
  keyType?: WorkloadKeyType;
  /** Requested lifetime in seconds; 0 (default) takes the CA's default. */
  ttlSeconds?: number;
  rotation?: Partial<RotationPolicy>;
  backoff?: Partial<BackoffPolicy>;
  /**
   * After a new root is activated, re-issue at a random moment within this
   * window, so the fleet does not hit the CA at once. Default 10 000 ms.
   */
  reissueSpreadMs?: number;
  /** Deadline of one CreateCertificate call. Default 10 000 ms (Istio's agent). */
  requestTimeoutMs?: number;
  /** Sent in IstioCertificateRequest.metadata (e.g. WorkloadName). */
  metadata?: Readonly<Record<string, string>>;
  registry?: Registry;
  log?: AgentLog;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
  random?: () => number;
}

/** What the agent holds now. Replaced whole on every change; never mutated. */
export interface AgentSnapshot {
  readonly spiffeId: string;
  /** PKCS#8 PEM of the workload key. In memory only: never written to disk. */
  readonly keyPem: string;
  /** The certificate chain to present, leaf first, without the root. */
  readonly certChainPem: string;
  /** Every root to trust, PEM. */
  readonly bundlePem: string;
  readonly bundle: TrustBundle;
  readonly notAfter: Date;
  readonly issuedAt: Date;
  /** Lower-case hex. */
  readonly serial: string;
  /** Fingerprint of the root the certificate chains to. */
  readonly certRoot: string;
  /** Fingerprint of the root the CA signs with now (from the bundle). */
  readonly signingRoot: string;
  readonly bundleVersion: number;
}

export type RotationReason = 'initial' | 'scheduled' | 'retry' | 'root-activated' | 'root-retired' | 'manual';

export interface AgentEvents {
  /** A new key and certificate are installed (every one after the first). */
  rotated: [snapshot: AgentSnapshot, reason: RotationReason];
  /** The set of trusted roots changed. */
  bundle: [snapshot: AgentSnapshot];
  /** A call failed or a bundle was refused; the agent keeps going. Emitted only when someone listens. */
  error: [error: Error];
  /** The certificate expired before it could be renewed. */
  expired: [snapshot: AgentSnapshot];
}

export class AgentError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
  }
}

interface Svid {
  keyPem: string;
  chain: X509Certificate[];
  certChainPem: string;
  notAfter: number;
  issuedAt: number;
  serial: string;
  root: string;
}

interface Bundle {
  trust: TrustBundle;
  version: number;
  signingRoot: string;
}

/** Refusals that retrying the same credential cannot fix. */
const FINAL_CODES = new Set<number>([status.UNAUTHENTICATED, status.PERMISSION_DENIED, status.INVALID_ARGUMENT]);

export class WorkloadAgent extends EventEmitter<AgentEvents> {
  readonly spiffeId: string;
  readonly agentId = randomUUID();
  readonly #id: SpiffeId;
  readonly #caAddress: string;
  readonly #caIdentity: string;
  readonly #keyType: WorkloadKeyType;
  readonly #ttlSeconds: number;
  readonly #rotation: RotationPolicy;
  readonly #backoff: BackoffPolicy;
  readonly #reissueSpreadMs: number;
  readonly #timeoutMs: number;
  readonly #metadata: Readonly<Record<string, string>>;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #log: AgentLog;
  readonly #metrics: AgentMetrics | undefined;
  #token: BootstrapTokenSource | undefined;

  #svid: Svid | undefined;
  #bundle: Bundle;
  #snapshot: AgentSnapshot | undefined;
  #watch: BundleWatch | undefined;
  #watchFailures = 0;
  #issueFailures = 0;
  #issuing: Promise<void> | undefined;
  #pendingReason: RotationReason = 'scheduled';
  #renewTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  #started: Promise<AgentSnapshot> | undefined;
  #firstBundle: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #svidRefused = false;

  constructor(opts: WorkloadAgentOptions) {
    super();
    const id = typeof opts.spiffeId === 'string' ? parseSpiffeId(opts.spiffeId) : opts.spiffeId;
    if ('error' in id) throw new AgentError('invalid-config', `spiffeId: ${id.error}`);
    this.#id = id;
    this.spiffeId = id.uri;
    const bundle = trustBundleFromPem(id.trustDomain, opts.trustBundlePem);
    if ('error' in bundle) throw new AgentError('invalid-config', `trustBundlePem: ${bundle.error}`);
    this.#bundle = { trust: bundle, version: 0, signingRoot: '' };
    const caId = opts.caIdentity ?? workloadId(id.trustDomain, CA_SERVER_NAMESPACE, CA_SERVER_SERVICE_ACCOUNT);
    this.#caIdentity = typeof caId === 'string' ? caId : 'error' in caId ? '' : caId.uri;
    this.#caAddress = opts.caAddress;
    this.#keyType = opts.keyType ?? 'ec-p256';
    this.#ttlSeconds = opts.ttlSeconds ?? 0;
    this.#rotation = { ...DEFAULT_ROTATION, ...opts.rotation };
    this.#backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    const problems = [...checkRotationPolicy(this.#rotation), ...checkBackoffPolicy(this.#backoff)];
    if (problems.length > 0) throw new AgentError('invalid-config', problems.join('; '));
    this.#reissueSpreadMs = opts.reissueSpreadMs ?? 10_000;
    this.#timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.#metadata = opts.metadata ?? {};
    this.#token = opts.bootstrapToken;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#log = opts.log ?? (() => {});
    this.#metrics = opts.registry
      ? createAgentMetrics(opts.registry, { spiffeId: this.spiffeId, notAfter: () => this.#svid?.notAfter, now: this.#now })
      : undefined;
  }

  /**
   * Gets the first certificate and the first bundle from the Watch stream.
   * Retries while the CA is unreachable; rejects if the bootstrap token is
   * refused and there is no way to get another, or if stop() is called.
   */
  start(): Promise<AgentSnapshot> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<AgentSnapshot> {
    const firstBundle = new Promise<void>((resolve, reject) => {
      this.#firstBundle = { resolve, reject };
    });
    for (;;) {
      if (this.#stopped) throw new AgentError('stopped', 'agent stopped before its first certificate');
      try {
        await this.#issue('initial');
        break;
      } catch (err) {
        const final = err instanceof CaCallError && FINAL_CODES.has(err.code) && typeof this.#token !== 'function';
        this.#report(err, 'initial certificate');
        if (final || (err instanceof AgentError && err.code === 'no-credential')) throw err;
        await this.#sleep(backoffDelayMs(this.#issueFailures++, this.#backoff, this.#random));
      }
    }
    this.#issueFailures = 0;
    this.#openWatch();
    await firstBundle;
    return this.#snapshot!;
  }

  /** The key, chain and bundle in use now; undefined before start() resolves. */
  current(): AgentSnapshot | undefined {
    return this.#snapshot;
  }

  /** Re-issues now (the next renewal is rescheduled from the new certificate). */
  async rotateNow(): Promise<AgentSnapshot> {
    await this.#renew('manual');
    return this.#snapshot!;
  }

  /** Replaces the bootstrap token source, e.g. after the certificate expired. */
  setBootstrapToken(token: BootstrapTokenSource): void {
    this.#token = token;
  }

  /** Stops timers and closes the Watch stream cleanly (the server forgets this agent). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of [this.#renewTimer, this.#expiryTimer, this.#watchTimer]) clearTimeout(t);
    const closing = this.#watch?.close();
    this.#watch = undefined;
    this.#firstBundle?.reject(new AgentError('stopped', 'agent stopped before its first bundle'));
    this.#wake?.();
    this.#metrics?.detach();
    await Promise.all([closing, this.#issuing?.catch(() => {})]);
  }

  // --- issuing --------------------------------------------------------------

  #connection(): CaConnection {
    return {
      address: this.#caAddress,
      bundlePem: this.#bundle.trust.pem,
      caIdentity: this.#caIdentity,
      agentId: this.agentId,
      timeoutMs: this.#timeoutMs,
    };
  }

  /**
   * The current SVID while it stays valid through the call (a margin of 5%
   * of its lifetime, at most a second), else a bootstrap token.
   */
  async #credential(): Promise<CallerCredential> {
    const svid = this.#svid;
    const margin = svid ? Math.min(1000, (svid.notAfter - svid.issuedAt) * 0.05) : 0;
    if (svid && !this.#svidRefused && svid.notAfter - this.#now() > margin) {
      return { kind: 'svid', keyPem: svid.keyPem, certChainPem: svid.certChainPem };
    }
    if (this.#token === undefined) {
      throw new AgentError('no-credential', 'no valid certificate to renew with and no bootstrap token');
    }
    return { kind: 'token', token: typeof this.#token === 'function' ? await this.#token() : this.#token };
  }

  async #issue(reason: RotationReason): Promise<void> {
    const cred = await this.#credential();
    const { keyPem, csrPem, publicKeyDer } = await generateKeyAndCsr(this.spiffeId, this.#keyType);
    const t0 = this.#now();
    let chainPem: string[];
    try {
      chainPem = await createCertificate(this.#connection(), cred, { csrPem, ttlSeconds: this.#ttlSeconds, metadata: this.#metadata });
      this.#metrics?.csrRequest(true, this.#now() - t0);
    } catch (err) {
      this.#metrics?.csrRequest(false, this.#now() - t0);
      // The CA no longer accepts this certificate (its root was retired while
      // the agent was away): the next attempt falls back to a bootstrap token.
      if (cred.kind === 'svid' && err instanceof CaCallError && err.code === status.UNAUTHENTICATED) this.#svidRefused = true;
      throw err;
    }
    const svid = this.#accept(chainPem, keyPem, publicKeyDer);
    // A string token is single-use: once it has bought a certificate it is
    // spent. (Until then it is kept: a call that never reached the CA did not
    // spend it.)
    if (cred.kind === 'token' && typeof this.#token === 'string') this.#token = undefined;
    this.#svidRefused = false;
    this.#install(svid, reason, cred.kind);
  }

  /** Checks what the CA returned before trusting it with the workload's traffic. */
  #accept(chainPem: string[], keyPem: string, publicKeyDer: Buffer): Svid {
    let certs: X509Certificate[];
    try {
      certs = chainPem.map((pem) => new X509Certificate(pem));
    } catch {
      throw new AgentError('bad-response', 'the CA returned a certificate that cannot be parsed');
    }
    const leaf = certs[0]!;
    if (!certifiesKey(leaf, publicKeyDer)) throw new AgentError('bad-response', 'the issued certificate is not for the key in the CSR');
    // The response ends with the root (Istio's convention); what is presented
    // in handshakes stops below it, since every peer holds the root already.
    const bundle = this.#bundle.trust;
    const last = certs[certs.length - 1]!;
    const endsWithRoot = certs.length > 1 && bundle.fingerprints.includes(last.fingerprint256);
    const presented = endsWithRoot ? certs.slice(0, -1) : certs;
    const verdict = verifySvid(presented, bundle, { now: new Date(this.#now()), allowedIds: new Set([this.spiffeId]) });
    if (!verdict.ok) throw new AgentError('bad-response', `the issued certificate does not verify: ${verdict.check}: ${verdict.reason}`);
    const top = presented[presented.length - 1]!;
    const root = bundle.roots.find((r) => top.checkIssued(r) && top.verify(r.publicKey));
    return {
      keyPem,
      chain: presented,
      certChainPem: presented.map((c) => c.toString()).join(''),
      notAfter: leaf.validToDate.getTime(),
      issuedAt: this.#now(),
      serial: leaf.serialNumber.toLowerCase(),
      root: root?.fingerprint256 ?? '',
    };
  }

  #install(svid: Svid, reason: RotationReason, credential: string): void {
    this.#svid = svid;
    this.#snapshot = this.#makeSnapshot();
    this.#log('info', 'certificate-installed', {
      spiffeId: this.spiffeId,
      serial: svid.serial,
      notAfter: new Date(svid.notAfter).toISOString(),
      root: svid.root,
      reason,
      credential,
    });
    this.#scheduleRenewal();
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = setTimeout(() => this.#expired(svid), Math.max(0, svid.notAfter - this.#now()) + 1).unref();
    if (reason !== 'initial') this.emit('rotated', this.#snapshot, reason);
    this.#ack('');
  }

  #scheduleRenewal(delayMs?: number): void {
    const svid = this.#svid;
    if (!svid || this.#stopped) return;
    clearTimeout(this.#renewTimer);
    const delay = delayMs ?? renewalDelayMs(svid.issuedAt, svid.notAfter, this.#now(), this.#rotation, this.#random);
    this.#renewTimer = setTimeout(() => void this.#renew(this.#pendingReason).catch(() => {}), delay).unref();
  }

  /** One renewal attempt; on failure, the next attempt is scheduled with backoff. */
  async #renew(reason: RotationReason): Promise<void> {
    if (this.#stopped) return;
    if (this.#issuing) return this.#issuing;
    this.#pendingReason = 'scheduled';
    this.#issuing = (async () => {
      try {
        await this.#issue(reason);
        this.#issueFailures = 0;
      } catch (err) {
        this.#report(err, `renewal (${reason})`);
        if (!this.#stopped) {
          const delay = backoffDelayMs(this.#issueFailures++, this.#backoff, this.#random);
          this.#pendingReason = reason === 'scheduled' ? 'retry' : reason;
          this.#scheduleRenewal(delay);
        }
        throw err;
      } finally {
        this.#issuing = undefined;
      }
    })();
    return this.#issuing;
  }

  #expired(svid: Svid): void {
    if (this.#svid !== svid || this.#stopped) return;
    this.#log('error', 'certificate-expired', { spiffeId: this.spiffeId, serial: svid.serial });
    if (this.#snapshot) this.emit('expired', this.#snapshot);
  }

  // --- trust bundle -----------------------------------------------------------

  #openWatch(): void {
    const svid = this.#svid;
    if (this.#stopped || !svid || this.#watch) return;
    const cred = { kind: 'svid' as const, keyPem: svid.keyPem, certChainPem: svid.certChainPem };
    this.#watch = watchBundle(this.#connection(), cred, {
      onBundle: (b) => {
        this.#watchFailures = 0;
        this.#applyBundle(b);
      },
      onEnd: (err) => {
        this.#watch = undefined;
        if (this.#stopped) return;
        this.#report(err ?? new AgentError('watch-ended', 'bundle stream ended'), 'bundle stream');
        const delay = backoffDelayMs(this.#watchFailures++, this.#backoff, this.#random);
        clearTimeout(this.#watchTimer);
        this.#watchTimer = setTimeout(() => this.#openWatch(), delay).unref();
      },
    });
    this.#ack('');
  }

  #applyBundle(msg: TrustBundleMessage): void {
    const nack = (why: string) => {
      this.#log('warn', 'bundle-refused', { version: msg.version, reason: why });
      this.#report(new AgentError('bad-bundle', why), 'bundle');
      this.#ack(why, msg.version);
    };
    if (msg.trust_domain !== this.#id.trustDomain) return nack(`bundle is for trust domain "${msg.trust_domain}"`);
    const parsed = trustBundleFromPem(this.#id.trustDomain, msg.roots.join(''));
    if ('error' in parsed) return nack(parsed.error);
    if (msg.signing_root && !parsed.fingerprints.includes(msg.signing_root)) return nack('signing_root is not one of the roots');
    // The certificate in use must stay verifiable by the new bundle: a
    // bundle without its root would make every peer refuse this workload.
    const svid = this.#svid;
    const keepsOurRoot = !svid || parsed.fingerprints.includes(svid.root);

    const before = this.#bundle.trust.fingerprints;
    const changed = before.length !== parsed.fingerprints.length || before.some((fp, i) => fp !== parsed.fingerprints[i]);
    this.#bundle = { trust: parsed, version: msg.version, signingRoot: msg.signing_root };
    this.#snapshot = this.#svid ? this.#makeSnapshot() : undefined;
    if (changed && this.#snapshot) {
      this.#log('info', 'bundle-applied', { version: msg.version, roots: parsed.fingerprints.length, signingRoot: msg.signing_root });
      this.emit('bundle', this.#snapshot);
    }
    this.#ack('');
    if (this.#firstBundle) {
      this.#firstBundle.resolve();
      this.#firstBundle = undefined;
    }

    if (svid && !keepsOurRoot) {
      this.#log('warn', 'certificate-root-retired', { root: svid.root });
      this.#pendingReason = 'root-retired';
      this.#scheduleRenewal(0);
    } else if (svid && msg.signing_root && svid.root !== msg.signing_root && this.#pendingReason !== 'root-activated') {
      const regular = renewalDelayMs(svid.issuedAt, svid.notAfter, this.#now(), this.#rotation, this.#random);
      const delay = reissueDelayMs(this.#reissueSpreadMs, regular, this.#random);
      this.#log('info', 'root-activated', { signingRoot: msg.signing_root, certRoot: svid.root, reissueInMs: delay });
      this.#pendingReason = 'root-activated';
      this.#scheduleRenewal(delay);
    }
  }

  /** Reports the applied bundle version and the installed certificate; `error` makes it a NACK. */
  #ack(error: string, version = this.#bundle.version): void {
    const svid = this.#svid;
    this.#watch?.ack({
      version,
      cert_root: svid?.root ?? '',
      cert_serial: svid?.serial ?? '',
      cert_not_after: svid ? Math.floor(svid.notAfter / 1000) : 0,
      error,
    });
  }

  #makeSnapshot(): AgentSnapshot {
    const svid = this.#svid!;
    const b = this.#bundle;
    return Object.freeze({
      spiffeId: this.spiffeId,
      keyPem: svid.keyPem,
      certChainPem: svid.certChainPem,
      bundlePem: b.trust.pem,
      bundle: b.trust,
      notAfter: new Date(svid.notAfter),
      issuedAt: new Date(svid.issuedAt),
      serial: svid.serial,
      certRoot: svid.root,
      signingRoot: b.signingRoot,
      bundleVersion: b.version,
    });
  }

  // --- helpers ----------------------------------------------------------------

  #report(err: unknown, during: string): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.#log('warn', 'agent-error', { during, error: e.message, code: (e as { code?: unknown }).code });
    // An unheard 'error' event would throw; a CA outage must not crash the proxy.
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  /**
   * Waits between attempts at the first certificate. Not unref'd: a proxy
   * waiting for its identity has nothing else keeping the process alive.
   * stop() ends the wait.
   */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
