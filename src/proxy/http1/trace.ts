// Trace context on the fast lane. The tracer reads, and a span rewrites, a
// handful of headers in node's form: an object of lower-case names, a
// header sent twice joined with ", " as node's parser joins it. The lane
// has its request head as two arrays instead; these build that object from
// the head and write what the span left in it back as head lines, in place
// of the caller's own, so the upstream gets what the full path sends: each
// of those headers once, with the same value. Only a proxy that traces
// calls them.
//
//   const span = tracer.start('server', name, traceHeaders(head));
//   const trace = traceHeaders(head);
//   span.inject(trace);
//   out += linesOf(untracedFields(head)) + traceLines(trace);

import type { OutgoingHttpHeaders } from 'node:http';
import { isHeaderValue } from './head.ts';

/** Every header Tracer.start reads or Span.inject writes or removes. */
const TRACE_HEADERS: ReadonlySet<string> = new Set([
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'x-request-id',
]);

export interface HeaderFields {
  /** Lower-case names, in order. */
  readonly names: readonly string[];
  readonly values: readonly string[];
}

/** Whether `name` (lower case) is one of the headers tracing reads or rewrites. */
export function isTraceHeader(name: string): boolean {
  return TRACE_HEADERS.has(name);
}

/**
 * The head's trace headers as node's parser gives them to the full path:
 * none of them is one node keeps only the first of, so a repeated one is
 * joined (and a repeated traceparent is then malformed, as it is there).
 */
export function traceHeaders(head: HeaderFields): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < head.names.length; i++) {
    const name = head.names[i]!;
    if (!TRACE_HEADERS.has(name)) continue;
    const seen = out[name];
    out[name] = seen === undefined ? head.values[i]! : `${seen}, ${head.values[i]!}`;
  }
  return out;
}

/** The head's other fields, in order: the ones a span leaves alone. */
export function untracedFields(head: HeaderFields): HeaderFields {
  const names: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < head.names.length; i++) {
    const name = head.names[i]!;
    if (TRACE_HEADERS.has(name)) continue;
    names.push(name);
    values.push(head.values[i]!);
  }
  return { names, values };
}

/**
 * The trace headers a span injected into, as head lines each prefixed with
 * CRLF. A value that could not be sent as a header (a control character) is
 * left out rather than written into the head.
 */
export function traceLines(headers: OutgoingHttpHeaders): string {
  let out = '';
  for (const name in headers) {
    const value = headers[name];
    if (typeof value === 'string' && isHeaderValue(value)) out += `\r\n${name}: ${value}`;
  }
  return out;
}
