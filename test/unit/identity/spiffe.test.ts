import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_SPIFFE_ID_LENGTH,
  MAX_TRUST_DOMAIN_LENGTH,
  fromPrincipal,
  isSpiffeId,
  istioWorkload,
  parseSpiffeId,
  toPrincipal,
  validateTrustDomain,
  workloadId,
  type SpiffeId,
} from '../../../src/identity/spiffe.ts';

function id(text: string): SpiffeId {
  const r = parseSpiffeId(text);
  if ('error' in r) throw new Error(`${text}: ${r.error}`);
  return r;
}

function errorOf(text: string): string {
  const r = parseSpiffeId(text);
  assert.ok('error' in r, `${JSON.stringify(text)} should be rejected`);
  return r.error;
}

describe('parseSpiffeId: near misses from SPIFFE-ID §2', () => {
  // [accepted, rejected, what the error must mention]
  const pairs: [string, string, RegExp][] = [
    // scheme (§2): spiffe, lower case, with "//"
    ['spiffe://example.org/a', 'SPIFFE://example.org/a', /lower case/],
    ['spiffe://example.org/a', 'Spiffe://example.org/a', /lower case/],
    ['spiffe://example.org/a', 'http://example.org/a', /spiffe:\/\//],
    ['spiffe://example.org/a', 'spiffe:/example.org/a', /trust domain is missing/],
    ['spiffe://example.org/a', 'spiffe:example.org/a', /trust domain is missing/],
    ['spiffe://example.org/a', 'example.org/a', /spiffe:\/\//],
    ['spiffe://example.org/a', ' spiffe://example.org/a', /spiffe:\/\//],
    // trust domain (§2.1)
    ['spiffe://example.org', 'spiffe://', /trust domain is empty/],
    ['spiffe://example.org/a', 'spiffe:///a', /trust domain is empty/],
    ['spiffe://example.org/a', 'spiffe://Example.org/a', /lower case/],
    ['spiffe://example.org/a', 'spiffe://example.org:8080/a', /port/],
    ['spiffe://example.org/a', 'spiffe://example.org:/a', /port/],
    ['spiffe://example.org/a', 'spiffe://user@example.org/a', /userinfo/],
    ['spiffe://example.org/a', 'spiffe://user:pw@example.org/a', /port|userinfo/],
    ['spiffe://example.org/a', 'spiffe://exa%6dple.org/a', /percent/],
    ['spiffe://ex_am-ple.1/a', 'spiffe://ex+am-ple.1/a', /invalid character "\+"/],
    ['spiffe://192.168.0.1/a', 'spiffe://[::1]/a', /invalid character "\["/],
    ['spiffe://example.org', 'spiffe://example.org?x=1', /query/],
    ['spiffe://example.org', 'spiffe://example.org#frag', /fragment/],
    // path (§2.2)
    ['spiffe://example.org/a/b', 'spiffe://example.org/a/b/', /end with "\/"/],
    ['spiffe://example.org', 'spiffe://example.org/', /end with "\/"/],
    ['spiffe://example.org/a/b', 'spiffe://example.org/a//b', /empty segment/],
    ['spiffe://example.org/a/b', 'spiffe://example.org//a/b', /empty segment/],
    ['spiffe://example.org/a/.b', 'spiffe://example.org/a/.', /"\." segments/],
    ['spiffe://example.org/a/..b', 'spiffe://example.org/a/../b', /"\.\." segments/],
    ['spiffe://example.org/a/b', 'spiffe://example.org/a/%62', /percent/],
    ['spiffe://example.org/a/b', 'spiffe://example.org/a/b?x=1', /query/],
    ['spiffe://example.org/a/b', 'spiffe://example.org/a/b#f', /fragment/],
    ['spiffe://example.org/Upper_Case-1.2', 'spiffe://example.org/a:b', /invalid character ":"/],
    ['spiffe://example.org/a/b', 'spiffe://example.org/a/b c', /invalid character U\+0020/],
    ['spiffe://example.org/a/b', 'spiffe://example.org/a/é', /invalid character "é"|U\+00E9/],
    ['spiffe://example.org/a/b', 'spiffe://example.org/a/\u0000', /U\+0000/],
  ];
  for (const [good, bad, why] of pairs) {
    it(`accepts ${JSON.stringify(good)}, rejects ${JSON.stringify(bad)}`, () => {
      assert.equal(id(good).uri, good);
      assert.match(errorOf(bad), why);
    });
  }
});

describe('parseSpiffeId: parts and limits (§2.3)', () => {
  it('splits trust domain and path, and freezes the result', () => {
    const v = id('spiffe://cluster.local/ns/default/sa/sleep');
    assert.deepEqual({ ...v }, { trustDomain: 'cluster.local', path: '/ns/default/sa/sleep', uri: 'spiffe://cluster.local/ns/default/sa/sleep' });
    assert.ok(Object.isFrozen(v));
  });

  it('accepts an ID with no path (a trust domain’s own ID)', () => {
    assert.equal(id('spiffe://example.org').path, '');
  });

  it('accepts exactly 2048 bytes and rejects 2049', () => {
    const prefix = 'spiffe://example.org/';
    const ok = prefix + 'a'.repeat(MAX_SPIFFE_ID_LENGTH - prefix.length);
    assert.equal(ok.length, 2048);
    assert.equal(id(ok).uri, ok);
    assert.match(errorOf(ok + 'a'), /2049 bytes; the maximum is 2048/);
  });

  it('accepts a 255-byte trust domain and rejects 256', () => {
    const td = 'a'.repeat(MAX_TRUST_DOMAIN_LENGTH);
    assert.equal(id(`spiffe://${td}/x`).trustDomain, td);
    assert.match(errorOf(`spiffe://${td}a/x`), /256 bytes; the maximum is 255/);
  });

  it('never throws on non-strings', () => {
    for (const v of [undefined, null, 42, {}, ['spiffe://a/b']]) {
      const r = parseSpiffeId(v as unknown as string);
      assert.ok('error' in r);
    }
    assert.equal(isSpiffeId(undefined as unknown as string), false);
  });

  it('rejects the empty string', () => {
    assert.match(errorOf(''), /empty/);
  });
});

describe('validateTrustDomain', () => {
  const cases: [string, RegExp | null][] = [
    ['cluster.local', null],
    ['a', null],
    ['1.2.3.4', null],
    ['under_score-dash.dot', null],
    ['', /empty/],
    ['Cluster.local', /lower case/],
    ['spiffe://cluster.local', /without "spiffe:\/\/"/],
    ['cluster.local:443', /port/],
    ['cluster.local/ns', /invalid character "\/"/],
    ['a'.repeat(256), /maximum is 255/],
  ];
  for (const [td, want] of cases) {
    it(`${JSON.stringify(td.length > 40 ? `${td.slice(0, 10)}…(${td.length})` : td)} → ${want ?? 'valid'}`, () => {
      const got = validateTrustDomain(td);
      if (want === null) assert.equal(got, null);
      else assert.match(got ?? '', want);
    });
  }
});

describe('workloadId and istioWorkload', () => {
  it('builds spiffe://td/ns/<ns>/sa/<sa> and reads it back', () => {
    const w = workloadId('cluster.local', 'foo', 'httpbin');
    assert.ok(!('error' in w));
    assert.equal(w.uri, 'spiffe://cluster.local/ns/foo/sa/httpbin');
    assert.deepEqual(w, id('spiffe://cluster.local/ns/foo/sa/httpbin'));
    assert.deepEqual({ ...istioWorkload(w) }, { namespace: 'foo', serviceAccount: 'httpbin' });
  });

  const bad: [string, string, string, RegExp][] = [
    ['Cluster.local', 'foo', 'bar', /trust domain must be lower case/],
    ['cluster.local', '', 'bar', /namespace is empty/],
    ['cluster.local', 'foo', '', /service account is empty/],
    ['cluster.local', 'a/b', 'bar', /namespace must not contain "\/"/],
    ['cluster.local', 'foo', '..', /service account "\.\." is a relative path segment/],
    ['cluster.local', 'foo', 'b@r', /invalid character "@" in the service account/],
    ['cluster.local', 'f'.repeat(2048), 'bar', /maximum is 2048/],
  ];
  for (const [td, ns, sa, why] of bad) {
    it(`refuses (${JSON.stringify(td)}, ${JSON.stringify(ns.slice(0, 12))}, ${JSON.stringify(sa)})`, () => {
      const w = workloadId(td, ns, sa);
      assert.ok('error' in w);
      assert.match(w.error, why);
    });
  }

  const notIstio = [
    'spiffe://cluster.local',
    'spiffe://cluster.local/ns/foo',
    'spiffe://cluster.local/ns/foo/sa',
    'spiffe://cluster.local/ns/foo/sa/bar/extra',
    'spiffe://cluster.local/prefix/ns/foo/sa/bar',
    'spiffe://cluster.local/NS/foo/sa/bar',
    'spiffe://cluster.local/ns/foo/serviceaccount/bar',
  ];
  for (const text of notIstio) {
    it(`istioWorkload(${text}) is null`, () => assert.equal(istioWorkload(id(text)), null));
  }
});

describe('principals (Istio form, no scheme)', () => {
  it('round-trips', () => {
    const v = id('spiffe://cluster.local/ns/foo/sa/bar');
    assert.equal(toPrincipal(v), 'cluster.local/ns/foo/sa/bar');
    assert.deepEqual(fromPrincipal('cluster.local/ns/foo/sa/bar'), v);
  });

  const bad: [string, RegExp][] = [
    ['spiffe://cluster.local/ns/foo/sa/bar', /without "spiffe:\/\/"/],
    ['cluster.local/ns/foo/sa/*', /pattern/],
    ['*', /pattern/],
    ['', /trust domain is empty/],
    ['/ns/foo/sa/bar', /trust domain is empty/],
    ['Cluster.local/ns/foo/sa/bar', /lower case/],
    ['cluster.local/ns/foo/sa/bar/', /end with "\/"/],
  ];
  for (const [p, why] of bad) {
    it(`fromPrincipal(${JSON.stringify(p)}) is refused`, () => {
      const r = fromPrincipal(p);
      assert.ok('error' in r);
      assert.match(r.error, why);
    });
  }
});
