// prom-client's four metric classes, without the rest of its entry point.
//
// `import … from 'prom-client'` evaluates everything the package's index
// exports: the Pushgateway client (node:https, node:zlib), the cluster
// aggregator (node:cluster) and the default process metrics
// (@opentelemetry/api). Nothing here uses them, and in a long-running
// process they hold memory for good: about 0.8 MiB of a sidecar's RSS, the
// rest of what they load being loaded anyway (docs/benchmarks.md). So the
// classes are taken from the package's own files, the very modules its
// index loads: a series created from these is one prom-client's registries
// know, and test/unit/lib/prometheus.test.ts checks they are the package's
// classes. Types still come from the package itself.

import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const load = createRequire(import.meta.url);

export const Registry = load('prom-client/lib/registry') as typeof PromClient.Registry;
export const Counter = load('prom-client/lib/counter') as typeof PromClient.Counter;
export const Gauge = load('prom-client/lib/gauge') as typeof PromClient.Gauge;
export const Histogram = load('prom-client/lib/histogram') as typeof PromClient.Histogram;

export type Registry = PromClient.Registry;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export type Histogram<T extends string = string> = PromClient.Histogram<T>;
