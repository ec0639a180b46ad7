// The mesh's certificate authority: it signs workload certificates for
// identities someone else has authenticated, holds the roots workloads
// trust, and rotates them with overlap.
//
//   const ca = await CertificateAuthority.open({ stateDir: '.meshward/ca', trustDomain: 'cluster.local' });
//   const { certChainPem } = await ca.sign({ csrPem, identity: { uri, trustDomain: 'cluster.local' } });
//
// Two modes, as Istio's CA: `self-signed` creates its own root on first
// start and keeps it in the state directory; `plugin` signs with an
// intermediate from a cacerts directory (see plugin.ts). Either way the
// chain handed out is what Istio returns in cert_chain: the leaf, the
// signing chain, and last the root it ends at (agents read the last element
// as the root).
//
// The caller little, the log much (Istio security/pkg/server/ca/server.go):
// a refused request gets a CaError whose message names only the kind of
// problem; the `log` option receives the detail; a metric counts it.

import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Registry } from '../../lib/prometheus.ts';
import { createLeafCertificate, createRootCertificate, CLOCK_SKEW_MS, keyIdentifierOf, randomSerial } from './certs.ts';
import { parseCsr } from './csr.ts';
import { CaError } from './errors.ts';
import { CA_KEY_TYPES, generateCaKey, importCaKey, type CaKeyType, type SigningKey } from './keys.ts';
import { createCaMetrics, type CaMetrics } from './metrics.ts';
import { parseSpiffeId, validateTrustDomain } from '../spiffe.ts';
import { loadPluginCa, proveKeyMatches } from './plugin.ts';
import {
  BUNDLE_FILE,
  KEY_MODE,
  PUBLIC_MODE,
  acquireLock,
  ensureDir,
  readState,
  removeFile,
  rootCertPath,
  rootKeyPath,
  rotationPhaseOf,
  stateExists,
  writeFileAtomic,
  writeState,
  type CaMode,
  type RootRecord,
  type RootState,
  type RotationPhase,
  type StateFile,
} from './state.ts';
import { encodePem, fingerprintOf, normalizeFingerprint, parseCertificates, x509 } from './x509.ts';

export { CaError, type CaReason } from './errors.ts';
export type { CaKeyType } from './keys.ts';
export type { CaMode, RootState, RotationPhase } from './state.ts';
export { MAX_CSR_BYTES } from './csr.ts';

/** Istio's defaults: DEFAULT_WORKLOAD_CERT_TTL, MAX_WORKLOAD_CERT_TTL, CITADEL_SELF_SIGNED_CA_CERT_TTL. */
export const DEFAULT_WORKLOAD_TTL_SECONDS = 24 * 60 * 60;
export const DEFAULT_MAX_WORKLOAD_TTL_SECONDS = 90 * 24 * 60 * 60;
export const DEFAULT_ROOT_VALIDITY_DAYS = 3650;
export const DEFAULT_KEY_TYPE: CaKeyType = 'ec-p256';
export { DEFAULT_STATE_DIR, DEFAULT_TRUST_DOMAIN } from './defaults.ts';

export interface CaLogEntry {
  level: 'info' | 'warn' | 'error';
  /** Stable event name, e.g. `csr-refused`, `root-activated`. */
  event: string;
  message: string;
  fields?: Readonly<Record<string, string | number>>;
}

export interface CaOptions {
  stateDir: string;
  trustDomain: string;
  /** Key type of roots this CA generates (first start and addRoot). Default ec-p256. */
  keyType?: CaKeyType;
  rootValidityDays?: number;
  /** Lifetime when the request asks for none (or for zero). Default 24 h. */
  workloadTtlSeconds?: number;
  /** Requests above this are refused with ttl-too-long, as Istio does. Default 90 days. */
  maxWorkloadTtlSeconds?: number;
  /** A cacerts directory: sign with its intermediate instead of a self-signed root. */
  pluginDir?: string;
  registry?: Registry;
  now?: () => Date;
  log?: (entry: CaLogEntry) => void;
}

/** The identity the caller was authenticated as: the only name the certificate gets. */
export interface CallerIdentity {
  uri: string;
  trustDomain: string;
}

export interface SignRequest {
  csrPem: string;
  identity: CallerIdentity;
  /** Requested lifetime; absent, zero or negative means the default. */
  ttlSeconds?: number;
}

export interface SignResult {
  /** One PEM certificate per element: leaf first, then the signing chain, the root last. */
  certChainPem: string[];
  notAfter: Date;
  /** Serial number, lower-case hex. */
  serial: string;
}

export interface RootInfo {
  fingerprint: string;
  subject: string;
  state: RootState;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
  activatedAt: Date | null;
  deactivatedAt: Date | null;
  retiredAt: Date | null;
  /**
   * For a root that stopped signing: when the last certificate it can have
   * signed expires, so retiring it from then on breaks no workload.
   */
  drainedAt: Date | null;
}

/** JSON-ready: what `meshward ca status -o json` prints. */
export interface CaStatus {
  trustDomain: string;
  mode: CaMode;
  stateDir: string;
  pluginDir: string | null;
  roots: { fingerprint: string; subject: string; notAfter: string; state: RootState; activatedAt: string | null; drainedAt: string | null }[];
  issued: number;
  workloadTtlSeconds: number;
  maxWorkloadTtlSeconds: number;
  rotationPhase: RotationPhase;
}

/** What signs right now. Replaced whole on rotation; a request keeps the one it started with. */
interface Signer {
  cert: x509.X509Certificate;
  key: SigningKey;
  keyId: string;
  /** From the signing certificate up to its root, one PEM each. */
  chainPem: string[];
  /** No leaf outlives any certificate of its chain. */
  notAfterCap: Date;
  rootNotAfter: Date;
}

const noLog = () => {};

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new CaError('invalid-config', `${name} must be a positive integer (got ${String(value)})`);
  return v;
}

function certPem(cert: x509.X509Certificate): string {
  return encodePem('CERTIFICATE', cert.rawData);
}

async function makeSigner(cert: x509.X509Certificate, key: SigningKey, path: x509.X509Certificate[]): Promise<Signer> {
  const notAfterCap = new Date(Math.min(...path.map((c) => c.notAfter.getTime())));
  return { cert, key, keyId: await keyIdentifierOf(cert), chainPem: path.map(certPem), notAfterCap, rootNotAfter: path[path.length - 1]!.notAfter };
}

function rootRecord(cert: x509.X509Certificate, state: RootState, now: Date): RootRecord {
  return {
    fingerprint: fingerprintOf(cert),
    state,
    subject: cert.subject,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    createdAt: now.toISOString(),
    activatedAt: state === 'active' ? now.toISOString() : null,
    deactivatedAt: null,
    retiredAt: null,
  };
}

const date = (s: string | null) => (s === null ? null : new Date(s));

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly stateDir: string;
  #state: StateFile;
  #signer: Signer;
  /** Certificates of the roots in the bundle, by fingerprint. */
  #rootCerts: Map<string, x509.X509Certificate>;
  readonly #metrics: CaMetrics;
  readonly #now: () => Date;
  readonly #log: (entry: CaLogEntry) => void;
  readonly #unlock: () => Promise<void>;
  #closed = false;
  /** Every write to the state directory, and every root change, runs here one at a time. */
  #queue: Promise<void> = Promise.resolve();
  #countWriteQueued = false;

  private constructor(init: {
    stateDir: string;
    state: StateFile;
    signer: Signer;
    rootCerts: Map<string, x509.X509Certificate>;
    metrics: CaMetrics;
    now: () => Date;
    log: (entry: CaLogEntry) => void;
    unlock: () => Promise<void>;
  }) {
    this.trustDomain = init.state.trustDomain;
    this.stateDir = init.stateDir;
    this.#state = init.state;
    this.#signer = init.signer;
    this.#rootCerts = init.rootCerts;
    this.#metrics = init.metrics;
    this.#now = init.now;
    this.#log = init.log;
    this.#unlock = init.unlock;
    this.#metrics.setExpiry(init.signer.rootNotAfter, init.signer.cert.notAfter);
  }

  /** Creates the CA on first start (a new root, or the plug-in CA checked and recorded), loads it after. */
  static async open(opts: CaOptions): Promise<CertificateAuthority> {
    const now = opts.now ?? (() => new Date());
    const log = opts.log ?? noLog;
    const tdProblem = validateTrustDomain(opts.trustDomain);
    if (tdProblem) throw new CaError('invalid-config', tdProblem);
    if (opts.keyType !== undefined && !CA_KEY_TYPES.includes(opts.keyType)) {
      throw new CaError('invalid-config', `key type must be one of ${CA_KEY_TYPES.join(', ')} (got ${String(opts.keyType)})`);
    }
    const stateDir = resolve(opts.stateDir);
    await ensureDir(stateDir);
    await ensureDir(join(stateDir, 'roots'));
    await ensureDir(join(stateDir, 'keys'));
    const unlock = await acquireLock(stateDir);
    try {
      const existing = (await stateExists(stateDir)) ? await readState(stateDir) : null;
      if (existing && existing.trustDomain !== opts.trustDomain) {
        throw new CaError('invalid-state', `${stateDir} holds the CA of trust domain "${existing.trustDomain}", not "${opts.trustDomain}"`);
      }
      const pluginDir = opts.pluginDir !== undefined ? resolve(opts.pluginDir) : (existing?.pluginDir ?? null);
      const mode: CaMode = pluginDir !== null ? 'plugin' : 'self-signed';
      if (existing && existing.mode !== mode) {
        throw new CaError('invalid-config', `${stateDir} holds a ${existing.mode} CA; use another state directory for a ${mode} CA`);
      }
      const settings = {
        keyType: opts.keyType ?? existing?.keyType ?? DEFAULT_KEY_TYPE,
        rootValidityDays: positiveInteger('rootValidityDays', opts.rootValidityDays, existing?.rootValidityDays ?? DEFAULT_ROOT_VALIDITY_DAYS),
        workloadTtlSeconds: positiveInteger('workloadTtlSeconds', opts.workloadTtlSeconds, existing?.workloadTtlSeconds ?? DEFAULT_WORKLOAD_TTL_SECONDS),
        maxWorkloadTtlSeconds: positiveInteger(
          'maxWorkloadTtlSeconds',
          opts.maxWorkloadTtlSeconds,
          existing?.maxWorkloadTtlSeconds ?? DEFAULT_MAX_WORKLOAD_TTL_SECONDS,
        ),
      };
      if (settings.workloadTtlSeconds > settings.maxWorkloadTtlSeconds) {
        throw new CaError(
          'invalid-config',
          `workloadTtlSeconds (${settings.workloadTtlSeconds}) is greater than maxWorkloadTtlSeconds (${settings.maxWorkloadTtlSeconds})`,
        );
      }
      const base: StateFile = {
        version: 1,
        trustDomain: opts.trustDomain,
        mode,
        pluginDir,
        ...settings,
        issued: existing?.issued ?? 0,
        rotationPhase: 'none',
        roots: existing?.roots ?? [],
        updatedAt: now().toISOString(),
      };

      const loaded =
        mode === 'plugin'
          ? await CertificateAuthority.#loadPlugin(base, pluginDir!, now())
          : existing
            ? await CertificateAuthority.#loadSelfSigned(stateDir, base)
            : await CertificateAuthority.#createSelfSigned(stateDir, base, now());
      loaded.state.rotationPhase = rotationPhaseOf(loaded.state.roots);
      await writeState(stateDir, loaded.state);
      await writeFileAtomic(join(stateDir, BUNDLE_FILE), [...loaded.rootCerts.values()].map(certPem).join(''), PUBLIC_MODE);

      const ca = new CertificateAuthority({
        stateDir,
        state: loaded.state,
        signer: loaded.signer,
        rootCerts: loaded.rootCerts,
        metrics: createCaMetrics(opts.registry ?? new Registry(), now),
        now,
        log,
        unlock,
      });
      log({
        level: 'info',
        event: existing ? 'ca-loaded' : 'ca-created',
        message: `${mode} CA for trust domain ${opts.trustDomain} ${existing ? 'loaded from' : 'created in'} ${stateDir}`,
        fields: { signer: fingerprintOf(loaded.signer.cert), roots: loaded.rootCerts.size },
      });
      if (loaded.signer.notAfterCap.getTime() <= now().getTime()) {
        log({
          level: 'error',
          event: 'signing-chain-expired',
          message: `the signing chain expired on ${loaded.signer.notAfterCap.toISOString()}; nothing can be signed until a new root is activated`,
        });
      }
      return ca;
    } catch (err) {
      await unlock();
      throw err;
    }
  }

  static async #createSelfSigned(stateDir: string, state: StateFile, now: Date) {
    const { cert, key } = await CertificateAuthority.#newRoot(stateDir, state, now);
    state.roots = [rootRecord(cert, 'active', now)];
    const fp = fingerprintOf(cert);
    return { state, signer: await makeSigner(cert, key, [cert]), rootCerts: new Map([[fp, cert]]) };
  }

  /** Generates a root and writes its key (0600) and certificate; the caller records it. */
  static async #newRoot(stateDir: string, state: StateFile, now: Date) {
    const { key, pkcs8Pem } = await generateCaKey(state.keyType);
    const cert = await createRootCertificate({ trustDomain: state.trustDomain, key, validityDays: state.rootValidityDays, now });
    const fp = fingerprintOf(cert);
    await writeFileAtomic(rootKeyPath(stateDir, fp), pkcs8Pem, KEY_MODE);
    await writeFileAtomic(rootCertPath(stateDir, fp), certPem(cert), PUBLIC_MODE);
    return { cert, key };
  }

  static async #readRootCert(stateDir: string, record: RootRecord): Promise<x509.X509Certificate> {
    const path = rootCertPath(stateDir, record.fingerprint);
    let certs: x509.X509Certificate[];
    try {
      certs = parseCertificates(await readFile(path, 'utf8'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CaError('invalid-state', `${path}: ${code ? `cannot read (${code})` : (err as Error).message}`);
    }
    if (certs.length !== 1 || fingerprintOf(certs[0]!) !== record.fingerprint) {
      throw new CaError('invalid-state', `${path}: does not hold root ${record.fingerprint}`);
    }
    return certs[0]!;
  }

  /** Loads a root's key and proves it is that root's key. */
  static async #readRootKey(stateDir: string, cert: x509.X509Certificate, trustDomain: string): Promise<SigningKey> {
    const fp = fingerprintOf(cert);
    const path = rootKeyPath(stateDir, fp);
    let key: SigningKey;
    try {
      key = importCaKey(await readFile(path, 'utf8'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CaError('invalid-state', `${path}: ${code ? `cannot read (${code})` : (err as Error).message}`);
    }
    const proof = await proveKeyMatches(cert, key, trustDomain);
    if ('problem' in proof) throw new CaError('invalid-state', `${path}: ${proof.problem.replace('its certificate', `root ${fp}`)}`);
    return key;
  }

  static async #loadSelfSigned(stateDir: string, state: StateFile) {
    const rootCerts = new Map<string, x509.X509Certificate>();
    let signer: Signer | undefined;
    for (const record of state.roots) {
      if (record.state === 'retired') continue;
      const cert = await CertificateAuthority.#readRootCert(stateDir, record);
      rootCerts.set(record.fingerprint, cert);
      if (record.state === 'active') {
        // An expired root still loads, so a new one can be added and activated; sign() refuses meanwhile.
        const key = await CertificateAuthority.#readRootKey(stateDir, cert, state.trustDomain);
        signer = await makeSigner(cert, key, [cert]);
      }
    }
    if (!signer) throw new CaError('invalid-state', `${stateDir}: no active root`);
    return { state, signer, rootCerts: CertificateAuthority.#activeFirst(rootCerts, state.roots) };
  }

  static async #loadPlugin(state: StateFile, pluginDir: string, now: Date) {
    const plugin = await loadPluginCa(pluginDir, state.trustDomain, now);
    const anchor = fingerprintOf(plugin.path[plugin.path.length - 1]!);
    const previous = new Map(state.roots.map((r) => [r.fingerprint, r]));
    const rootCerts = new Map<string, x509.X509Certificate>();
    state.roots = plugin.roots.map((cert) => {
      const fp = fingerprintOf(cert);
      rootCerts.set(fp, cert);
      const st: RootState = fp === anchor ? 'active' : 'trusted';
      const before = previous.get(fp);
      return before ? { ...before, state: st } : rootRecord(cert, st, now);
    });
    const signer = await makeSigner(plugin.signingCert, plugin.signingKey, plugin.path);
    return { state, signer, rootCerts: CertificateAuthority.#activeFirst(rootCerts, state.roots) };
  }

  /** The bundle lists the signing root first (its expiry is the one Istio's root gauge reports). */
  static #activeFirst(certs: Map<string, x509.X509Certificate>, records: readonly RootRecord[]) {
    const active = records.find((r) => r.state === 'active')?.fingerprint;
    return new Map([...certs].sort(([a], [b]) => Number(b === active) - Number(a === active)));
  }

  /** Reads a state directory's status without opening the CA: no lock, no keys. */
  static async readStatus(stateDir: string): Promise<CaStatus> {
    const dir = resolve(stateDir);
    if (!(await stateExists(dir))) throw new CaError('invalid-state', `${dir}: no CA here (state.json is missing)`);
    return statusOf(dir, await readState(dir));
  }

  /**
   * Signs `csrPem` for `identity`. The certificate's one name is
   * identity.uri; the CSR contributes its public key and nothing else, and a
   * CSR asking for any other name is refused.
   */
  async sign(req: SignRequest): Promise<SignResult> {
    this.#metrics.csrReceived();
    const signer = this.#signer;
    let generating = false;
    try {
      if (this.#closed) throw new CaError('ca-unavailable', 'the CA is closed');
      const uri = this.#callerId(req?.identity);

      const csr = await parseCsr(req.csrPem);
      const foreign = csr.requestedNames.filter((n) => n !== `uri:${uri}`);
      if (foreign.length > 0) {
        throw new CaError('identity-mismatch', `CSR asks for ${foreign.join(', ')}; the caller is ${uri}`);
      }
      const ttlSeconds = this.#ttl(req.ttlSeconds);

      const now = this.#now();
      // Certificates hold whole seconds; rounding down here keeps what we return equal to what we sign.
      const notAfter = new Date(Math.floor(Math.min(now.getTime() + ttlSeconds * 1000, signer.notAfterCap.getTime()) / 1000) * 1000);
      if (notAfter.getTime() <= now.getTime()) {
        throw new CaError('ca-unavailable', `the signing chain expired on ${signer.notAfterCap.toISOString()}`);
      }
      let leaf: x509.X509Certificate;
      generating = true;
      try {
        leaf = await createLeafCertificate({
          publicKey: csr.publicKey,
          spiffeId: uri,
          issuer: signer.cert,
          issuerKeyId: signer.keyId,
          issuerKey: signer.key,
          notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
          notAfter,
          serial: randomSerial(),
        });
      } catch (err) {
        throw new CaError('ca-unavailable', `certificate generation failed: ${(err as Error).message}`);
      }
      this.#state.issued += 1;
      this.#persistSoon();
      this.#metrics.issued();
      this.#log({
        level: 'info',
        event: 'certificate-issued',
        message: `issued ${uri} until ${notAfter.toISOString()}`,
        fields: { identity: uri, serial: leaf.serialNumber, key: csr.key.label, ttlSeconds },
      });
      return { certChainPem: [certPem(leaf), ...signer.chainPem], notAfter, serial: leaf.serialNumber.toLowerCase() };
    } catch (err) {
      const caErr = err instanceof CaError ? err : new CaError('ca-unavailable', `unexpected: ${(err as Error).message}`);
      this.#metrics.failed(caErr.reason, generating ? 'CERT_GEN_ERROR' : undefined);
      this.#log({
        level: caErr.reason === 'ca-unavailable' ? 'error' : 'warn',
        event: 'csr-refused',
        message: caErr.detail,
        fields: { reason: caErr.reason, identity: typeof req?.identity?.uri === 'string' ? req.identity.uri : '(none)' },
      });
      throw caErr;
    }
  }

  /** The caller's SPIFFE ID, if it is a workload ID in this trust domain. */
  #callerId(identity: CallerIdentity | undefined): string {
    const parsed = parseSpiffeId(identity?.uri as string);
    let problem: string | null = null;
    if ('error' in parsed) problem = `caller identity is not a SPIFFE ID: ${parsed.error}`;
    else if (parsed.trustDomain !== this.trustDomain || identity?.trustDomain !== this.trustDomain) {
      problem = `caller ${parsed.uri} is not in trust domain ${this.trustDomain}`;
    } else if (parsed.path === '') problem = `caller ${parsed.uri} names a trust domain, not a workload`;
    if (problem) throw new CaError('identity-mismatch', problem);
    return (parsed as { uri: string }).uri;
  }

  /** Istio's rule: absent or non-positive → the default; above the maximum → refused. */
  #ttl(requested: number | undefined): number {
    if (requested === undefined || requested === null || Number.isNaN(requested) || requested <= 0) return this.#state.workloadTtlSeconds;
    if (typeof requested !== 'number' || requested > this.#state.maxWorkloadTtlSeconds) {
      throw new CaError(
        'ttl-too-long',
        `requested TTL ${String(requested)}s is greater than the max allowed TTL ${this.#state.maxWorkloadTtlSeconds}s`,
      );
    }
    return requested;
  }

  /** Every root workloads should trust (active first), PEM concatenated. */
  trustBundlePem(): string {
    return [...this.#rootCerts.values()].map(certPem).join('');
  }

  /** Every root this CA knows, retired ones included (they are no longer in the bundle). */
  roots(): RootInfo[] {
    const maxTtlMs = this.#state.maxWorkloadTtlSeconds * 1000;
    return this.#state.roots.map((r) => ({
      fingerprint: r.fingerprint,
      subject: r.subject,
      state: r.state,
      notBefore: new Date(r.notBefore),
      notAfter: new Date(r.notAfter),
      createdAt: new Date(r.createdAt),
      activatedAt: date(r.activatedAt),
      deactivatedAt: date(r.deactivatedAt),
      retiredAt: date(r.retiredAt),
      drainedAt: r.deactivatedAt === null ? null : new Date(Date.parse(r.deactivatedAt) + maxTtlMs),
    }));
  }

  get rotationPhase(): RotationPhase {
    return this.#state.rotationPhase;
  }

  status(): CaStatus {
    return statusOf(this.stateDir, this.#state);
  }

  /**
   * Phase 1 of a rotation: a new self-signed root, in the bundle from now
   * on, not signing yet. Activate it once every workload has the new bundle.
   */
  addRoot(): Promise<RootInfo> {
    return this.#exclusive(() => this.#addRoot());
  }

  async #addRoot(): Promise<RootInfo> {
    this.#assertOpen();
    this.#assertSelfSigned('add a root');
    const waiting = this.#state.roots.find((r) => r.state === 'trusted' && r.activatedAt === null);
    if (waiting) throw new CaError('root-in-use', `root ${waiting.fingerprint} was added and is not active yet; activate or retire it first`);
    const now = this.#now();
    const { cert } = await CertificateAuthority.#newRoot(this.stateDir, this.#state, now);
    const record = rootRecord(cert, 'trusted', now);
    const rootCerts = new Map(this.#rootCerts);
    rootCerts.set(record.fingerprint, cert);
    await this.#commit([...this.#state.roots, record], rootCerts);
    this.#log({ level: 'info', event: 'root-added', message: `root ${record.fingerprint} added to the trust bundle; not signing yet` });
    return this.#info(record.fingerprint);
  }

  /** Phase 2: `fingerprint` signs from now on; the previous signer stays in the bundle. */
  activateRoot(fingerprint: string): Promise<RootInfo> {
    return this.#exclusive(() => this.#activateRoot(fingerprint));
  }

  async #activateRoot(fingerprint: string): Promise<RootInfo> {
    this.#assertOpen();
    this.#assertSelfSigned('activate a root');
    const target = this.#find(fingerprint);
    if (target.state === 'active') return this.#info(target.fingerprint);
    if (target.state === 'retired') throw new CaError('root-in-use', `root ${target.fingerprint} is retired; add a new root instead`);
    const now = this.#now();
    const cert = this.#rootCerts.get(target.fingerprint)!;
    if (cert.notAfter.getTime() <= now.getTime()) throw new CaError('root-in-use', `root ${target.fingerprint} expired on ${cert.notAfter.toISOString()}`);
    const key = await CertificateAuthority.#readRootKey(this.stateDir, cert, this.trustDomain);
    const signer = await makeSigner(cert, key, [cert]);
    const iso = now.toISOString();
    const roots = this.#state.roots.map((r): RootRecord => {
      if (r.fingerprint === target.fingerprint) return { ...r, state: 'active', activatedAt: iso };
      if (r.state === 'active') return { ...r, state: 'trusted', deactivatedAt: iso };
      return r;
    });
    await this.#commit(roots, CertificateAuthority.#activeFirst(this.#rootCerts, roots));
    this.#signer = signer;
    this.#metrics.setExpiry(signer.rootNotAfter, signer.cert.notAfter);
    this.#log({ level: 'info', event: 'root-activated', message: `root ${target.fingerprint} signs new certificates` });
    return this.#info(target.fingerprint);
  }

  /** Phase 3: `fingerprint` leaves the bundle and its key is deleted. The active root cannot be retired. */
  retireRoot(fingerprint: string): Promise<RootInfo> {
    return this.#exclusive(() => this.#retireRoot(fingerprint));
  }

  async #retireRoot(fingerprint: string): Promise<RootInfo> {
    this.#assertOpen();
    this.#assertSelfSigned('retire a root');
    const target = this.#find(fingerprint);
    if (target.state === 'active') throw new CaError('root-in-use', `root ${target.fingerprint} is the active root; activate another root first`);
    if (target.state === 'retired') return this.#info(target.fingerprint);
    const iso = this.#now().toISOString();
    const roots = this.#state.roots.map((r): RootRecord => (r.fingerprint === target.fingerprint ? { ...r, state: 'retired', retiredAt: iso } : r));
    const rootCerts = new Map(this.#rootCerts);
    rootCerts.delete(target.fingerprint);
    await this.#commit(roots, rootCerts);
    await removeFile(rootKeyPath(this.stateDir, target.fingerprint));
    this.#log({ level: 'info', event: 'root-retired', message: `root ${target.fingerprint} removed from the trust bundle; its key is deleted` });
    return this.#info(target.fingerprint);
  }

  /** Writes pending state and releases the state directory. Signing afterwards fails with ca-unavailable. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#exclusive(() => this.#writeState());
    } finally {
      await this.#unlock();
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new CaError('ca-unavailable', 'the CA is closed');
  }

  #assertSelfSigned(what: string): void {
    if (this.#state.mode !== 'self-signed') {
      throw new CaError('not-supported', `cannot ${what} on a plug-in CA: rotate by replacing the files in ${this.#state.pluginDir}`);
    }
  }

  #find(fingerprint: string): RootRecord {
    const want = normalizeFingerprint(fingerprint);
    const matches = want.length >= 8 ? this.#state.roots.filter((r) => normalizeFingerprint(r.fingerprint).startsWith(want)) : [];
    if (matches.length !== 1) {
      throw new CaError('unknown-root', matches.length > 1 ? `fingerprint ${fingerprint} matches several roots` : `no root with fingerprint ${fingerprint}`);
    }
    return matches[0]!;
  }

  #info(fingerprint: string): RootInfo {
    return this.roots().find((r) => r.fingerprint === fingerprint)!;
  }

  /** Runs `fn` after every write and root change queued before it. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #writeState(): Promise<void> {
    return writeState(this.stateDir, { ...this.#state, updatedAt: this.#now().toISOString() });
  }

  /**
   * Records a new set of roots (inside #exclusive): state.json and bundle.pem
   * are written before the change is visible to sign() or trustBundlePem().
   */
  async #commit(roots: RootRecord[], rootCerts: Map<string, x509.X509Certificate>): Promise<void> {
    const next = (): StateFile => ({ ...this.#state, roots, rotationPhase: rotationPhaseOf(roots), updatedAt: this.#now().toISOString() });
    await writeState(this.stateDir, next());
    await writeFileAtomic(join(this.stateDir, BUNDLE_FILE), [...rootCerts.values()].map(certPem).join(''), PUBLIC_MODE);
    this.#state = next(); // taken again: sign() may have counted meanwhile
    this.#rootCerts = rootCerts;
  }

  /**
   * The issued count is written behind signing: one write queued at a time,
   * so a burst of signatures costs a few writes, not one each.
   */
  #persistSoon(): void {
    if (this.#countWriteQueued) return;
    this.#countWriteQueued = true;
    this.#exclusive(() => {
      this.#countWriteQueued = false;
      return this.#writeState();
    }).catch((err: unknown) => {
      this.#log({ level: 'error', event: 'state-write-failed', message: `cannot write ${this.stateDir}: ${(err as Error).message}` });
    });
  }
}

function statusOf(stateDir: string, s: StateFile): CaStatus {
  const maxTtlMs = s.maxWorkloadTtlSeconds * 1000;
  return {
    trustDomain: s.trustDomain,
    mode: s.mode,
    stateDir,
    pluginDir: s.pluginDir,
    roots: s.roots.map((r) => ({
      fingerprint: r.fingerprint,
      subject: r.subject,
      notAfter: r.notAfter,
      state: r.state,
      activatedAt: r.activatedAt,
      drainedAt: r.deactivatedAt === null ? null : new Date(Date.parse(r.deactivatedAt) + maxTtlMs).toISOString(),
    })),
    issued: s.issued,
    workloadTtlSeconds: s.workloadTtlSeconds,
    maxWorkloadTtlSeconds: s.maxWorkloadTtlSeconds,
    rotationPhase: s.rotationPhase,
  };
}
