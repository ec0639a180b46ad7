// Series that both directions count into, on the proxy's one registry:
// whichever side registers first creates them, the other finds them
// (`metricOnce`), so the two must agree on names, labels and buckets, and
// this file is where they are written down.
//
// TLS handshakes, named after Envoy's ssl.handshake / ssl.connection_error:
//   meshward_tls_handshakes_total{direction,result}       result: success | failure
//   meshward_tls_handshake_duration_milliseconds{direction} successful ones,
//     from the ClientHello (inbound: its first byte; outbound: TCP connected)
//     to the verified peer.
// Failures by reason stay in each direction's own series
// (meshward_tls_handshake_failures_total{reason} inbound,
// meshward_outbound_handshake_failures_total{destination_service,check}
// outbound); `result="failure"` is their sum.

import { Counter, Histogram, type Registry } from '../../lib/prometheus.ts';
import { metricOnce } from '../../lib/metrics.ts';

/** Buckets of istio_request_duration_milliseconds (Istio's default, up to 10 s). */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]);
/** A local handshake takes about a millisecond; one across a region, tens. */
const HANDSHAKE_BUCKETS: readonly number[] = Object.freeze([0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 5000]);

export type TlsDirection = 'inbound' | 'outbound';


export interface TlsHandshakeSeries {
  succeeded(direction: TlsDirection, ms: number): void;
  failed(direction: TlsDirection): void;
}

export function tlsHandshakeSeries(registry: Registry): TlsHandshakeSeries {
  const registers = [registry];
  const total = metricOnce(
    registry,
    'meshward_tls_handshakes_total',
    () =>
      new Counter({
        name: 'meshward_tls_handshakes_total',
        help: 'Mesh TLS handshakes, by direction and result.',
        labelNames: ['direction', 'result'] as const,
        registers,
      }),
  );
  const duration = metricOnce(
    registry,
    'meshward_tls_handshake_duration_milliseconds',
    () =>
      new Histogram({
        name: 'meshward_tls_handshake_duration_milliseconds',
        help: 'Duration of successful mesh TLS handshakes, by direction.',
        labelNames: ['direction'] as const,
        buckets: [...HANDSHAKE_BUCKETS],
        registers,
      }),
  );
  return {
    succeeded(direction, ms) {
      total.inc({ direction, result: 'success' });
      duration.observe({ direction }, ms);
    },
    failed: (direction) => total.inc({ direction, result: 'failure' }),
  };
}
