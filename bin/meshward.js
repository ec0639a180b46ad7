#!/usr/bin/env node
// The `meshward` command. Everything lives in src/cli; this file only starts it.
//
// Plain JavaScript on purpose: it turns on Node's compile cache before the
// first TypeScript module loads, so later starts reuse the stripped and
// compiled code from disk instead of loading the type stripper again —
// about 17 MiB less memory in every long-running process (proxies, the
// control plane) and a faster start.
import { enableCompileCache } from 'node:module';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

enableCompileCache();

// The bundle tools/build-bundle.ts makes at install time when it was
// built from the sources as they are now, else the sources themselves:
// the same code either way, and the bundle holds less of it in memory
// (src/lib/bundle-manifest.ts). Checked before a relaunch, so the process
// that serves does not pay for the check.
const { freshBundleEntry } = await import('../src/lib/bundle-manifest.ts');
const bundled = freshBundleEntry();

// Proxy processes run with V8 flags of their own: the young generation
// held at a fixed size, so a proxy can give back the 10 MiB start-up leaves
// there as soon as it is ready and still collect as seldom under load as
// before, and V8's memory reducer off, so a quiet spell does not throw away
// the proxy's optimized code (src/lib/proxy-node-flags.ts). V8 reads them
// only when the process starts, and NODE_OPTIONS may not carry them, hence
// the relaunch: execve keeps the pid, stdio and environment, and costs one
// Node start-up (about 40 ms; `meshward up` gives the flags itself). A
// fresh bundle is relaunched into directly.
if (typeof process.execve === 'function') {
  const { nodeFlagsFor } = await import('../src/lib/proxy-node-flags.ts');
  const flags = nodeFlagsFor(process.argv[2], process.execArgv, process.env.NODE_OPTIONS);
  if (flags.length > 0) {
    try {
      process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, bundled ?? process.argv[1], ...process.argv.slice(2)]);
    } catch {
      // Not relaunched (a platform without execve, or a binary not found):
      // the proxy runs as it is and trims only when idle.
    }
  }
}

if (bundled !== null) {
  // The bundle's entry runs the command line itself (src/cli/run.ts).
  await import(pathToFileURL(bundled).href);
} else {
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
