// A clause is one field of a rule (`principals`, `paths`, a `when` key…)
// compiled to a predicate over RequestAttributes. Its values are an OR, its
// notValues an OR that must not match; a rule is clauses ANDed together.
// Clauses keep their field name and values so a decision can say which one
// failed.

import type { RequestAttributes } from './attributes.ts';

export type AttributePredicate = (a: RequestAttributes) => boolean;

export interface Clause {
  /** Field path as users write it: `source.principals`, `when[request.headers[x-user]]`. */
  readonly field: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
  /** HTTP-only fields change meaning on TCP connections; see compile.ts. */
  readonly httpOnly: boolean;
  readonly test: AttributePredicate;
}

/** Combine the values and notValues predicates of one field into one clause. */
export function makeClause(
  field: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  httpOnly: boolean,
  build: (values: readonly string[]) => AttributePredicate,
): Clause | null {
  const hasValues = values !== undefined && values.length > 0;
  const hasNot = notValues !== undefined && notValues.length > 0;
  if (!hasValues && !hasNot) return null;
  const pos = hasValues ? build(values) : null;
  const neg = hasNot ? build(notValues) : null;
  let test: AttributePredicate;
  if (pos !== null && neg !== null) test = (a) => pos(a) && !neg(a);
  else if (pos !== null) test = pos;
  else test = (a) => !neg!(a);
  return Object.freeze({
    field,
    values: hasValues ? values : [],
    notValues: hasNot ? notValues : [],
    httpOnly,
    test,
  });
}
