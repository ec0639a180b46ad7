// Which files a list of paths names: a file is itself; a directory is every
// *.yaml, *.yml and *.json below it, in lexical path order so a load is
// reproducible. Hidden entries are skipped: a Kubernetes ConfigMap mount
// keeps every file twice, once behind `..data` symlinks, and editors leave
// dotfiles around. A file reached twice (symlinks, or named twice) is read
// once.

import { readdirSync, realpathSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { Diagnostic } from './diagnostics.ts';

const CONFIG_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

export interface FileSelection {
  readonly files: readonly string[];
  readonly diagnostics: readonly Diagnostic[];
}

export function selectFiles(paths: readonly string[]): FileSelection {
  const files: string[] = [];
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  const add = (file: string): void => {
    const real = realPath(file);
    if (seen.has(real)) return;
    seen.add(real);
    files.push(file);
  };
  const fail = (file: string, err: unknown): void => {
    diagnostics.push({ severity: 'error', file, message: `cannot read: ${reason(err)}` });
  };

  for (const p of paths) {
    let isDir: boolean;
    try {
      const st = statSync(p);
      if (!st.isDirectory() && !st.isFile()) {
        diagnostics.push({ severity: 'error', file: p, message: 'not a regular file or directory' });
        continue;
      }
      isDir = st.isDirectory();
    } catch (err) {
      fail(p, err);
      continue;
    }
    if (!isDir) {
      add(p);
      continue;
    }
    const found: string[] = [];
    walk(p, found, new Set([realPath(p)]), fail);
    found.sort(lexical);
    found.forEach(add);
  }
  return { files, diagnostics };
}

function walk(dir: string, found: string[], dirsOnPath: Set<string>, fail: (file: string, err: unknown) => void): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    fail(dir, err);
    return;
  }
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    let isDir = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      try {
        const st = statSync(full);
        isDir = st.isDirectory();
        isFile = st.isFile();
      } catch (err) {
        fail(full, err);
        continue;
      }
    }
    if (isDir) {
      const real = realPath(full);
      if (dirsOnPath.has(real)) continue; // a symlink loop
      walk(full, found, new Set([...dirsOnPath, real]), fail);
    } else if (isFile && CONFIG_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
      found.push(full);
    }
  }
}

function lexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

export function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return (err as Error).message;
}
