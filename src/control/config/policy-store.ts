// The control plane's policy: a watched directory of Istio YAML, loaded
// whole, validated whole, and replaced only by a load without errors. A file
// that fails validation is reported (log, metric, status) and the last good
// generation stays in force: nothing half-applied reaches a proxy.
//
// Change detection is a watch on the directory and each subdirectory with a
// short debounce (editors write in bursts), plus a slow poll of the files'
// sizes and mtimes in case an event is lost (network file systems). Each
// directory gets its own non-recursive watch: a recursive one on Linux
// reports only the first rename over a given file, and editors and
// `kubectl`-style tools replace files by rename. A reload parses only the
// files whose text changed.

import { watch, statSync, readFileSync, readdirSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Diagnostic } from '../../api/diagnostics.ts';
import { selectFiles } from '../../api/files.ts';
import { assembleResources, parseResourceText, type ParsedText } from '../../api/load.ts';
import type { InlineResource } from '../../api/proxy-config.ts';
import type { IstioResource } from '../../api/resources.ts';

/** One good load: every resource, as objects to stream and as decoded resources to filter by. */
export interface PolicyGeneration {
  /** Monotonic, also across restarts (it starts from the clock). */
  readonly version: number;
  /** When the change that produced it was first noticed (ms since epoch). */
  readonly seenAt: number;
  readonly files: readonly string[];
  /** Each YAML document that holds a resource, with the resources decoded from it. */
  readonly documents: readonly PolicyDocument[];
}

export interface PolicyDocument {
  readonly inline: InlineResource;
  readonly resources: readonly IstioResource[];
}

export interface PolicyRejection {
  readonly at: number;
  readonly diagnostics: readonly Diagnostic[];
}

export interface PolicyStoreOptions {
  readonly dir: string;
  readonly debounceMs?: number;
  readonly pollMs?: number;
  readonly now?: () => number;
  /** A new good generation is in force. */
  readonly onGeneration?: (g: PolicyGeneration) => void;
  /** A load failed; the previous generation stays. */
  readonly onRejected?: (r: PolicyRejection) => void;
}

type LoadOutcome = { ok: true; files: readonly string[]; documents: PolicyDocument[] } | { ok: false; diagnostics: readonly Diagnostic[] };

/** One file's parse, reused while its text is unchanged: a change re-parses that file alone. */
interface ParsedFile {
  readonly text: string;
  readonly parsed: ParsedText;
  readonly documents: readonly PolicyDocument[];
}

function parseFile(file: string, text: string): ParsedFile {
  const parsed = parseResourceText(file, text);
  const documents = parsed.documents.map((d) => ({ inline: { file, documentIndex: d.documentIndex, object: d.object }, resources: d.resources }));
  return { text, parsed, documents };
}

/** Every directory under `dir`, itself included. */
function directoriesUnder(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const e of readdirSync(out[i]!, { withFileTypes: true })) {
        if (e.isDirectory() && !e.name.startsWith('.')) out.push(join(out[i]!, e.name));
      }
    } catch {
      // Gone between listing and reading: the next event lists again.
    }
  }
  return out;
}

/** Loads the directory, re-parsing only files whose text changed; `cache` is updated to the files present. */
function load(dir: string, cache: Map<string, ParsedFile>): LoadOutcome {
  const selection = selectFiles([dir]);
  const diagnostics: Diagnostic[] = [...selection.diagnostics];
  const resources: IstioResource[] = [];
  const documents: PolicyDocument[] = [];
  const present = new Set<string>();
  for (const file of selection.files) {
    present.add(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      diagnostics.push({ severity: 'error', file, message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    let entry = cache.get(file);
    if (entry === undefined || entry.text !== text) {
      entry = parseFile(file, text);
      cache.set(file, entry);
    }
    resources.push(...entry.parsed.resources);
    diagnostics.push(...entry.parsed.diagnostics);
    documents.push(...entry.documents);
  }
  for (const f of [...cache.keys()]) if (!present.has(f)) cache.delete(f);
  // Duplicates across files, as `meshward validate` reports them.
  const assembled = assembleResources(resources, diagnostics);
  const errors = assembled.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) return { ok: false, diagnostics: errors };
  return { ok: true, files: selection.files, documents };
}

function signature(dir: string): string {
  const parts: string[] = [];
  for (const f of selectFiles([dir]).files) {
    try {
      const s = statSync(f);
      parts.push(`${f}:${s.size}:${s.mtimeMs}`);
    } catch {
      parts.push(`${f}:gone`);
    }
  }
  return parts.join('\n');
}

export class PolicyStore {
  readonly dir: string;
  #current: PolicyGeneration;
  #rejected: PolicyRejection | undefined;
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #files = new Map<string, ParsedFile>();
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #pendingSince: number | undefined;
  #signature: string;
  readonly #opts: PolicyStoreOptions;
  readonly #now: () => number;
  #reloads = { applied: 0, rejected: 0 };

  private constructor(opts: PolicyStoreOptions, first: PolicyGeneration) {
    this.dir = opts.dir;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#current = first;
    this.#signature = signature(opts.dir);
  }

  /** Loads the directory; refuses to start on errors (there is no good config to fall back on yet). */
  static open(opts: PolicyStoreOptions): PolicyStore | { diagnostics: readonly Diagnostic[] } {
    const now = (opts.now ?? Date.now)();
    const cache = new Map<string, ParsedFile>();
    const first = load(opts.dir, cache);
    if (!first.ok) return { diagnostics: first.diagnostics };
    const store = new PolicyStore(opts, { version: now, seenAt: now, files: first.files, documents: first.documents });
    for (const [k, v] of cache) store.#files.set(k, v);
    return store;
  }

  get current(): PolicyGeneration {
    return this.#current;
  }

  /** The latest failed load, while it is the latest load. */
  get rejected(): PolicyRejection | undefined {
    return this.#rejected;
  }

  get reloads(): { readonly applied: number; readonly rejected: number } {
    return this.#reloads;
  }

  watch(): void {
    this.#syncWatchers();
    this.#poll = setInterval(() => {
      if (signature(this.dir) !== this.#signature) this.#changed();
    }, this.#opts.pollMs ?? 2000);
    this.#poll.unref();
  }

  close(): void {
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
  }

  /** Loads now (also what a watch event leads to, after the debounce). */
  reload(seenAt: number = this.#now()): PolicyGeneration | PolicyRejection {
    this.#signature = signature(this.dir);
    if (this.#watchers.size > 0) this.#syncWatchers();
    const out = load(this.dir, this.#files);
    if (!out.ok) {
      this.#rejected = { at: this.#now(), diagnostics: out.diagnostics };
      this.#reloads.rejected++;
      this.#opts.onRejected?.(this.#rejected);
      return this.#rejected;
    }
    this.#rejected = undefined;
    const version = Math.max(this.#current.version + 1, this.#now());
    this.#current = { version, seenAt, files: out.files, documents: out.documents };
    this.#reloads.applied++;
    this.#opts.onGeneration?.(this.#current);
    return this.#current;
  }

  /** One watch per directory, following directories as they come and go. */
  #syncWatchers(): void {
    const wanted = new Set(directoriesUnder(this.dir));
    for (const [d, w] of this.#watchers) {
      if (!wanted.has(d)) {
        w.close();
        this.#watchers.delete(d);
      }
    }
    for (const d of wanted) {
      if (this.#watchers.has(d)) continue;
      try {
        const w = watch(d, () => this.#changed());
        w.on('error', () => {});
        this.#watchers.set(d, w);
      } catch {
        // Not watchable: the poll notices its changes.
      }
    }
  }

  #changed(): void {
    this.#pendingSince ??= this.#now();
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      const seenAt = this.#pendingSince ?? this.#now();
      this.#pendingSince = undefined;
      this.reload(seenAt);
    }, this.#opts.debounceMs ?? 50);
  }
}
