// The agents the CA server knows, and what each has: the last trust bundle
// version it acknowledged and the root its current certificate chains to.
// Root rotation advances only when every agent that counts is ready.
//
// Which agents count: those that have held a Watch stream (an agent that
// never watches cannot learn a new root, so waiting for it would be
// waiting forever; it shows in status as unmanaged), and that are still
// connected or hold a certificate that has not expired. An agent that
// closes its stream cleanly has stopped and is forgotten; one whose
// connection broke is waited for until its certificate expires, because it
// may come back with that certificate, and retiring its root early would
// cut it off.

export interface AgentRecord {
  agentId: string;
  spiffeId: string;
  /** Remote address of the last call. */
  peer: string;
  /** Has opened a Watch stream at least once. */
  managed: boolean;
  connected: boolean;
  /** Unix ms. */
  lastSeen: number;
  /** Highest trust bundle version acknowledged (ACK, not NACK). */
  bundleVersion: number;
  /** Last NACK's error, cleared by the next ACK. */
  lastNack: string | null;
  /**
   * Fingerprint of the root the agent's current certificate chains to, as
   * the agent reported it after installing that certificate. Issuing is not
   * enough: until the agent has swapped it in, its peers still see the old
   * one.
   */
  certRoot: string | null;
  certSerial: string | null;
  /** Unix ms: the later of what the agent reported and what was issued to it. */
  certNotAfter: number | null;
  /** The last certificate this server issued to the agent. */
  lastIssued: { root: string; serial: string; notAfter: number } | null;
}

export type AgentView = Readonly<AgentRecord>;

export class AgentRegistry {
  readonly #agents = new Map<string, AgentRecord>();
  readonly #now: () => number;
  readonly #onChange: () => void;

  /** `onChange` runs after every update, so waiters can re-check. */
  constructor(now: () => number, onChange: () => void) {
    this.#now = now;
    this.#onChange = onChange;
  }

  #get(agentId: string, spiffeId: string, peer: string): AgentRecord {
    let a = this.#agents.get(agentId);
    if (!a) {
      a = {
        agentId,
        spiffeId,
        peer,
        managed: false,
        connected: false,
        lastSeen: this.#now(),
        bundleVersion: 0,
        lastNack: null,
        certRoot: null,
        certSerial: null,
        certNotAfter: null,
        lastIssued: null,
      };
      this.#agents.set(agentId, a);
    }
    a.spiffeId = spiffeId;
    a.peer = peer;
    a.lastSeen = this.#now();
    return a;
  }

  /** A certificate was issued to the agent. */
  issued(agentId: string, spiffeId: string, peer: string, cert: { root: string; serial: string; notAfter: number }): void {
    const a = this.#get(agentId, spiffeId, peer);
    a.lastIssued = cert;
    a.certNotAfter = Math.max(a.certNotAfter ?? 0, cert.notAfter);
    this.#onChange();
  }

  connected(agentId: string, spiffeId: string, peer: string): void {
    const a = this.#get(agentId, spiffeId, peer);
    a.managed = true;
    a.connected = true;
    this.#onChange();
  }

  /**
   * What the agent reports on its stream. Its certificate facts are taken
   * as reported: they say what it has installed, and after a server restart
   * they are the only source.
   */
  acked(agentId: string, ack: { version: number; certRoot: string; certSerial: string; certNotAfter: number; error: string }): void {
    const a = this.#agents.get(agentId);
    if (!a) return;
    a.lastSeen = this.#now();
    if (ack.error) a.lastNack = ack.error;
    else {
      a.lastNack = null;
      a.bundleVersion = Math.max(a.bundleVersion, ack.version);
    }
    if (ack.certRoot) {
      a.certRoot = ack.certRoot;
      a.certSerial = ack.certSerial || a.certSerial;
      if (ack.certNotAfter > 0) a.certNotAfter = Math.max(a.certNotAfter ?? 0, ack.certNotAfter * 1000);
    }
    this.#onChange();
  }

  /** The stream broke: keep waiting for the agent while its certificate is valid. */
  disconnected(agentId: string): void {
    const a = this.#agents.get(agentId);
    if (!a) return;
    a.connected = false;
    a.lastSeen = this.#now();
    this.#onChange();
  }

  /** The agent closed its stream: it has stopped. */
  departed(agentId: string): void {
    if (this.#agents.delete(agentId)) this.#onChange();
  }

  /** Agents root rotation waits for (see the header). */
  counted(): AgentView[] {
    const now = this.#now();
    this.#prune(now);
    return [...this.#agents.values()].filter((a) => a.managed && (a.connected || (a.certNotAfter ?? 0) > now));
  }

  all(): AgentView[] {
    this.#prune(this.#now());
    return [...this.#agents.values()];
  }

  /** Drops agents that are gone and whose certificates have expired. */
  #prune(now: number): void {
    for (const [id, a] of this.#agents) {
      if (!a.connected && (a.certNotAfter ?? 0) <= now) this.#agents.delete(id);
    }
  }
}
