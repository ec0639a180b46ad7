// Summarizes a V8 .cpuprofile (node --cpu-prof): the functions with the most
// self time, self time per source file, and the total (inclusive) time of
// the repository's own functions, as markdown tables.
//
//   npx node bench/two-hop/profile-summary.ts FILE.cpuprofile [--top 25]

import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

const REPO = resolve(import.meta.dirname, '../..');

function where(cf: CallFrame): string {
  if (cf.url === '') return '(native)';
  const path = cf.url.startsWith('file://') ? relative(REPO, new URL(cf.url).pathname) : cf.url;
  return path;
}

export function summarize(profile: CpuProfile, top: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = new Set(['(idle)', '(program)', '(garbage collector)']);
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const name = cf.functionName === '' ? '(anonymous)' : cf.functionName;
    const key = idle.has(name) ? name : `${name} — ${where(cf)}:${cf.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const f = idle.has(name) ? name : where(cf);
    file.set(f, (file.get(f) ?? 0) + us);
  }
  const busy = total - (fn.get('(idle)') ?? 0);
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`;
  const lines = [`Sampled ${(total / 1e6).toFixed(2)} s, of which not idle ${(busy / 1e6).toFixed(2)} s; shares are of the non-idle time.`, ''];
  lines.push('| self time | share | function — file:line |', '|---:|---:|---|');
  for (const [k, us] of [...fn].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`| ${(us / 1000).toFixed(0)} ms | ${pct(us)} | ${k} |`);
  }
  lines.push('', '| self time | share | file |', '|---:|---:|---|');
  for (const [k, us] of [...file].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`| ${(us / 1000).toFixed(0)} ms | ${pct(us)} | ${k} |`);
  }
  // Inclusive ("total") time of the repository's own functions: a sample
  // counts once for every distinct src/ function on its stack.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const cf = byId.get(at)!.callFrame;
      const w = where(cf);
      if (!w.startsWith('src/')) continue;
      const key = `${cf.functionName === '' ? '(anonymous)' : cf.functionName} — ${w}:${cf.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  lines.push('', '| total time | share | src/ function — file:line (self + callees) |', '|---:|---:|---|');
  for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`| ${(us / 1000).toFixed(0)} ms | ${pct(us)} | ${k} |`);
  }
  return lines.join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  for (const f of positionals) {
    console.log(`### ${f}\n`);
    console.log(summarize(JSON.parse(readFileSync(f, 'utf8')) as CpuProfile, Number(values.top)));
    console.log('');
  }
}
