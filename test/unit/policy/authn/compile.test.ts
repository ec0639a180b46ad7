import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { compileRequestAuthn, parseTimeout, selectRequestAuthentications } from '../../../../src/policy/authn/compile.ts';
import { failClosedJwksResolver } from '../../../../src/policy/authn/remote-jwks.ts';
import type { RequestAuthentication } from '../../../../src/api/resources.ts';
import { requestAuthentication } from './fixtures.ts';

const rule = (issuer: string) => ({ issuer, jwksUri: `https://${issuer}/jwks` });

describe('selectRequestAuthentications', () => {
  const meshWide = requestAuthentication('mesh', 'istio-system', [rule('mesh')]);
  const meshSelected = requestAuthentication('mesh-httpbin', 'istio-system', [rule('mesh-sel')], { matchLabels: { app: 'httpbin' } });
  const nsWide = requestAuthentication('ns', 'foo', [rule('ns')]);
  const nsSelected = requestAuthentication('ns-httpbin', 'foo', [rule('ns-sel')], { matchLabels: { app: 'httpbin' } });
  const nsOther = requestAuthentication('ns-other', 'foo', [rule('ns-other')], { matchLabels: { app: 'other' } });
  const elsewhere = requestAuthentication('bar', 'bar', [rule('bar')]);
  const emptySelector = requestAuthentication('empty-selector', 'foo', [rule('empty')], { matchLabels: {} });
  const targeted: RequestAuthentication = {
    ...requestAuthentication('gateway', 'foo', [rule('gw')]),
    spec: { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }], jwtRules: [rule('gw')] },
  };
  const all = [meshWide, meshSelected, nsWide, nsSelected, nsOther, elsewhere, emptySelector, targeted];
  const names = (list: RequestAuthentication[]) => list.map((r) => r.metadata.name);

  it('takes the namespace and root namespace policies whose selector matches', () => {
    const picked = selectRequestAuthentications(all, { namespace: 'foo', labels: { app: 'httpbin', version: 'v1' } }, 'istio-system');
    assert.deepEqual(names(picked), ['ns', 'ns-httpbin', 'empty-selector', 'mesh', 'mesh-httpbin']);
  });

  it('skips selectors that do not match and other namespaces', () => {
    const picked = selectRequestAuthentications(all, { namespace: 'foo', labels: { app: 'web' } }, 'istio-system');
    assert.deepEqual(names(picked), ['ns', 'empty-selector', 'mesh']);
  });

  it('does not count the root namespace twice for its own workloads', () => {
    const picked = selectRequestAuthentications(all, { namespace: 'istio-system', labels: { app: 'httpbin' } }, 'istio-system');
    assert.deepEqual(names(picked), ['mesh', 'mesh-httpbin']);
  });

  it('honours a custom root namespace', () => {
    const picked = selectRequestAuthentications(all, { namespace: 'bar', labels: {} }, 'foo');
    assert.deepEqual(names(picked), ['bar', 'ns', 'empty-selector']);
  });
});

describe('compileRequestAuthn', () => {
  it('merges every jwtRule, sorted by issuer as Istio does, and lists its sources', () => {
    const compiled = compileRequestAuthn(
      [
        requestAuthentication('b', 'foo', [rule('zeta'), rule('alpha')]),
        requestAuthentication('a', 'istio-system', [rule('mid')]),
      ],
      { jwksResolver: failClosedJwksResolver },
    );
    assert.deepEqual(compiled.rules.map((r) => [r.issuer, r.policy]), [
      ['alpha', 'foo/b'],
      ['mid', 'istio-system/a'],
      ['zeta', 'foo/b'],
    ]);
    assert.deepEqual(compiled.sources, ['foo/b', 'istio-system/a']);
    assert.ok(Object.isFrozen(compiled) && Object.isFrozen(compiled.rules));
  });

  it('uses the default locations only when none are given, ordered as Envoy orders them', () => {
    const [defaults, custom] = compileRequestAuthn(
      [
        requestAuthentication('r', 'foo', [
          { issuer: 'a' },
          { issuer: 'b', fromHeaders: [{ name: 'X-B', prefix: 'T ' }, { name: 'x-a' }, { name: 'x-b', prefix: 'T ' }], fromParams: ['z', 'y', 'z'], fromCookies: ['c'] },
        ]),
      ],
      { jwksResolver: failClosedJwksResolver },
    ).rules;
    assert.deepEqual(defaults!.locations, { headers: [{ name: 'authorization', prefix: 'Bearer ' }], params: ['access_token'], cookies: [] });
    assert.deepEqual(custom!.locations, {
      headers: [{ name: 'x-a', prefix: '' }, { name: 'x-b', prefix: 'T ' }],
      params: ['y', 'z'],
      cookies: ['c'],
    });
  });

  it('asks the resolver for jwksUri with the rule timeout, and prefers inline jwks', () => {
    const asked: [string, number][] = [];
    const compiled = compileRequestAuthn(
      [
        requestAuthentication('r', 'foo', [
          { issuer: 'a', jwksUri: 'https://a/jwks', timeout: '1.5s' },
          { issuer: 'b', jwksUri: 'https://b/jwks', jwks: '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}' },
        ]),
      ],
      {
        jwksResolver: (uri, timeoutMs) => {
          asked.push([uri, timeoutMs]);
          return failClosedJwksResolver(uri, timeoutMs);
        },
      },
    );
    assert.deepEqual(asked, [['https://a/jwks', 1500]]);
    assert.equal(compiled.rules[1]!.keys.kind, 'inline');
  });

  it('survives a resolver that throws', () => {
    const compiled = compileRequestAuthn([requestAuthentication('r', 'foo', [{ issuer: 'a', jwksUri: 'https://a/jwks' }])], {
      jwksResolver: () => {
        throw new Error('no');
      },
    });
    assert.equal(compiled.rules[0]!.keys.kind, 'unavailable');
  });

  it('reads protobuf and Go durations, falling back to 5 s', () => {
    assert.equal(parseTimeout(undefined), 5000);
    assert.equal(parseTimeout('2s'), 2000);
    assert.equal(parseTimeout('0.25s'), 250);
    assert.equal(parseTimeout('1m30s'), 90_000);
    assert.equal(parseTimeout('750ms'), 750);
    assert.equal(parseTimeout('0s'), 5000);
    assert.equal(parseTimeout('soon'), 5000);
    assert.equal(parseTimeout('5'), 5000);
  });
});
