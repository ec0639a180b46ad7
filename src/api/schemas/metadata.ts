// Kubernetes object metadata as Istio resources carry it. Only name,
// namespace, labels and annotations mean anything to meshward; the rest
// (uid, resourceVersion, managedFields...) is what `kubectl get -o yaml`
// leaves behind and is accepted unread.

import * as z from 'zod';
import { checked, withRules } from './build.ts';
import { labelKey, labelValue, namespaceName, objectName } from './values.ts';

const labels = withRules(z.record(z.string(), z.string()), (map, ctx) => {
  for (const [k, v] of Object.entries(map)) {
    const reason = labelKey(k) ?? (typeof v === 'string' ? labelValue(v) : null);
    if (reason !== null) ctx.error([k], reason);
  }
});

const annotations = withRules(z.record(z.string(), z.string()), (map, ctx) => {
  for (const k of Object.keys(map)) {
    const reason = labelKey(k);
    if (reason !== null) ctx.error([k], reason.replace('label key', 'annotation key'));
  }
});

export const objectMeta = z.looseObject({
  name: checked(objectName),
  namespace: checked(namespaceName).optional(),
  // `labels:` with nothing after it is null in YAML; Kubernetes treats it as absent.
  labels: labels.nullable().optional(),
  annotations: annotations.nullable().optional(),
});

export type ParsedObjectMeta = z.output<typeof objectMeta>;
