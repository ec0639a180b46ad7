// jose, loaded on first use rather than with the policy engine. Only a
// RequestAuthentication with JWT rules needs it (a key set to compile, a
// signature to check), and importing it costs every proxy process a few MiB
// of memory whether or not any workload has one. require() of an ES module
// (Node ≥ 22.12) loads it synchronously where compilation needs it, and
// gives the same module instance an import() would, so jose's error classes
// stay the ones `instanceof` checks against.

import { createRequire } from 'node:module';

type Jose = typeof import('jose');

const load = createRequire(import.meta.url);
let loaded: Jose | undefined;

export function jose(): Jose {
  return (loaded ??= load('jose') as Jose);
}
