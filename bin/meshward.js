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

// Proxy processes run with V8's young generation held at no less than the
// size start-up and traffic grow it to anyway (semi-spaces of 8 MiB).
// Held, a memory-reducing collection gives its pages back without
// shrinking it, so a proxy can drop the 10 MiB start-up leaves there as
// soon as it is ready and still collect as seldom under load as an
// untrimmed one (src/lib/memory-trim.ts). Not more than that size: with
// 16 MiB semi-spaces the same traffic keeps 13 MiB more resident, for
// about 5 % less CPU (docs/benchmarks.md, "Memory at start-up").
// V8 reads the size only when the process starts, and NODE_OPTIONS may not
// carry it, hence the relaunch: execve keeps the pid, stdio and
// environment, and costs one Node start-up (about 40 ms).
const PROXY_COMMANDS = new Set(['proxy', 'node-proxy', 'gateway']);
const YOUNG_GENERATION_FLAG = '--min-semi-space-size=8';
const sizedByCaller = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => /^--(min|max)-semi-space-size\b/.test(a));
if (PROXY_COMMANDS.has(process.argv[2] ?? '') && !sizedByCaller && typeof process.execve === 'function') {
  try {
    process.execve(process.execPath, [process.execPath, YOUNG_GENERATION_FLAG, ...process.execArgv, ...process.argv.slice(1)]);
  } catch {
    // Not relaunched (a platform without execve, or a binary not found):
    // the proxy runs as it is and trims only when idle.
  }
}

enableCompileCache();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
