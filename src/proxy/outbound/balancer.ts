// Endpoint choice for one upstream. ROUND_ROBIN walks the endpoints in
// order; LEAST_REQUEST is Envoy's power of two choices: two distinct random
// endpoints, the one with fewer requests in flight wins (the first on a tie).
// In-flight counts live on the balancer, which lives as long as one
// configuration of the upstream.

import type { Upstream, UpstreamEndpoint } from '../../api/proxy-config.ts';

export interface PickedEndpoint {
  readonly endpoint: UpstreamEndpoint;
  readonly index: number;
  /** Call once when the request or connection ends. */
  release(): void;
}

export class Balancer {
  readonly #endpoints: readonly UpstreamEndpoint[];
  readonly #policy: 'ROUND_ROBIN' | 'LEAST_REQUEST';
  readonly #inFlight: number[];
  readonly #random: () => number;
  #next = 0;

  constructor(upstream: Upstream, random: () => number = Math.random) {
    this.#endpoints = upstream.endpoints;
    this.#policy = upstream.loadBalancer ?? 'ROUND_ROBIN';
    this.#inFlight = upstream.endpoints.map(() => 0);
    this.#random = random;
  }

  /** In-flight requests per endpoint, in endpoint order. */
  inFlight(): readonly number[] {
    return [...this.#inFlight];
  }

  pick(): PickedEndpoint | null {
    const n = this.#endpoints.length;
    if (n === 0) return null;
    let index: number;
    if (this.#policy === 'LEAST_REQUEST' && n > 1) {
      const a = Math.floor(this.#random() * n);
      const b = (a + 1 + Math.floor(this.#random() * (n - 1))) % n;
      index = this.#inFlight[b]! < this.#inFlight[a]! ? b : a;
    } else {
      index = this.#next % n;
      this.#next = (this.#next + 1) % n;
    }
    this.#inFlight[index]!++;
    let released = false;
    return {
      endpoint: this.#endpoints[index]!,
      index,
      release: () => {
        if (released) return;
        released = true;
        this.#inFlight[index]!--;
      },
    };
  }
}
