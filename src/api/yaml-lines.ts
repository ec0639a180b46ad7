// Maps a field path inside a parsed YAML document back to a source line, so
// a diagnostic points at the offending key or list entry. A path that does
// not exist in the source (a missing field) gets the line of its nearest
// ancestor that does.

import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { FieldPath } from './field-path.ts';

export type LineFinder = (path: FieldPath) => number;

export function lineFinder(doc: Document, counter: LineCounter): LineFinder {
  const lineAt = (offset: number): number => counter.linePos(offset).line;
  const contents = doc.contents as Node | null;
  const firstLine = lineAt(contents?.range?.[0] ?? doc.range?.[0] ?? 0);

  return (path) => {
    let node: unknown = contents;
    let line = firstLine;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (pair === undefined) break;
        const keyStart = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
        if (keyStart !== undefined) line = lineAt(keyStart);
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item: unknown = node.items[seg];
        if (item === undefined) break;
        const start = (item as Node).range?.[0];
        if (start !== undefined) line = lineAt(start);
        node = item;
      } else {
        break;
      }
    }
    return line;
  };
}
