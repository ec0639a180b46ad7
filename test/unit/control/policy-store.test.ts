// The control plane's policy directory: a good load becomes a generation; a
// bad file is reported with its name and the previous generation stays;
// fixing it applies again; a change made on disk is noticed by the watch.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyStore, type PolicyGeneration } from '../../../src/control/config/policy-store.ts';

const ap = (name: string, action = 'ALLOW'): string => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: demo }
spec: { action: ${action}, rules: [{}] }
`;

function withDir(run: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshward-store-'));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

describe('policy store', () => {
  it('refuses to open on an invalid directory', withDir((dir) => {
    writeFileSync(join(dir, 'bad.yaml'), ap('x', 'MAYBE'));
    const r = PolicyStore.open({ dir });
    assert.ok('diagnostics' in r);
    assert.match(r.diagnostics[0]!.file, /bad\.yaml$/);
  }));

  it('keeps the last good generation when a file turns invalid, and applies the fix', withDir((dir) => {
    writeFileSync(join(dir, 'a.yaml'), ap('a'));
    const store = PolicyStore.open({ dir });
    assert.ok(!('diagnostics' in store));
    const first = store.current;
    assert.equal(first.documents.length, 1);

    writeFileSync(join(dir, 'b.yaml'), ap('b', 'MAYBE'));
    const bad = store.reload();
    assert.ok('diagnostics' in bad);
    assert.match(bad.diagnostics.map((d) => `${d.file} ${d.path ?? ''} ${d.message}`).join('\n'), /b\.yaml spec\.action/);
    assert.equal(store.current, first);
    assert.ok(store.rejected !== undefined);

    writeFileSync(join(dir, 'b.yaml'), ap('b'));
    const good = store.reload() as PolicyGeneration;
    assert.ok(good.version > first.version);
    assert.equal(good.documents.length, 2);
    assert.equal(store.rejected, undefined);
    assert.deepEqual(store.reloads, { applied: 1, rejected: 1 });
  }));

  it('notices a change on disk through the watch, debounced into one generation', withDir(async (dir) => {
    writeFileSync(join(dir, 'a.yaml'), ap('a'));
    const seen: PolicyGeneration[] = [];
    const store = PolicyStore.open({ dir, debounceMs: 30, onGeneration: (g) => seen.push(g) });
    assert.ok(!('diagnostics' in store));
    store.watch();
    try {
      writeFileSync(join(dir, 'b.yaml'), ap('b'));
      writeFileSync(join(dir, 'c.yaml'), ap('c'));
      unlinkSync(join(dir, 'a.yaml'));
      const deadline = Date.now() + 5000;
      while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(seen.length, 1);
      assert.deepEqual(seen[0]!.documents.map((d) => d.resources[0]!.metadata.name).sort(), ['b', 'c']);
    } finally {
      store.close();
    }
  }));
});
