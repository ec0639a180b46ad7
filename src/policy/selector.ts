// Kubernetes label selectors as Istio uses them in `selector.matchLabels`.

import type { WorkloadSelector } from '../api/resources.ts';

/** Every label in the selector is present on the workload with the same value. An empty selector matches all. */
export function selectorMatches(
  selector: WorkloadSelector | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (selector === undefined) return true;
  for (const key in selector.matchLabels) {
    if (labels[key] !== selector.matchLabels[key]) return false;
  }
  return true;
}

/** A selector that selects specific workloads (not a namespace- or mesh-wide policy). */
export function hasWorkloadSelector(selector: WorkloadSelector | undefined): boolean {
  return selector !== undefined && Object.keys(selector.matchLabels).length > 0;
}
