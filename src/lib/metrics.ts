// One helper for every module that registers Prometheus series.

import type { Registry } from './prometheus.ts';

/**
 * The metric `name` already on `registry`, or the one `create` registers:
 * a component started twice on one registry (a restart, several proxies in
 * one process, tests) shares its series instead of failing to register them.
 */
export function metricOnce<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
