import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { normalizePath } from '../../../src/policy/normalize-path.ts';
import type { PathNormalization } from '../../../src/api/mesh-config.ts';

const MODES: readonly PathNormalization[] = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'];
const NORMALIZING: readonly PathNormalization[] = ['BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'];

function path(raw: string, mode: PathNormalization): string {
  const r = normalizePath(raw, mode);
  assert.ok(r.ok, `${JSON.stringify(raw)} under ${mode} was rejected: ${r.ok ? '' : r.reason}`);
  return r.path;
}

function rejects(raw: string, mode: PathNormalization): void {
  const r = normalizePath(raw, mode);
  assert.equal(r.ok, false, `${JSON.stringify(raw)} under ${mode} should be rejected`);
}

/** Expected path per mode: [NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES]. */
type Row = readonly [input: string, none: string, base: string, merge: string, decode: string];

function table(rows: readonly Row[]): void {
  for (const [input, ...expected] of rows) {
    it(JSON.stringify(input), () => {
      MODES.forEach((mode, i) => assert.equal(path(input, mode), expected[i], `mode ${mode}`));
    });
  }
}

describe('normalizePath: authorization bypass attempts', () => {
  table([
    ['/admin/../public', '/admin/../public', '/public', '/public', '/public'],
    ['/public/../admin', '/public/../admin', '/admin', '/admin', '/admin'],
    ['/./admin', '/./admin', '/admin', '/admin', '/admin'],
    ['//admin', '//admin', '//admin', '/admin', '/admin'],
    ['/admin/', '/admin/', '/admin/', '/admin/', '/admin/'],
    ['/%61dmin', '/%61dmin', '/admin', '/admin', '/admin'],
    ['/%2e%2e/admin', '/%2e%2e/admin', '/admin', '/admin', '/admin'],
    ['/public/%2e%2e/admin', '/public/%2e%2e/admin', '/admin', '/admin', '/admin'],
    ['/public/%2E./admin', '/public/%2E./admin', '/admin', '/admin', '/admin'],
    ['/admin%2Fx', '/admin%2Fx', '/admin%2Fx', '/admin%2Fx', '/admin/x'],
    ['/admin%2fx', '/admin%2fx', '/admin%2fx', '/admin%2fx', '/admin/x'],
    ['/admin%5Cx', '/admin%5Cx', '/admin%5Cx', '/admin%5Cx', '/admin/x'],
    ['/admin%5cx', '/admin%5cx', '/admin%5cx', '/admin%5cx', '/admin/x'],
    ['/public/..%2Fadmin', '/public/..%2Fadmin', '/public/..%2Fadmin', '/public/..%2Fadmin', '/admin'],
    ['/\\admin', '/\\admin', '//admin', '/admin', '/admin'],
    ['/public\\..\\admin', '/public\\..\\admin', '/admin', '/admin', '/admin'],
    ['/admin?x=1', '/admin', '/admin', '/admin', '/admin'],
    ['/admin#frag', '/admin', '/admin', '/admin', '/admin'],
    ['/public#/../admin', '/public', '/public', '/public', '/public'],
    ['/public?/../admin', '/public', '/public', '/public', '/public'],
    ['/admin#frag?q', '/admin', '/admin', '/admin', '/admin'],
    ['/admin;x', '/admin;x', '/admin;x', '/admin;x', '/admin;x'],
    ['/..;/admin', '/..;/admin', '/..;/admin', '/..;/admin', '/..;/admin'],
    ['/ADMIN', '/ADMIN', '/ADMIN', '/ADMIN', '/ADMIN'],
    ['/Admin/%41', '/Admin/%41', '/Admin/A', '/Admin/A', '/Admin/A'],
  ]);

  it('rejects a target that does not start with "/"', () => {
    for (const mode of MODES) {
      for (const raw of ['admin', '\\admin', '', '*', 'http://evil/admin', '?/admin', '#/admin', '%2Fadmin']) {
        rejects(raw, mode);
      }
    }
  });

  it('rejects control characters, space and DEL anywhere in the target', () => {
    for (const mode of MODES) {
      for (const raw of ['/adm\u0000in', '/admin\t', '/ad min', '/admin\u007f', '/admin?x=\n', '/admin#\r', '/\u001f']) {
        rejects(raw, mode);
      }
    }
  });

  it('rejects lone surrogates (not representable as UTF-8)', () => {
    for (const mode of MODES) {
      for (const raw of ['/a\ud800', '/\udc00b', '/a\ud800b', '/ok?q=\udfff']) rejects(raw, mode);
    }
  });

  it('rejects an escaped NUL when normalizing, as Envoy answers 400', () => {
    for (const mode of NORMALIZING) rejects('/admin%00', mode);
    assert.equal(path('/admin%00', 'NONE'), '/admin%00');
  });
});

describe('normalizePath: Istio pathNormalization golden cases', () => {
  // Expectations from Istio's normalization integration test (tests/integration/security/normalization_test.go).
  table([
    ['/', '/', '/', '/', '/'],
    ['/app#foo', '/app', '/app', '/app', '/app'],
    ['/app/', '/app/', '/app/', '/app/', '/app/'],
    ['/app/../admin', '/app/../admin', '/admin', '/admin', '/admin'],
    ['/app', '/app', '/app', '/app', '/app'],
    ['/app//', '/app//', '/app//', '/app/', '/app/'],
    ['/app/%2f', '/app/%2f', '/app/%2f', '/app/%2f', '/app/'],
    ['/app%2f/', '/app%2f/', '/app%2f/', '/app%2f/', '/app/'],
    ['/xyz%30..//abc', '/xyz%30..//abc', '/xyz0..//abc', '/xyz0../abc', '/xyz0../abc'],
    ['/app/%2E./admin', '/app/%2E./admin', '/admin', '/admin', '/admin'],
    ['/app\\admin', '/app\\admin', '/app/admin', '/app/admin', '/app/admin'],
    ['/app/\\/\\/\\admin', '/app/\\/\\/\\admin', '/app//////admin', '/app/admin', '/app/admin'],
    ['/%2Fapp%5cadmin%5Cabc', '/%2Fapp%5cadmin%5Cabc', '/%2Fapp%5cadmin%5Cabc', '/%2Fapp%5cadmin%5Cabc', '/app/admin/abc'],
    [
      '/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc',
      '/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc',
      '/%5Capp%2f%5c%2F..%2fadmin%5c/abc',
      '/%5Capp%2f%5c%2F..%2fadmin%5c/abc',
      '/app/admin/abc',
    ],
    ['/app//../admin', '/app//../admin', '/app/admin', '/app/admin', '/app/admin'],
    ['/app//../../admin', '/app//../../admin', '/admin', '/admin', '/admin'],
  ]);

  it('DECODE_AND_MERGE_SLASHES leaves lookalike encodings alone', () => {
    const unchanged = [
      '/0x2e0x2e/admin',
      '/0x2e0x2e0x2fadmin',
      '/%25c0%25ae%25c1%259cadmin',
      '/%252e%252e/admin',
      '/%252e%252e%252fadmin',
      '/%c1%9cadmin',
      '/%c0%ae%c0%ae/admin',
      '/%c0%afadmin',
      '/.../admin',
      '/..../admin',
      '/..;/admin',
      '/;/admin',
      '/admin;a=b/xyz',
      '/admin,a=b/xyz',
      '/Admin',
    ];
    for (const raw of unchanged) assert.equal(path(raw, 'DECODE_AND_MERGE_SLASHES'), raw);
    assert.equal(path('/%c0%2e%c0%2e/admin', 'DECODE_AND_MERGE_SLASHES'), '/%c0.%c0./admin');
    assert.equal(path('/%c0%2fadmin', 'DECODE_AND_MERGE_SLASHES'), '/%c0/admin');
  });

  it('DECODE_AND_MERGE_SLASHES decodes exactly the unreserved escapes and slashes, %01 to %ff', () => {
    for (let i = 1; i <= 0xff; i++) {
      const hex = i.toString(16).padStart(2, '0');
      const input = `/admin%${hex}`;
      const ch = String.fromCharCode(i);
      let expected = input;
      if (/[A-Za-z0-9\-._~]/.test(ch)) expected = `/admin${ch}`;
      if (ch === '/' || ch === '\\') expected = '/admin/';
      assert.equal(path(input, 'DECODE_AND_MERGE_SLASHES'), expected, input);
    }
  });
});

describe('normalizePath: Chromium canonicalization details', () => {
  it('keeps the hex case of escapes it does not decode', () => {
    assert.equal(path('/a/%2F%2f/c', 'BASE'), '/a/%2F%2f/c');
    assert.equal(path('/%5c%25', 'BASE'), '/%5c%25');
    assert.equal(path('/%c0%af', 'BASE'), '/%c0%af');
    assert.equal(path('/%7b%7B', 'BASE'), '/%7b%7B');
  });

  it('never climbs above the root', () => {
    assert.equal(path('/a/b/../../../../c', 'BASE'), '/c');
    assert.equal(path('/..', 'BASE'), '/');
    assert.equal(path('/../a/b', 'BASE'), '/a/b');
    assert.equal(path('/a/..', 'BASE'), '/');
    assert.equal(path('/a/.', 'BASE'), '/a/');
  });

  it('treats dots inside names as names', () => {
    assert.equal(path('/foo/..bar', 'BASE'), '/foo/..bar');
    assert.equal(path('/foo/.bar', 'BASE'), '/foo/.bar');
    assert.equal(path('/foo%2e', 'BASE'), '/foo.');
  });

  it('percent-encodes non-ASCII as UTF-8 and characters a path may not carry raw', () => {
    assert.equal(path('/é', 'BASE'), '/%C3%A9');
    assert.equal(path('/日本', 'BASE'), '/%E6%97%A5%E6%9C%AC');
    assert.equal(path('/\u{1F600}', 'BASE'), '/%F0%9F%98%80');
    assert.equal(path('/a"<>^`{|}b', 'BASE'), '/a%22%3C%3E%5E%60%7B%7C%7Db');
    assert.equal(path('/é', 'NONE'), '/é');
  });

  it('escapes a stray % whose neighbours decode into a new escape', () => {
    assert.equal(path('/%%32e', 'BASE'), '/%252e');
    assert.equal(path('/%%30%30', 'BASE'), '/%2500');
    assert.equal(path('/%%34%31', 'BASE'), '/%2541');
    assert.equal(path('/%zz%', 'BASE'), '/%zz%');
  });

  it('merges a path made only of slashes into "//", like Envoy', () => {
    assert.equal(path('//', 'MERGE_SLASHES'), '//');
    assert.equal(path('////', 'MERGE_SLASHES'), '//');
    assert.equal(path('/', 'MERGE_SLASHES'), '/');
    assert.equal(path('/a//b//', 'MERGE_SLASHES'), '/a/b/');
  });

  it('returns the input itself when there is nothing to change', () => {
    const raw = '/api/v1/users/123';
    for (const mode of MODES) assert.equal(path(raw, mode), raw);
  });

  it('handles a long path without quadratic behaviour', () => {
    const raw = '/' + 'a/'.repeat(100_000) + '../'.repeat(100_000) + 'admin';
    const started = performance.now();
    assert.equal(path(raw, 'BASE'), '/admin');
    assert.ok(performance.now() - started < 2000);
  });
});

describe('normalizePath: properties', () => {
  const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
  const anyString = fc.oneof(
    fc.string({ unit: anyUnit, maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: anyUnit, maxLength: 40 }).map((s) => '/' + s),
  );
  const pathPiece = fc.constantFrom(
    '/', '//', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '\\', '%', '%%', '%3', '%32', '%30', '%00',
    'a', 'B', '0', 'e', '%61', '%7e', '%25', ';', 'é', '\u{1F600}', '?', '#', '"', '|',
  );
  const pathLike = fc.array(pathPiece, { maxLength: 24 }).map((parts) => '/' + parts.join(''));
  const input = fc.oneof(anyString, pathLike);
  const mode = fc.constantFrom(...MODES);
  const normalizing = fc.constantFrom(...NORMALIZING);

  it('never throws, and an accepted path starts with "/" and carries no query or fragment', () => {
    fc.assert(
      fc.property(input, mode, (raw, m) => {
        const r = normalizePath(raw, m);
        if (r.ok) {
          assert.ok(r.path.startsWith('/'));
          assert.ok(!r.path.includes('?') && !r.path.includes('#'));
        } else {
          assert.equal(typeof r.reason, 'string');
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('leaves no dot segments and is idempotent when normalizing', () => {
    fc.assert(
      fc.property(input, normalizing, (raw, m) => {
        const r = normalizePath(raw, m);
        if (!r.ok) return;
        const p = r.path;
        assert.ok(!p.includes('/./') && !p.includes('/../'), p);
        assert.ok(!p.endsWith('/.') && !p.endsWith('/..'), p);
        assert.ok(!p.includes('\\'), p);
        assert.ok(/^[\x21-\x7e]*$/.test(p), p);
        const again = normalizePath(p, m);
        assert.ok(again.ok);
        assert.equal(again.path, p);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on non-string input', () => {
    for (const bad of [undefined, null, 42, {}, ['/a']]) {
      assert.equal(normalizePath(bad as unknown as string, 'BASE').ok, false);
    }
  });
});
