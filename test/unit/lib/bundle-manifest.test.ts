import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLE_DIR, BUNDLE_ENTRY, MANIFEST_NAME, buildDirectoryFor, digestOf, freshBundleEntry } from '../../../src/lib/bundle-manifest.ts';

/** A package root with two sources, a build of them and its manifest, as tools/build-bundle.ts leaves them. */
function builtPackage(): { root: string; entry: string } {
  const root = mkdtempSync(join(tmpdir(), 'mw-bundle-'));
  mkdirSync(join(root, 'src'));
  writeFileSync(join(root, 'src', 'a.ts'), 'export const a = 1;\n');
  writeFileSync(join(root, 'src', 'b.ts'), "export { a } from './a.ts';\n");
  const inputs = { 'src/a.ts': digestOf('src/a.ts', root)!, 'src/b.ts': digestOf('src/b.ts', root)! };
  const directory = buildDirectoryFor(inputs);
  mkdirSync(join(root, BUNDLE_DIR, directory), { recursive: true });
  const entry = join(root, BUNDLE_DIR, directory, BUNDLE_ENTRY);
  writeFileSync(entry, 'export {};\n');
  writeFileSync(join(root, BUNDLE_DIR, MANIFEST_NAME), JSON.stringify({ directory, inputs }));
  return { root, entry };
}

describe('freshBundleEntry', () => {
  it('names the build while every input hashes as when it was built', () => {
    const { root, entry } = builtPackage();
    assert.equal(freshBundleEntry(root), entry);
  });

  it('is null once an input is edited, and fresh again when the edit is undone', () => {
    const { root, entry } = builtPackage();
    writeFileSync(join(root, 'src', 'a.ts'), 'export const a = 2;\n');
    assert.equal(freshBundleEntry(root), null);
    writeFileSync(join(root, 'src', 'a.ts'), 'export const a = 1;\n');
    assert.equal(freshBundleEntry(root), entry);
  });

  it('is null once an input is deleted', () => {
    const { root } = builtPackage();
    rmSync(join(root, 'src', 'b.ts'));
    assert.equal(freshBundleEntry(root), null);
  });

  it('is null without a manifest, with a malformed one, or with one whose build is gone', () => {
    const none = mkdtempSync(join(tmpdir(), 'mw-bundle-'));
    assert.equal(freshBundleEntry(none), null);

    const { root } = builtPackage();
    const manifest = join(root, BUNDLE_DIR, MANIFEST_NAME);
    const inputs = { 'src/a.ts': digestOf('src/a.ts', root)! };
    for (const bad of ['{', '[]', JSON.stringify({ directory: '../../src', inputs }), JSON.stringify({ directory: buildDirectoryFor(inputs), inputs: {} })]) {
      writeFileSync(manifest, bad);
      assert.equal(freshBundleEntry(root), null, bad);
    }
    writeFileSync(manifest, JSON.stringify({ directory: buildDirectoryFor(inputs), inputs }));
    assert.equal(freshBundleEntry(root), null, 'the directory it names holds no build');
  });
});

describe('buildDirectoryFor', () => {
  it('depends on every input and its digest, not on their order', () => {
    const a = buildDirectoryFor({ 'src/a.ts': '01', 'src/b.ts': '02' });
    assert.match(a, /^[0-9a-f]{16}$/);
    assert.equal(buildDirectoryFor({ 'src/b.ts': '02', 'src/a.ts': '01' }), a);
    assert.notEqual(buildDirectoryFor({ 'src/a.ts': '01', 'src/b.ts': '03' }), a);
    assert.notEqual(buildDirectoryFor({ 'src/a.ts': '01' }), a);
  });
});

describe('digestOf', () => {
  it('is the SHA-256 of the file, or null when there is none', () => {
    const root = mkdtempSync(join(tmpdir(), 'mw-bundle-'));
    writeFileSync(join(root, 'x'), 'abc');
    assert.equal(digestOf('x', root), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(digestOf('missing', root), null);
  });
});
