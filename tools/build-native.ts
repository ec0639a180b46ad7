// Builds the project's one native file, native/malloc-trim.c, into
// build/native/malloc-trim.node. Run by `npm install` (postinstall) and by
// `npm run build:native`.
//
// The addon is an optimization, not a requirement: without it a proxy's
// memory trim gives back V8's memory only. So a machine that cannot build
// it (no C compiler, a C library other than glibc, no Node-API headers)
// gets a line saying why and what to install, and the install goes on.
// A compiler that fails on the source is another matter: that is a
// defect, and fails the build.
//
//   node tools/build-native.ts

import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { MALLOC_TRIM_ADDON, onGlibc } from '../src/lib/malloc-trim.ts';

const ROOT = resolve(import.meta.dirname, '..');
const SOURCE = join(ROOT, 'native', 'malloc-trim.c');

function skip(why: string): never {
  console.log(`meshward: the C allocator trim (native/malloc-trim.c) is not built: ${why}. Proxies then give back V8's memory only.`);
  process.exit(0);
}

function headersDir(): string | null {
  try {
    return (createRequire(import.meta.url)('node-api-headers') as { include_dir: string }).include_dir;
  } catch {
    return null;
  }
}

if (!onGlibc()) skip('malloc_trim is a glibc call, and this system has another C library');
const include = headersDir();
if (include === null) skip('the Node-API headers (the node-api-headers package, a devDependency) are not installed');
const cc = process.env.CC ?? 'cc';
const runs = (cmd: string, args: readonly string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
if (!runs(cc, ['--version']) && process.env.CC === undefined && process.getuid?.() === 0 && runs('apt-get', ['--version'])) {
  // As root on Debian the install takes what it needs, as the benchmarks do.
  console.log('meshward: installing gcc with apt-get, for native/malloc-trim.c');
  if (!runs('apt-get', ['install', '-y', 'gcc', 'libc6-dev']) && runs('apt-get', ['update'])) runs('apt-get', ['install', '-y', 'gcc', 'libc6-dev']);
}
if (!runs(cc, ['--version'])) skip(`no C compiler (${cc}); on Debian: apt-get install gcc, then npm run build:native`);

mkdirSync(resolve(MALLOC_TRIM_ADDON, '..'), { recursive: true });
// Written next to its final name and renamed: a running proxy never loads half a file.
const partial = `${MALLOC_TRIM_ADDON}.partial`;
const built = spawnSync(cc, ['-O2', '-fPIC', '-shared', '-std=c11', '-Wall', '-Wextra', '-Werror', '-I', include, '-o', partial, SOURCE], { encoding: 'utf8' });
if (built.status !== 0) {
  rmSync(partial, { force: true });
  console.error(`meshward: ${cc} failed on ${SOURCE}:\n${built.stderr}`);
  process.exit(1);
}
renameSync(partial, MALLOC_TRIM_ADDON);
console.log(`meshward: built ${MALLOC_TRIM_ADDON}`);
