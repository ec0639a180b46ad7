// Istio's string-match grammar for policy values, compiled once.
//
//   "*"       any non-empty value (Istio generates the regex `.+`)
//   "*suffix" suffix match
//   "prefix*" prefix match
//   otherwise exact match
//
// A list of values is an OR. Exact values go in a Set so a long allow-list
// costs one hash lookup; prefixes and suffixes are checked in order.

export type StringPredicate = (value: string) => boolean;

export interface StringMatchOptions {
  /**
   * Case-insensitive match (Istio does this for hosts). Patterns are folded
   * here, once; the caller passes an already lower-cased value, so a request
   * is folded once however many policies look at it.
   */
  readonly ignoreCase?: boolean;
}

const NEVER: StringPredicate = () => false;
const NON_EMPTY: StringPredicate = (v) => v.length > 0;

/** Compile a list of Istio match values into one predicate; an empty list matches nothing. */
export function compileStringMatch(values: readonly string[], options: StringMatchOptions = {}): StringPredicate {
  const ignoreCase = options.ignoreCase === true;
  const fold = ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let any = false;
  for (const v of values) {
    if (v === '*') any = true;
    else if (v.startsWith('*')) suffixes.push(fold(v.slice(1)));
    else if (v.endsWith('*')) prefixes.push(fold(v.slice(0, -1)));
    else exact.add(fold(v));
  }
  if (any) return NON_EMPTY;
  if (exact.size === 0 && prefixes.length === 0 && suffixes.length === 0) return NEVER;
  return (value: string): boolean => {
    if (exact.has(value)) return true;
    for (let i = 0; i < prefixes.length; i++) if (value.startsWith(prefixes[i]!)) return true;
    for (let i = 0; i < suffixes.length; i++) if (value.endsWith(suffixes[i]!)) return true;
    return false;
  };
}
