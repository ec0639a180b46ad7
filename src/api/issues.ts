// Turns schema issues into diagnostics a person can act on: the field path,
// and a reason phrased for YAML authors (`unknown field "principles" (did
// you mean "principals"?)`, `expected one of ALLOW, DENY, AUDIT, CUSTOM, got
// "ALLOWED"`), rather than the schema library's wording.

import type * as z from 'zod';
import type { Diagnostic } from './diagnostics.ts';
import { formatPath, valueAt, type FieldPath } from './field-path.ts';
import { UNLESS_UNKNOWN_FIELDS } from './schemas/build.ts';
import { closest } from './suggest.ts';

export interface IssueContext {
  readonly file: string;
  readonly documentIndex?: number;
  /** Prepended to every issue path (e.g. `items[2]` inside a List). */
  readonly prefix?: FieldPath;
  /** The data that was validated, to quote offending values. */
  readonly input: unknown;
  /** The schema that was used, to suggest field names. */
  readonly schema: z.ZodType;
  /** Line of a full path, when the source has lines. */
  readonly lineOf?: (path: FieldPath) => number;
}

export function issuesToDiagnostics(issues: readonly z.core.$ZodIssue[], ctx: IssueContext): Diagnostic[] {
  const unknownAt = new Set(issues.filter((i) => i.code === 'unrecognized_keys').map((i) => formatPath(toPath(i.path))));
  const out: Diagnostic[] = [];
  for (const issue of issues) {
    const path = toPath(issue.path);
    if (issue.code === 'custom' && issue.params?.[UNLESS_UNKNOWN_FIELDS] === true && unknownAt.has(formatPath(path))) {
      continue;
    }
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(ctx.schema, path);
      for (const key of issue.keys) out.push(diagnostic(ctx, [...path, key], unknownFieldMessage(key, known)));
      continue;
    }
    out.push(diagnostic(ctx, path, messageFor(issue, valueAt(ctx.input, path), path, schemaAt(ctx.schema, path))));
  }
  return out;
}

function toPath(path: readonly PropertyKey[]): FieldPath {
  return path.map((seg) => (typeof seg === 'number' ? seg : String(seg)));
}

function diagnostic(ctx: IssueContext, path: FieldPath, message: string): Diagnostic {
  const full = [...(ctx.prefix ?? []), ...path];
  const formatted = formatPath(full);
  return {
    severity: 'error',
    file: ctx.file,
    ...(ctx.documentIndex !== undefined ? { documentIndex: ctx.documentIndex } : {}),
    ...(ctx.lineOf !== undefined ? { line: ctx.lineOf(full) } : {}),
    ...(formatted !== '' ? { path: formatted } : {}),
    message,
  };
}

function unknownFieldMessage(key: string, known: readonly string[]): string {
  const guess = closest(key, known);
  return `unknown field "${key}"${guess !== null ? ` (did you mean "${guess}"?)` : ''}`;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  array: 'list',
  record: 'map',
  object: 'object',
  int: 'integer',
  number: 'number',
  string: 'string',
  boolean: 'boolean',
};

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'object';
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'number' && !Number.isInteger(v)) return `number ${v}`;
  if (typeof v === 'number') return `integer ${v}`;
  return `${typeof v} ${String(v)}`;
}

function messageFor(issue: z.core.$ZodIssue, value: unknown, path: FieldPath, schema: z.ZodType | undefined): string {
  switch (issue.code) {
    case 'invalid_type': {
      const last = path[path.length - 1];
      if (value === undefined) return `missing required field${typeof last === 'string' ? ` "${last}"` : ''}`;
      // An integer schema reports a string input as "expected number"; say what it really wants.
      const wanted = schema !== undefined && isIntegerSchema(schema) ? 'int' : issue.expected;
      const expected = TYPE_NAMES[wanted] ?? wanted;
      let message = `expected ${expected}, got ${describeValue(value)}`;
      // YAML reads 80 or true as a number or boolean; Istio wants strings there (ports, label values).
      if (expected === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
        message += ` (quote it: "${String(value)}")`;
      }
      if (value === null && typeof last === 'string') message += ' (remove the field if it should be absent)';
      return message;
    }
    case 'invalid_value':
      return `expected one of ${issue.values.map(String).join(', ')}, got ${JSON.stringify(value) ?? String(value)}`;
    default:
      return issue.message;
  }
}

// ---------------------------------------------------------------- field names for suggestions

interface SchemaDef {
  readonly type: string;
  readonly shape?: Readonly<Record<string, z.ZodType>>;
  readonly element?: z.ZodType;
  readonly innerType?: z.ZodType;
  readonly valueType?: z.ZodType;
  readonly in?: z.ZodType;
  readonly format?: string;
}

function defOf(schema: z.ZodType): SchemaDef {
  return (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
}

/** Strips wrappers (optional, nullable, default, pipe) down to the schema that does the work. */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = defOf(s);
    const next = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (next === undefined) return s;
    s = next;
  }
}

/** The schema that validates the value at `path`, unwrapped; undefined when the path leaves the schema. */
function schemaAt(schema: z.ZodType, path: FieldPath): z.ZodType | undefined {
  let s: z.ZodType | undefined = unwrap(schema);
  for (const seg of path) {
    const def = defOf(s);
    if (def.type === 'object' && typeof seg === 'string') s = def.shape?.[seg];
    else if (def.type === 'array') s = def.element;
    else if (def.type === 'record') s = def.valueType;
    else s = undefined;
    if (s === undefined) return undefined;
    s = unwrap(s);
  }
  return s;
}

function isIntegerSchema(schema: z.ZodType): boolean {
  const def = defOf(schema);
  return def.type === 'number' && typeof def.format === 'string' && def.format.includes('int');
}

/** The field names the object schema at `path` accepts. */
function knownKeys(schema: z.ZodType, path: FieldPath): string[] {
  const s = schemaAt(schema, path);
  const def = s === undefined ? undefined : defOf(s);
  return def?.type === 'object' && def.shape !== undefined ? Object.keys(def.shape) : [];
}
