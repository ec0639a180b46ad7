// The record of which sources the installed bundle was built from, and
// the check that it still matches them.
//
// tools/build-bundle.ts builds meshward's code into build/bundle/<id>/
// and writes build/bundle/current.json: that directory and the SHA-256 of
// every source file it was built from, and of package-lock.json (which
// fixes the versions of the packages bundled with it). bin/meshward.js
// runs the bundle only while every one of those files still hashes the
// same; after any edit it runs the sources themselves until the next
// build. So the code that runs is always the code in src/, whichever form
// Node loads it in.
//
// Each build has its own directory, named by its inputs, because a
// running process loads chunks as it needs them (a command's module, the
// CA agent): a rebuild never changes the files under a process that
// started from an earlier one.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './installation.ts';

/** Where the builds live, from the package root: one directory per build, and the manifest naming the current one. */
export const BUNDLE_DIR = join('build', 'bundle');
export const MANIFEST_NAME = 'current.json';

/** A build's directory name: the first 16 hex digits of its inputs' digest (buildDirectoryFor). */
export const BUILD_DIRECTORY_NAME = /^[0-9a-f]{16}$/;

/** The file, in a build's directory, that runs the command line (src/cli/run.ts). */
export const BUNDLE_ENTRY = 'meshward.js';

export interface BundleManifest {
  /** The build's directory under BUNDLE_DIR. */
  directory: string;
  /** Each input by its path from the package root, with the SHA-256 of its content (hex). */
  inputs: Record<string, string>;
}

/** SHA-256 (hex) of the content of `path` under `root`, or null when it cannot be read. */
export function digestOf(path: string, root = PACKAGE_ROOT): string | null {
  try {
    return createHash('sha256').update(readFileSync(join(root, path))).digest('hex');
  } catch {
    return null;
  }
}

function readManifest(root: string): BundleManifest | null {
  try {
    const m = JSON.parse(readFileSync(join(root, BUNDLE_DIR, MANIFEST_NAME), 'utf8')) as Partial<BundleManifest>;
    const valid =
      typeof m.directory === 'string' &&
      BUILD_DIRECTORY_NAME.test(m.directory) &&
      typeof m.inputs === 'object' &&
      m.inputs !== null &&
      Object.keys(m.inputs).length > 0;
    return valid ? (m as BundleManifest) : null;
  } catch {
    return null;
  }
}

/**
 * The path of the current build's entry file when there is a build and
 * every file it was built from is unchanged; null otherwise (no build, an
 * unreadable manifest, an input edited or deleted since).
 */
export function freshBundleEntry(root = PACKAGE_ROOT): string | null {
  const manifest = readManifest(root);
  if (manifest === null) return null;
  for (const [path, digest] of Object.entries(manifest.inputs)) {
    if (digestOf(path, root) !== digest) return null;
  }
  const entry = join(root, BUNDLE_DIR, manifest.directory, BUNDLE_ENTRY);
  return existsSync(entry) ? entry : null;
}

/** A build's directory name: derived from its inputs, so the same sources always build into the same one. */
export function buildDirectoryFor(inputs: Record<string, string>): string {
  const h = createHash('sha256');
  for (const path of Object.keys(inputs).sort()) h.update(`${path}\0${inputs[path]}\n`);
  return h.digest('hex').slice(0, 16);
}
