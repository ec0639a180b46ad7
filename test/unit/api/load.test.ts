import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadResources, loadResourcesFromText } from '../../../src/api/load.ts';
import { errorsOf, lineOf, load, resourceCount, warningsOf } from './support.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'istio');

const pa = (name: string, namespace = 'foo'): string => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  mtls:
    mode: STRICT
`;

describe('loading text', () => {
  it('reads every document of a stream, with its index and first line', () => {
    const yaml = `# leading comment\n${pa('a')}---\n${pa('b')}---\n# a comment-only document\n---\n${pa('c')}`;
    const result = load(yaml);
    assert.deepEqual(result.diagnostics, []);
    assert.deepEqual(
      result.resources.peerAuthentications.map((p) => [p.metadata.name, p.source.documentIndex, p.source.line]),
      [
        ['a', 0, 2],
        ['b', 1, lineOf(yaml, 'apiVersion', 2)],
        ['c', 3, lineOf(yaml, 'apiVersion', 3)],
      ],
    );
  });

  it('empty text, comments, and null documents contribute nothing', () => {
    for (const text of ['', '\n', '# just a comment\n', '---\n', '---\n---\n', '~\n', 'null\n']) {
      const result = load(text);
      assert.deepEqual([resourceCount(result), result.diagnostics.length], [0, 0], JSON.stringify(text));
    }
  });

  it('a YAML syntax error names the line and spares the other documents', () => {
    const yaml = `${pa('good')}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: [broken\n---\n${pa('also-good')}`;
    const result = load(yaml);
    const errors = errorsOf(result);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.documentIndex, 1);
    assert.equal(errors[0]!.path, undefined);
    assert.match(errors[0]!.message, /^YAML syntax error: /);
    assert.ok(errors[0]!.line! >= lineOf(yaml, 'name: [broken'));
    assert.deepEqual(result.resources.peerAuthentications.map((p) => p.metadata.name), ['good', 'also-good']);
  });

  it('a duplicate key is a syntax error on its line', () => {
    const yaml = pa('dup').replace('    mode: STRICT\n', '    mode: STRICT\n    mode: DISABLE\n');
    const errors = errorsOf(load(yaml));
    assert.deepEqual(
      errors.map((d) => [d.line, d.message]),
      [[lineOf(yaml, 'mode: DISABLE'), 'YAML syntax error: Map keys must be unique']],
    );
  });

  it('anchors, aliases and merge keys work as they do for kubectl', () => {
    const yaml = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: merged
spec:
  selector:
    matchLabels:
      app: a
  mtls: &strict
    mode: STRICT
  portLevelMtls:
    8080:
      <<: *strict
`;
    const result = load(yaml);
    assert.deepEqual(result.diagnostics, []);
    assert.equal(result.resources.peerAuthentications[0]?.spec.portLevelMtls?.[8080]?.mode, 'STRICT');
  });

  it('the same kind, namespace and name twice is an error naming the first', () => {
    const yaml = `${pa('x')}---\n${pa('x')}---\n${pa('x', 'bar')}`;
    const result = load(yaml);
    assert.deepEqual(
      errorsOf(result).map((d) => [d.documentIndex, d.path, d.message]),
      [[1, 'metadata.name', 'duplicate PeerAuthentication foo/x: already defined at policy.yaml:1']],
    );
    assert.equal(result.resources.peerAuthentications.length, 2);
  });

  it('returns a frozen result', () => {
    const result = loadResourcesFromText('a.yaml', pa('x'));
    assert.ok(Object.isFrozen(result) && Object.isFrozen(result.resources) && Object.isFrozen(result.resources.peerAuthentications));
    assert.ok(Object.isFrozen(result.resources.peerAuthentications[0]!.metadata.labels));
  });
});

describe('loading files and directories', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshward-load-'));
    mkdirSync(join(dir, 'b', 'nested'), { recursive: true });
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, '.hidden'));
    // Written out of order on purpose: the load order must not depend on it.
    writeFileSync(join(dir, 'b', 'nested', 'z.yml'), pa('z'));
    writeFileSync(join(dir, 'b', '10.yaml'), pa('ten'));
    writeFileSync(join(dir, 'b', '9.yaml'), pa('nine'));
    writeFileSync(join(dir, 'a', 'policy.json'), JSON.stringify(jsonPa('json'), null, 2));
    writeFileSync(join(dir, 'a', 'notes.txt'), 'not: [yaml');
    writeFileSync(join(dir, '.hidden', 'x.yaml'), pa('hidden'));
    writeFileSync(join(dir, 'empty.yaml'), '');
    writeFileSync(join(dir, 'comments.yaml'), '# nothing here\n');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads *.yaml, *.yml and *.json recursively in lexical path order, skipping hidden entries', () => {
    const result = loadResources([dir]);
    assert.deepEqual(result.diagnostics, []);
    assert.deepEqual(
      result.resources.peerAuthentications.map((p) => [p.metadata.name, p.source.file.slice(dir.length + 1)]),
      [
        ['json', join('a', 'policy.json')],
        ['ten', join('b', '10.yaml')],
        ['nine', join('b', '9.yaml')],
        ['z', join('b', 'nested', 'z.yml')],
      ],
    );
  });

  it('reads files and directories in the order given, each file once', () => {
    const file = join(dir, 'b', '9.yaml');
    const link = join(dir, 'link.yaml');
    symlinkSync(file, link);
    try {
      const result = loadResources([file, join(dir, 'b'), link]);
      assert.deepEqual(result.diagnostics, []);
      assert.deepEqual(result.resources.peerAuthentications.map((p) => p.metadata.name), ['nine', 'ten', 'z']);
    } finally {
      rmSync(link);
    }
  });

  it('a missing path is an error naming it', () => {
    const missing = join(dir, 'nope.yaml');
    const result = loadResources([missing, join(dir, 'b', '9.yaml')]);
    assert.deepEqual(errorsOf(result), [{ severity: 'error', file: missing, message: 'cannot read: no such file or directory' }]);
    assert.equal(result.resources.peerAuthentications.length, 1);
  });

  it('an unreadable file is an error naming it', { skip: process.getuid?.() === 0 ? 'root reads everything' : false }, () => {
    const file = join(dir, 'locked.yaml');
    writeFileSync(file, pa('locked'));
    chmodSync(file, 0o000);
    try {
      assert.deepEqual(errorsOf(loadResources([file])), [{ severity: 'error', file, message: 'cannot read: permission denied' }]);
    } finally {
      rmSync(file);
    }
  });

  it('a file named explicitly is read whatever its extension', () => {
    const file = join(dir, 'policy.txt');
    writeFileSync(file, pa('txt'));
    try {
      assert.deepEqual(loadResources([file]).resources.peerAuthentications.map((p) => p.metadata.name), ['txt']);
    } finally {
      rmSync(file);
    }
  });

  it("loads the valid fixtures without an error", () => {
    const result = loadResources([join(FIXTURES, 'valid')]);
    assert.deepEqual(errorsOf(result), []);
    assert.deepEqual(
      [
        result.resources.authorizationPolicies.length,
        result.resources.peerAuthentications.length,
        result.resources.requestAuthentications.length,
        result.resources.destinationRules.length,
      ],
      [12, 5, 3, 7],
    );
    // Istio's own warning for its dry-run DENY example, which only uses paths.
    assert.deepEqual(warningsOf(result).map((w) => w.path), ['spec.rules[0]']);
  });

  it('JSON errors carry lines too', () => {
    const file = join(FIXTURES, 'invalid', 'bad-cidr.json');
    assert.deepEqual(
      errorsOf(loadResources([file])).map((d) => [d.file, d.documentIndex, d.line, d.path, d.message]),
      [[file, 0, 8, 'spec.rules[0].from[0].source.ipBlocks[1]', 'invalid CIDR "10.0.0.0/33": prefix length "33" must be a number from 0 to 32']],
    );
  });

  it('reports every invalid fixture, each with file and line', () => {
    const result = loadResources([join(FIXTURES, 'invalid')]);
    assert.deepEqual(
      errorsOf(result).map((d) => [d.file.slice(FIXTURES.length + 1), d.line, d.path ?? '']),
      [
        [join('invalid', 'bad-cidr.json'), 8, 'spec.rules[0].from[0].source.ipBlocks[1]'],
        [join('invalid', 'syntax-error.yaml'), 8, ''],
        [join('invalid', 'unknown-field.yaml'), 8, 'spec.mtls.mod'],
      ],
    );
    assert.equal(resourceCount(result), 0);
  });
});

function jsonPa(name: string): unknown {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name, namespace: 'foo' },
    spec: { mtls: { mode: 'STRICT' } },
  };
}
