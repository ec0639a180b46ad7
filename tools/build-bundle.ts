// Builds meshward's code into one bundle of plain JavaScript, in
// build/bundle/<id>/, and records what it was built from in
// build/bundle/current.json (src/lib/bundle-manifest.ts). Run by `npm
// install` (postinstall), by `npm test` before the tests, and by `npm run
// build`.
//
// Why: a proxy keeps the text of every module it loaded, because V8
// compiles a function from it when the function first runs. Run from the
// sources, that text is the TypeScript files with their comments, and
// zod's entry point with all of its fifty-odd locales; a file with one
// character outside Latin-1 is held at two bytes a character. The bundle
// holds only code that can run: no comments, no whitespace, no modules
// nothing imports, and strings escaped to ASCII, so V8 holds its text at
// one byte a character. A sidecar idles about 12 MiB and settles
// about 7 MiB lower with it (docs/benchmarks.md, "Proxies run from a
// bundle").
//
// Bundled: meshward's own sources, and the dependencies that are plain
// ES modules or simple CommonJS (zod, yaml, commander). Left to load from
// node_modules: the ones that find their own files on disk (@grpc/*'s
// .proto files), load lazily already (jose, prom-client), or are only
// used by the CA agent and the CA (@peculiar/x509, reflect-metadata).
//
// The code is the same either way: the launcher runs the bundle only
// while the sources it came from are unchanged, and the sources otherwise.
// Without esbuild (an install without devDependencies) nothing is built
// and meshward runs from its sources.
//
//   node tools/build-bundle.ts

import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_DIRECTORY_NAME, BUNDLE_DIR, BUNDLE_ENTRY, MANIFEST_NAME, buildDirectoryFor, digestOf, type BundleManifest } from '../src/lib/bundle-manifest.ts';
import { PACKAGE_ROOT } from '../src/lib/installation.ts';

/** Dependencies built into the bundle; every other one stays external. */
const BUNDLED = new Set(['zod', 'yaml', 'commander']);

/**
 * Earlier builds kept besides the current one, for processes that started
 * from them and may yet load a chunk (or, under `meshward up`, restart a
 * child): the three newest, and any made in the last day.
 */
const KEEP_EARLIER = 3;
const KEEP_YOUNGER_THAN_MS = 24 * 60 * 60 * 1000;

type Esbuild = typeof import('esbuild');

async function loadEsbuild(): Promise<Esbuild | null> {
  try {
    return await import('esbuild');
  } catch {
    return null;
  }
}

const esbuild = await loadEsbuild();
if (esbuild === null) {
  console.log('meshward: esbuild (a devDependency) is not installed, so no bundle is built; meshward runs from its TypeScript sources, with more memory per process.');
  process.exit(0);
}

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
const external = Object.keys(pkg.dependencies).filter((d) => !BUNDLED.has(d));
const BUNDLE_ROOT = join(PACKAGE_ROOT, BUNDLE_DIR);
const MANIFEST_FILE = join(BUNDLE_ROOT, MANIFEST_NAME);
const staging = join(BUNDLE_ROOT, `.staging-${process.pid}`);
rmSync(staging, { recursive: true, force: true });

const result = await esbuild.build({
  absWorkingDir: PACKAGE_ROOT,
  entryPoints: { meshward: 'src/cli/run.ts' },
  outdir: staging,
  bundle: true,
  // Each command's module is a chunk of its own, loaded when the command
  // runs, as import() loads it from the sources.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  external,
  // Comments and whitespace go; names stay, so stack traces still name
  // functions. The source maps beside the chunks cost nothing unless Node
  // runs with --enable-source-maps.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  charset: 'ascii',
  sourcemap: 'linked',
  sourcesContent: false,
  // The CommonJS modules built in (commander, yaml) require Node's own modules.
  banner: { js: "import { createRequire as __meshwardRequire } from 'node:module'; const require = __meshwardRequire(import.meta.url);" },
  metafile: true,
  logLevel: 'warning',
}).catch((err: unknown) => {
  rmSync(staging, { recursive: true, force: true });
  throw err;
});

const inputs: Record<string, string> = {};
const record = (path: string): void => {
  const digest = digestOf(path);
  if (digest === null) throw new Error(`cannot read ${path}, an input of the bundle`);
  inputs[path] = digest;
};
for (const path of Object.keys(result.metafile.inputs).sort()) {
  if (!path.startsWith('node_modules/')) record(path);
}
// How it was built, and the bundled dependencies' and esbuild's versions.
record('tools/build-bundle.ts');
if (digestOf('package-lock.json') !== null) record('package-lock.json');

const directory = buildDirectoryFor(inputs);
const target = join(BUNDLE_ROOT, directory);
try {
  renameSync(staging, target);
} catch (err) {
  rmSync(staging, { recursive: true, force: true });
  // Only the same sources built before are left as they are: that build
  // is identical, and processes may be running from it.
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
}
const manifest: BundleManifest = { directory, inputs };
const partial = `${MANIFEST_FILE}.${process.pid}`;
writeFileSync(partial, `${JSON.stringify(manifest, null, 1)}\n`);
renameSync(partial, MANIFEST_FILE);

const earlier = readdirSync(BUNDLE_ROOT, { withFileTypes: true })
  .filter((e) => e.isDirectory() && BUILD_DIRECTORY_NAME.test(e.name) && e.name !== directory)
  .map((e) => ({ name: e.name, mtime: statSync(join(BUNDLE_ROOT, e.name)).mtimeMs }))
  .sort((a, b) => b.mtime - a.mtime);
for (const old of earlier.slice(KEEP_EARLIER)) {
  if (Date.now() - old.mtime > KEEP_YOUNGER_THAN_MS) rmSync(join(BUNDLE_ROOT, old.name), { recursive: true, force: true });
}

const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`meshward: built ${join(BUNDLE_DIR, directory, BUNDLE_ENTRY)} from ${Object.keys(inputs).length} files (${(bytes / 1024).toFixed(0)} KiB of JavaScript and source maps)`);
