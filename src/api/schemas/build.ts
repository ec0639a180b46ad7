// Small builders shared by the resource schemas: strings checked by a value
// rule, lists, and cross-field rules that run even when some field below
// them is malformed, so one pass reports every mistake in a resource.

import * as z from 'zod';
import type { Check } from './values.ts';

export type PathSegment = string | number;
export type Raw = Readonly<Record<string, unknown>>;

/** A warning about a valid resource, at a path relative to its spec. */
export interface Finding {
  readonly path: readonly PathSegment[];
  readonly message: string;
}

export interface RuleContext {
  /** Reports a problem at `path`, relative to the object the rule is attached to. */
  error(path: readonly PathSegment[], message: string): void;
  /**
   * Like `error`, but dropped when the same object also has unknown fields:
   * "source is empty" only adds noise next to `unknown field "principles"`.
   */
  errorUnlessUnknownFields(path: readonly PathSegment[], message: string): void;
}

/** Marks an issue that `errorUnlessUnknownFields` raised. */
export const UNLESS_UNKNOWN_FIELDS = 'unlessUnknownFields';

export function isRecord(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A string that must also pass `check`. */
export function checked(check: Check) {
  return z.string().superRefine((s, ctx) => {
    const reason = check(s);
    if (reason !== null) ctx.addIssue({ code: 'custom', message: reason });
  });
}

/** A non-empty string. */
export const nonEmpty = () =>
  z.string().superRefine((s, ctx) => {
    if (s === '') ctx.addIssue({ code: 'custom', message: 'must not be empty' });
  });

/** A list that, when present, has at least one entry; `why` says what leaving the field out means instead. */
export function nonEmptyList<T extends z.ZodType>(item: T, why: string) {
  return z.array(item).superRefine((list, ctx) => {
    if (list.length === 0) ctx.addIssue({ code: 'custom', message: `cannot be empty; ${why}` });
  });
}

/**
 * Attaches cross-field rules to an object schema. The rules see the object
 * as parsed so far, even when a field below it failed, so they must read
 * fields defensively (see `present`, `listLength`).
 */
export function withRules<T extends z.ZodType>(schema: T, rules: (value: Raw, ctx: RuleContext) => void): T {
  return schema.superRefine(
    (value, zctx) => {
      if (!isRecord(value)) return;
      rules(value, {
        error: (path, message) => zctx.addIssue({ code: 'custom', message, path: [...path] }),
        errorUnlessUnknownFields: (path, message) =>
          zctx.addIssue({ code: 'custom', message, path: [...path], params: { [UNLESS_UNKNOWN_FIELDS]: true } }),
      });
    },
    { when: () => true },
  );
}

/** True when the field is set (not absent). */
export function present(obj: Raw, key: string): boolean {
  return obj[key] !== undefined;
}

/** Length of a list field; 0 when absent or not a list. */
export function listLength(obj: Raw, key: string): number {
  const v = obj[key];
  return Array.isArray(v) ? v.length : 0;
}

/** The field if it is a string, else undefined. */
export function stringField(obj: Raw, key: string): string | undefined {
  const v = obj[key];
  return typeof v === 'string' ? v : undefined;
}

/** The field if it is an object, else undefined. */
export function recordField(obj: Raw, key: string): Raw | undefined {
  const v = obj[key];
  return isRecord(v) ? v : undefined;
}

/** The field's entries if it is a list, else an empty list. */
export function listField(obj: Raw, key: string): readonly unknown[] {
  const v = obj[key];
  return Array.isArray(v) ? v : [];
}
