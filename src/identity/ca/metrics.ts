// The CA's metrics, named as Istio names them (security/pkg/server/ca/
// monitoring.go), so an Istio dashboard or alert reads meshward unchanged.
// citadel_server_csr_sign_err_count keeps Istio's `error` label and values
// (CA_NOT_READY, CSR_ERROR, TTL_ERROR, CERT_GEN_ERROR) and adds `reason`,
// the CaError code, for the finer cut. Istio's
// citadel_server_authentication_failure_count belongs to whoever
// authenticates callers (the CA server), so it is not registered here.

import { Counter, Gauge, Registry } from '../../lib/prometheus.ts';
import { istioErrorType, type CaReason, type IstioErrorType } from './errors.ts';
import { metricOnce } from '../../lib/metrics.ts';

export interface CaMetrics {
  csrReceived(): void;
  issued(): void;
  /** `istioType` overrides the error label derived from the reason. */
  failed(reason: CaReason, istioType?: IstioErrorType): void;
  /** Expiry of the root the signing chain ends at, and of the signing certificate. */
  setExpiry(rootNotAfter: Date, signingNotAfter: Date): void;
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

interface Expiry {
  root: Date | null;
  chain: Date | null;
  now: () => Date;
}

/** The CA currently open on a registry: gauges read it at scrape time. */
const live = new WeakMap<Registry, Expiry>();


export function createCaMetrics(registry: Registry, now: () => Date): CaMetrics {
  const registers = [registry];
  const counter = (name: string, help: string) => metricOnce(registry, name, () => new Counter({ name, help, registers }));
  const csrCount = counter('citadel_server_csr_count', 'The number of CSRs received by Citadel server.');
  const success = counter('citadel_server_success_cert_issuance_count', 'The number of certificates issuances that have succeeded.');
  const parseErrors = counter('citadel_server_csr_parsing_err_count', 'The number of errors occurred when parsing the CSR.');
  const signErrors = metricOnce(
    registry,
    'citadel_server_csr_sign_err_count',
    () =>
      new Counter({
        name: 'citadel_server_csr_sign_err_count',
        help: 'The number of errors occurred when signing the CSR.',
        labelNames: ['error', 'reason'] as const,
        registers,
      }),
  );

  const expiry: Expiry = { root: null, chain: null, now };
  live.set(registry, expiry);
  const gauge = (name: string, help: string, value: (e: Expiry) => number | null) =>
    metricOnce(
      registry,
      name,
      () =>
        new Gauge({
          name,
          help,
          registers,
          collect() {
            const e = live.get(registry);
            const v = e ? value(e) : null;
            if (v !== null) this.set(v);
          },
        }),
    );
  gauge(
    'citadel_server_root_cert_expiry_timestamp',
    'The unix timestamp, in seconds, when Citadel root cert will expire. A negative time indicates the cert is expired.',
    (e) => (e.root ? seconds(e.root) : null),
  );
  gauge(
    'citadel_server_root_cert_expiry_seconds',
    'The time remaining, in seconds, before the root cert will expire.',
    (e) => (e.root ? (e.root.getTime() - e.now().getTime()) / 1000 : null),
  );
  gauge(
    'citadel_server_cert_chain_expiry_timestamp',
    'The unix timestamp, in seconds, when Citadel cert chain will expire. A negative time indicates the cert is expired.',
    (e) => (e.chain ? seconds(e.chain) : null),
  );
  gauge(
    'citadel_server_cert_chain_expiry_seconds',
    'The time remaining, in seconds, before the cert chain will expire.',
    (e) => (e.chain ? (e.chain.getTime() - e.now().getTime()) / 1000 : null),
  );

  return {
    csrReceived: () => csrCount.inc(),
    issued: () => success.inc(),
    failed(reason, istioType) {
      if (reason === 'malformed-csr' || reason === 'csr-too-large') parseErrors.inc();
      signErrors.inc({ error: istioType ?? istioErrorType(reason), reason });
    },
    setExpiry(rootNotAfter, signingNotAfter) {
      expiry.root = rootNotAfter;
      expiry.chain = signingNotAfter;
    },
  };
}
