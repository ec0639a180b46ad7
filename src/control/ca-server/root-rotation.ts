// Root rotation without a failed handshake. The CA keeps several roots (it
// holds current and next, as SPIRE's ca/manager slots do); this drives the
// three steps and moves on only when every agent that counts (agents.ts)
// has confirmed the previous one:
//
//   1. distribute: a new root joins the bundle, not signing. Wait until
//      every agent has ACKed a bundle version that contains it, so every
//      workload trusts certificates from either root.
//   2. reissue: the new root signs. The server re-issues its own serving
//      certificate; agents see `signing_root` change and re-issue early
//      (spread by jitter). Wait until every agent reports that the
//      certificate it has installed chains to the new root.
//   3. retire: the old root leaves the bundle. Wait until every agent has
//      ACKed the bundle without it.
//
// Nothing here has a deadline of its own: retiring a root while one
// workload still depends on it is exactly the failure this exists to
// prevent. status() names whom each step waits for; an AbortSignal stops
// waiting, and a later rotateRoot() resumes from the CA's recorded state.

import type { CertificateAuthority } from '../../identity/ca/index.ts';
import type { AgentRegistry, AgentView } from './agents.ts';
import type { BundlePublisher } from './bundle.ts';

export type RotationStep = 'idle' | 'distributing' | 'reissuing' | 'retiring' | 'complete' | 'failed';

export interface RotationWait {
  agentId: string;
  spiffeId: string;
  needs: string;
  connected: boolean;
  lastSeen: string;
}

export interface RotationStatus {
  step: RotationStep;
  oldRoot: string | null;
  newRoot: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  /** Agents the current step waits for. */
  waitingFor: RotationWait[];
  history: { step: RotationStep; at: string; bundleVersion: number }[];
}

export interface RotationResult {
  oldRoots: string[];
  newRoot: string;
  bundleVersion: number;
  durationMs: number;
}

export interface RotationDeps {
  ca: CertificateAuthority;
  bundle: BundlePublisher;
  agents: AgentRegistry;
  /** A new serving certificate from the active root, and the credentials updated. */
  reissueServingCertificate(): Promise<void>;
  /** Pushes the bundle to streams and to the server's client-certificate roots. */
  publish(): void;
  /** Resolves at the next registry change, or after `ms`, whichever is first. */
  changed(ms: number): Promise<void>;
  log(level: 'info' | 'warn', event: string, fields: Record<string, unknown>): void;
  now(): number;
}

export interface RotateOptions {
  signal?: AbortSignal;
  /** How often waiting steps re-check when nothing reports. Default 250 ms. */
  recheckMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class RootRotation {
  readonly #d: RotationDeps;
  #status: RotationStatus = {
    step: 'idle',
    oldRoot: null,
    newRoot: null,
    startedAt: null,
    finishedAt: null,
    error: null,
    waitingFor: [],
    history: [],
  };
  #running: Promise<RotationResult> | null = null;

  constructor(deps: RotationDeps) {
    this.#d = deps;
  }

  status(): RotationStatus {
    return structuredClone(this.#status);
  }

  get step(): RotationStep {
    return this.#status.step;
  }

  /** Starts a rotation, resumes an interrupted one, or joins the one running. */
  rotate(opts: RotateOptions = {}): Promise<RotationResult> {
    this.#running ??= this.#run(opts).finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #run(opts: RotateOptions): Promise<RotationResult> {
    const { ca } = this.#d;
    const started = this.#d.now();
    const recheckMs = opts.recheckMs ?? 250;
    this.#status = { ...this.#status, startedAt: iso(started), finishedAt: null, error: null, history: [], waitingFor: [] };
    try {
      // Where the CA stands decides where to start: a root added but never
      // active means step 1 was interrupted; a trusted root that did sign
      // once means step 2 or 3 was.
      let roots = ca.roots();
      let added = roots.find((r) => r.state === 'trusted' && r.activatedAt === null);
      const active = roots.find((r) => r.state === 'active')!;
      const draining = roots.filter((r) => r.state === 'trusted' && r.activatedAt !== null).map((r) => r.fingerprint);

      let newRoot: string;
      let oldRoots: string[];
      if (draining.length > 0 && !added) {
        newRoot = active.fingerprint;
        oldRoots = draining;
      } else {
        oldRoots = [active.fingerprint, ...draining];
        added ??= await ca.addRoot();
        newRoot = added.fingerprint;
        this.#status.oldRoot = active.fingerprint;
        this.#status.newRoot = newRoot;
        const v1 = this.#enter('distributing');
        this.#d.log('info', 'root-rotation-distributing', { newRoot, bundleVersion: v1 });
        await this.#waitFor(
          (a) => a.bundleVersion >= v1,
          () => `bundle version ${v1} (has ${newRoot.slice(0, 11)}…)`,
          recheckMs,
          opts.signal,
        );
        await ca.activateRoot(newRoot);
        await this.#d.reissueServingCertificate();
      }
      this.#status.oldRoot = oldRoots[0] ?? null;
      this.#status.newRoot = newRoot;

      const v2 = this.#enter('reissuing');
      this.#d.log('info', 'root-rotation-reissuing', { newRoot, bundleVersion: v2 });
      await this.#waitFor((a) => a.certRoot === newRoot, () => `a certificate from ${newRoot.slice(0, 11)}…`, recheckMs, opts.signal);

      roots = ca.roots();
      for (const fp of oldRoots) {
        if (roots.find((r) => r.fingerprint === fp)?.state === 'trusted') await ca.retireRoot(fp);
      }
      const v3 = this.#enter('retiring');
      this.#d.log('info', 'root-rotation-retiring', { oldRoots, bundleVersion: v3 });
      await this.#waitFor((a) => a.bundleVersion >= v3, () => `bundle version ${v3} (without the old root)`, recheckMs, opts.signal);

      this.#enter('complete');
      const durationMs = this.#d.now() - started;
      this.#status.finishedAt = iso(this.#d.now());
      this.#d.log('info', 'root-rotation-complete', { newRoot, oldRoots, durationMs });
      return { oldRoots, newRoot, bundleVersion: v3, durationMs };
    } catch (err) {
      this.#status.step = 'failed';
      this.#status.error = (err as Error).message;
      this.#status.finishedAt = iso(this.#d.now());
      this.#d.log('warn', 'root-rotation-stopped', { error: (err as Error).message, waitingFor: this.#status.waitingFor.length });
      throw err;
    }
  }

  /** Publishes the CA's current bundle and records the step; returns the bundle version. */
  #enter(step: RotationStep): number {
    this.#d.publish();
    const version = this.#d.bundle.current.version;
    this.#status.step = step;
    this.#status.waitingFor = [];
    this.#status.history.push({ step, at: iso(this.#d.now()), bundleVersion: version });
    return version;
  }

  async #waitFor(ready: (a: AgentView) => boolean, needs: () => string, recheckMs: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const pending = this.#d.agents.counted().filter((a) => !ready(a));
      this.#status.waitingFor = pending.map((a) => ({
        agentId: a.agentId,
        spiffeId: a.spiffeId,
        needs: needs(),
        connected: a.connected,
        lastSeen: iso(a.lastSeen),
      }));
      if (pending.length === 0) return;
      await this.#d.changed(recheckMs);
    }
  }
}
