// Loads Istio resources from files and directories into a frozen
// ResourceSet, with a diagnostic (file, document, line, field, reason) for
// everything wrong or skipped. Every error is reported, not just the first,
// and a resource with any error is left out; callers refuse a configuration
// that has errors at all, so nothing half-valid is ever enforced.
//
//   const { resources, diagnostics } = loadResources(['policies/']);
//   if (diagnostics.some((d) => d.severity === 'error')) ...refuse...

import { readFileSync } from 'node:fs';
import { LineCounter, parseAllDocuments } from 'yaml';
import { decodeDocument } from './decode.ts';
import type { Diagnostic } from './diagnostics.ts';
import { reason, selectFiles } from './files.ts';
import { deepFreeze } from './freeze.ts';
import type {
  AuthorizationPolicy,
  DestinationRule,
  IstioResource,
  PeerAuthentication,
  RequestAuthentication,
  ResourceSet,
} from './resources.ts';
import { lineFinder } from './yaml-lines.ts';
import type { InlineResource } from './proxy-config.ts';

export interface LoadResult {
  readonly resources: ResourceSet;
  /** Errors and warnings, in file and line order. */
  readonly diagnostics: readonly Diagnostic[];
}

/** Loads every path: a file, or a directory of *.yaml, *.yml and *.json files (recursively, in lexical order). */
export function loadResources(paths: readonly string[]): LoadResult {
  const selection = selectFiles(paths);
  const resources: IstioResource[] = [];
  const diagnostics: Diagnostic[] = [...selection.diagnostics];
  for (const file of selection.files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      diagnostics.push({ severity: 'error', file, message: `cannot read: ${reason(err)}` });
      continue;
    }
    const parsed = parseText(file, text);
    resources.push(...parsed.resources);
    diagnostics.push(...parsed.diagnostics);
  }
  return assemble(resources, diagnostics);
}

/**
 * Loads resources that arrive as objects rather than files (a config
 * stream): each names the file and document it came from, for diagnostics.
 * `paths` are loaded first, as `loadResources` would.
 */
export function loadResourcesWith(paths: readonly string[], inline: readonly InlineResource[]): LoadResult {
  const fromFiles = paths.length === 0 ? undefined : loadResources(paths);
  const resources: IstioResource[] = [];
  const diagnostics: Diagnostic[] = [...(fromFiles?.diagnostics ?? [])];
  if (fromFiles !== undefined) {
    const r = fromFiles.resources;
    resources.push(...r.peerAuthentications, ...r.authorizationPolicies, ...r.requestAuthentications, ...r.destinationRules);
  }
  for (const item of inline) {
    const decoded = decodeDocument(item.object, { file: item.file, documentIndex: item.documentIndex });
    resources.push(...decoded.resources);
    diagnostics.push(...decoded.diagnostics);
  }
  return assemble(resources, diagnostics);
}

/** Loads one file's text; `file` names it in diagnostics and source references. */
export function loadResourcesFromText(file: string, text: string): LoadResult {
  const parsed = parseText(file, text);
  return assemble(parsed.resources, parsed.diagnostics);
}

/** One YAML document of a file: the object as written, and what decoded from it. */
export interface ParsedDocument {
  readonly documentIndex: number;
  readonly object: unknown;
  readonly resources: readonly IstioResource[];
}

export interface ParsedText {
  readonly resources: IstioResource[];
  readonly diagnostics: Diagnostic[];
  /** Documents that produced at least one resource. */
  readonly documents: ParsedDocument[];
}

/**
 * Parses and decodes one file's text, keeping each document's object as
 * written (what the control plane streams) next to its resources. Duplicates
 * across files are not checked here: `assembleResources` does that.
 */
export function parseResourceText(file: string, text: string): ParsedText {
  return parseText(file, text);
}

function parseText(file: string, text: string): ParsedText {
  const resources: IstioResource[] = [];
  const diagnostics: Diagnostic[] = [];
  const documents: ParsedDocument[] = [];
  const counter = new LineCounter();
  // YAML 1.2, of which JSON is a subset, so .json files parse the same way. Duplicate
  // keys are errors; `<<` merge keys work, as they do for kubectl.
  const docs = parseAllDocuments(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true, merge: true });
  docs.forEach((doc, documentIndex) => {
    const found: Diagnostic[] = [];
    const at = (offset: number) => ({ file, documentIndex, line: counter.linePos(offset).line });
    // Only the first syntax error: the ones after it are mostly the parser losing its footing.
    const syntax = doc.errors[0];
    if (syntax !== undefined) found.push({ severity: 'error', ...at(syntax.pos[0]), message: `YAML syntax error: ${syntax.message}` });
    for (const w of doc.warnings) found.push({ severity: 'warning', ...at(w.pos[0]), message: `YAML: ${w.message}` });
    if (doc.errors.length === 0) {
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount: 100 });
      } catch (err) {
        found.push({ severity: 'error', ...at(doc.range[0]), message: `YAML: ${(err as Error).message}` });
      }
      // An empty document (or one holding only comments, or `~`) contributes nothing.
      if (value !== null && value !== undefined) {
        const decoded = decodeDocument(value, { file, documentIndex, lineOf: lineFinder(doc, counter) });
        resources.push(...decoded.resources);
        if (decoded.resources.length > 0) documents.push({ documentIndex, object: value, resources: decoded.resources });
        found.push(...decoded.diagnostics);
      }
    }
    found.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    diagnostics.push(...found);
  });
  return { resources, diagnostics, documents };
}

/** Refuses a second resource with the same kind, namespace and name across everything given, and groups the rest by kind. */
export function assembleResources(all: readonly IstioResource[], diagnostics: readonly Diagnostic[]): LoadResult {
  return assemble(all, [...diagnostics]);
}

/** Refuses a second resource with the same kind, namespace and name, and groups the rest by kind. */
function assemble(all: readonly IstioResource[], diagnostics: Diagnostic[]): LoadResult {
  const firstSeen = new Map<string, IstioResource>();
  const peerAuthentications: PeerAuthentication[] = [];
  const authorizationPolicies: AuthorizationPolicy[] = [];
  const requestAuthentications: RequestAuthentication[] = [];
  const destinationRules: DestinationRule[] = [];
  for (const r of all) {
    const key = `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
    const first = firstSeen.get(key);
    if (first !== undefined) {
      diagnostics.push({
        severity: 'error',
        file: r.source.file,
        documentIndex: r.source.documentIndex,
        line: r.source.line,
        path: 'metadata.name',
        message:
          `duplicate ${r.kind} ${r.metadata.namespace}/${r.metadata.name}: ` +
          `already defined at ${first.source.file}:${first.source.line}`,
      });
      continue;
    }
    firstSeen.set(key, r);
    if (r.kind === 'PeerAuthentication') peerAuthentications.push(r);
    else if (r.kind === 'AuthorizationPolicy') authorizationPolicies.push(r);
    else if (r.kind === 'RequestAuthentication') requestAuthentications.push(r);
    else destinationRules.push(r);
  }
  const resources: ResourceSet = { peerAuthentications, authorizationPolicies, requestAuthentications, destinationRules };
  return deepFreeze({ resources, diagnostics });
}
