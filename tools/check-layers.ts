// Checks that imports between src/ layers point one way:
//   api → lib; policy → api; analysis → policy; identity → api;
//   proxy → policy, identity; control → analysis, policy, identity;
//   cli → everything; dashboard → api.
// (A → B means A may import B and whatever B may import.) Run by `npm run lint`.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';

const SRC = resolve(import.meta.dirname, '..', 'src');

const DIRECT: Record<string, readonly string[]> = {
  lib: [],
  api: ['lib'],
  policy: ['api'],
  analysis: ['policy'],
  identity: ['api'],
  proxy: ['policy', 'identity'],
  control: ['analysis', 'policy', 'identity'],
  cli: ['lib', 'api', 'policy', 'analysis', 'identity', 'proxy', 'control', 'dashboard'],
  dashboard: ['api'],
};

function reachable(layer: string): Set<string> {
  const seen = new Set<string>([layer]);
  const stack = [layer];
  while (stack.length > 0) {
    for (const next of DIRECT[stack.pop()!] ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        stack.push(next);
      }
    }
  }
  return seen;
}

function* walk(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(p);
    else if (entry.name.endsWith('.ts')) yield p;
  }
}

const layerOf = (file: string) => relative(SRC, file).split(sep)[0]!;
const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm;

const problems: string[] = [];
for (const file of walk(SRC)) {
  const from = layerOf(file);
  if (!(from in DIRECT)) {
    problems.push(`${relative(SRC, file)}: folder "${from}" is not a known layer`);
    continue;
  }
  const allowed = reachable(from);
  for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const spec = m[1]!;
    if (!spec.startsWith('.')) continue;
    const target = layerOf(resolve(dirname(file), spec));
    if (!allowed.has(target)) problems.push(`${relative(SRC, file)}: ${from} must not import ${target} (${spec})`);
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log('layers: imports point one way');
