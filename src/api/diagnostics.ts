// Diagnostics: what a loader says about a file it could not fully accept.
// Every message points at a file, a document, a line and a field path, so a
// user can go straight to the mistake.

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  readonly severity: Severity;
  readonly file: string;
  /** 0-based index of the YAML document within the file, when known. */
  readonly documentIndex?: number;
  /** 1-based line, when known. */
  readonly line?: number;
  /** Field path such as `spec.rules[0].from[1].source.ipBlocks[2]`. */
  readonly path?: string;
  readonly message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  let where = d.file;
  if (d.line !== undefined) where += `:${d.line}`;
  if (d.documentIndex !== undefined) where += ` (document ${d.documentIndex})`;
  const field = d.path ? ` ${d.path}:` : '';
  return `${where}: ${d.severity}:${field} ${d.message}`;
}
