import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT, RUNNING_FROM, findPackageRoot, packageFile } from '../../../src/lib/installation.ts';

describe('installation', () => {
  it('finds the package root from any depth below it, by its package.json', () => {
    assert.equal(PACKAGE_ROOT, resolve(import.meta.dirname, '../../..'));
    assert.ok(existsSync(packageFile('src', 'api', 'proto', 'meshward-config.proto')));
    assert.ok(existsSync(packageFile('bin', 'meshward.js')));
    const root = mkdtempSync(join(tmpdir(), 'mw-root-'));
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'meshward' }));
    mkdirSync(join(root, 'build', 'bundle', '0123456789abcdef'), { recursive: true });
    assert.equal(findPackageRoot(join(root, 'build', 'bundle', '0123456789abcdef')), root);
  });

  it('passes over package.json files of other packages, and says so when there is none of this one', () => {
    const root = mkdtempSync(join(tmpdir(), 'mw-root-'));
    mkdirSync(join(root, 'node_modules', 'other'), { recursive: true });
    writeFileSync(join(root, 'node_modules', 'other', 'package.json'), JSON.stringify({ name: 'other' }));
    assert.throws(() => findPackageRoot(join(root, 'node_modules', 'other')), /no package\.json of meshward at or above/);
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'meshward' }));
    assert.equal(findPackageRoot(join(root, 'node_modules', 'other')), root);
  });

  it('knows it runs from the TypeScript sources here', () => {
    assert.equal(RUNNING_FROM, 'source');
  });
});
