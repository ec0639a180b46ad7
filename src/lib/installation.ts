// Where this installation's files are, and which build of its code runs.
//
// meshward runs either from its TypeScript sources (Node strips the
// types) or from the bundle tools/build-bundle.ts makes of them at
// install time (bin/meshward.js picks; src/lib/bundle-manifest.ts). A
// module's own location says nothing about where the package's other
// files are once it sits in a bundle chunk, so files that are not code
// (the .proto files, the native addon, the launcher) are found from the
// package root instead.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const PACKAGE_NAME = 'meshward';

function isPackageRoot(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === PACKAGE_NAME;
  } catch {
    return false;
  }
}

/** The nearest directory at or above `start` whose package.json names this package. */
export function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (isPackageRoot(dir)) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json of ${PACKAGE_NAME} at or above ${start}`);
  }
}

/** The directory holding this installation's package.json. */
export const PACKAGE_ROOT = findPackageRoot(import.meta.dirname);

/** A file of this installation, by its path from the package root. */
export function packageFile(...segments: string[]): string {
  return join(PACKAGE_ROOT, ...segments);
}

/**
 * Which build of meshward's code this process runs: `source` when Node
 * loaded the TypeScript files themselves, `bundle` when it loaded the
 * bundle (in which every module's URL is that of a .js chunk).
 */
export const RUNNING_FROM: 'source' | 'bundle' = import.meta.url.endsWith('.ts') ? 'source' : 'bundle';
