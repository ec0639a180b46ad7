// Helpers for the loader tests: load YAML text, find the line of a marker,
// and assert one exact diagnostic (path, line, part of the reason).

import assert from 'node:assert/strict';
import { loadResourcesFromText, type LoadResult } from '../../../src/api/load.ts';
import { formatDiagnostic, type Diagnostic } from '../../../src/api/diagnostics.ts';

export const FILE = 'policy.yaml';

export function load(yaml: string): LoadResult {
  return loadResourcesFromText(FILE, yaml);
}

export function errorsOf(result: LoadResult): Diagnostic[] {
  return result.diagnostics.filter((d) => d.severity === 'error');
}

export function warningsOf(result: LoadResult): Diagnostic[] {
  return result.diagnostics.filter((d) => d.severity === 'warning');
}

export function resourceCount(result: LoadResult): number {
  const r = result.resources;
  return r.peerAuthentications.length + r.authorizationPolicies.length + r.requestAuthentications.length + r.destinationRules.length;
}

/** 1-based line of the first line of `text` that contains `marker` (the nth, counting from 1). */
export function lineOf(text: string, marker: string, nth = 1): number {
  const lines = text.split('\n');
  let seen = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.includes(marker) && ++seen === nth) return i + 1;
  }
  throw new Error(`marker ${JSON.stringify(marker)} not found`);
}

function show(ds: readonly Diagnostic[]): string {
  return ds.map((d) => `  ${formatDiagnostic(d)}`).join('\n') || '  (none)';
}

/** Asserts the text loads with no errors and returns the result. */
export function expectValid(yaml: string): LoadResult {
  const result = load(yaml);
  const errors = errorsOf(result);
  assert.equal(errors.length, 0, `expected no errors, got:\n${show(errors)}`);
  return result;
}

export interface Expected {
  readonly path: string;
  /** A marker whose line is expected, or the line number itself. */
  readonly at: string | number;
  readonly message: string;
  /** Which occurrence of the marker, when it appears more than once. */
  readonly nth?: number;
}

/**
 * Asserts the text has an error with exactly this path and line whose reason
 * contains `message`, and that no resource was loaded from a one-resource text.
 */
export function expectError(yaml: string, expected: Expected): Diagnostic {
  const result = load(yaml);
  const errors = errorsOf(result);
  const line = typeof expected.at === 'number' ? expected.at : lineOf(yaml, expected.at, expected.nth);
  const found = errors.find((d) => d.path === expected.path && d.line === line && d.message.includes(expected.message));
  assert.ok(
    found,
    `expected an error at ${expected.path} (line ${line}) containing ${JSON.stringify(expected.message)}, got:\n${show(errors)}`,
  );
  assert.equal(found.file, FILE);
  assert.equal(typeof found.documentIndex, 'number');
  assert.equal(resourceCount(result), 0, 'a resource with errors must not be loaded');
  return found;
}

/** Asserts exactly these error paths, in any order. */
export function expectErrorPaths(yaml: string, paths: readonly string[]): void {
  const errors = errorsOf(load(yaml));
  assert.deepEqual(
    errors.map((d) => d.path ?? '').sort(),
    [...paths].sort(),
    `unexpected errors:\n${show(errors)}`,
  );
}
