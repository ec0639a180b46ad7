// Per-workload values (its policy view, its JWT rules, its mTLS modes) are
// built once and reused. A proxy asks with the same labels object on every
// request, so that case is a WeakMap hit with no key to build; other callers
// pay for a canonical key made of the namespace and sorted labels.

type Labels = Readonly<Record<string, string>>;

export class WorkloadMemo<T> {
  readonly #build: (namespace: string, labels: Labels) => T;
  readonly #byKey = new Map<string, T>();
  readonly #byLabels = new WeakMap<Labels, Map<string, T>>();

  constructor(build: (namespace: string, labels: Labels) => T) {
    this.#build = build;
  }

  get(namespace: string, labels: Labels): T {
    let perNamespace = this.#byLabels.get(labels);
    if (perNamespace !== undefined) {
      const hit = perNamespace.get(namespace);
      if (hit !== undefined) return hit;
    }
    const key = canonicalKey(namespace, labels);
    let value = this.#byKey.get(key);
    if (value === undefined) {
      value = this.#build(namespace, labels);
      this.#byKey.set(key, value);
    }
    if (perNamespace === undefined) {
      perNamespace = new Map();
      this.#byLabels.set(labels, perNamespace);
    }
    perNamespace.set(namespace, value);
    return value;
  }
}

function canonicalKey(namespace: string, labels: Labels): string {
  let key = namespace;
  for (const k of Object.keys(labels).sort()) key += `\u0000${k}=${labels[k]}`;
  return key;
}
