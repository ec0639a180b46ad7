import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectError, expectErrorPaths, expectValid } from './support.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'istio');

/** A RequestAuthentication with one JWT rule whose fields are `fields` (indented by four spaces). */
const ra = (fields: string, extraSpec = ''): string => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: foo
spec:
${extraSpec}  jwtRules:
  - issuer: "issuer-foo"
${fields}`;

describe('RequestAuthentication: valid', () => {
  it("loads the examples from Istio's reference", () => {
    const { resources } = expectValid(readFileSync(join(FIXTURES, 'valid', 'request-authentication.yaml'), 'utf8'));
    assert.equal(resources.requestAuthentications.length, 3);
    const rule = resources.requestAuthentications[1]?.spec.jwtRules?.[0];
    assert.deepEqual(rule?.fromHeaders, [{ name: 'x-goog-iap-jwt-assertion' }, { name: 'Authorization', prefix: 'Bearer ' }]);
    assert.deepEqual(rule?.outputClaimToHeaders, [{ header: 'x-jwt-claim-foo', claim: 'foo' }]);
    assert.equal(rule?.timeout, '5s');
    assert.deepEqual(resources.requestAuthentications[2]?.spec.targetRefs, [
      { kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'istio-ingressgateway' },
    ]);
  });

  it('two rules may share an issuer (Istio accepts it)', () => {
    expectValid(ra('    jwksUri: https://a.example/jwks\n  - issuer: "issuer-foo"\n    jwksUri: https://b.example/jwks\n'));
  });
});

describe('RequestAuthentication: near misses', () => {
  it('issuer is required and not empty', () => {
    expectError(ra('').replace('  - issuer: "issuer-foo"\n', '  - jwksUri: https://a.example/jwks\n'), {
      path: 'spec.jwtRules[0].issuer',
      at: '- jwksUri:',
      message: 'missing required field "issuer"',
    });
    expectError(ra('').replace('issuer: "issuer-foo"', 'issuer: ""'), {
      path: 'spec.jwtRules[0].issuer',
      at: 'issuer: ""',
      message: 'must not be empty',
    });
  });

  it('jwks and jwksUri are mutually exclusive', () => {
    expectError(ra(`    jwksUri: https://a.example/jwks\n    jwks: '{"keys":[]}'\n`), {
      path: 'spec.jwtRules[0].jwks',
      at: 'jwks:',
      message: 'cannot be set together with jwksUri',
    });
  });

  it('jwksUri is an http(s) URL', () => {
    expectError(ra('    jwksUri: ftp://example.com/jwks\n'), { path: 'spec.jwtRules[0].jwksUri', at: 'jwksUri:', message: 'scheme must be http or https, got "ftp"' });
    expectError(ra('    jwksUri: example.com/jwks\n'), { path: 'spec.jwtRules[0].jwksUri', at: 'jwksUri:', message: 'not a URL' });
  });

  it('jwks is a JSON Web Key Set', () => {
    expectError(ra("    jwks: '{not json'\n"), { path: 'spec.jwtRules[0].jwks', at: 'jwks:', message: 'invalid jwks: not JSON' });
    expectError(ra(`    jwks: '{"kty":"RSA"}'\n`), { path: 'spec.jwtRules[0].jwks', at: 'jwks:', message: 'expected a "keys" list' });
    expectError(ra(`    jwks: '{"keys":[{"kid":"a"}]}'\n`), { path: 'spec.jwtRules[0].jwks', at: 'jwks:', message: 'keys[0] is not a JSON Web Key' });
  });

  it('token locations need names', () => {
    expectError(ra('    fromHeaders:\n    - prefix: "Bearer "\n'), {
      path: 'spec.jwtRules[0].fromHeaders[0].name',
      at: '- prefix:',
      message: 'missing required field "name"',
    });
    expectError(ra('    fromHeaders:\n    - name: ""\n'), { path: 'spec.jwtRules[0].fromHeaders[0].name', at: 'name: ""', message: 'must not be empty' });
    expectError(ra('    fromParams: ["token", ""]\n'), { path: 'spec.jwtRules[0].fromParams[1]', at: 'fromParams:', message: 'must not be empty' });
    expectError(ra('    fromCookies: [""]\n'), { path: 'spec.jwtRules[0].fromCookies[0]', at: 'fromCookies:', message: 'must not be empty' });
    expectError(ra('    audiences: [""]\n'), { path: 'spec.jwtRules[0].audiences[0]', at: 'audiences:', message: 'must not be empty' });
  });

  it('outputClaimToHeaders needs a plain header name and a claim', () => {
    const yaml = ra('    outputClaimToHeaders:\n    - header: ":authority"\n      claim: sub\n    - header: x_user\n      claim: sub\n    - header: x-user\n      claim: ""\n');
    expectErrorPaths(yaml, [
      'spec.jwtRules[0].outputClaimToHeaders[0].header',
      'spec.jwtRules[0].outputClaimToHeaders[1].header',
      'spec.jwtRules[0].outputClaimToHeaders[2].claim',
    ]);
    expectError(yaml, { path: 'spec.jwtRules[0].outputClaimToHeaders[0].header', at: ':authority', message: 'pseudo-headers cannot be set' });
    expectError(yaml, { path: 'spec.jwtRules[0].outputClaimToHeaders[1].header', at: 'x_user', message: 'only letters, digits and "-"' });
  });

  const badTimeouts: [string, string][] = [
    ['5', 'expected a number and a unit'],
    ['five seconds', 'expected a number and a unit'],
    ['500us', 'at least 1ms'],
    ['1.5ms', 'whole milliseconds'],
  ];
  for (const [timeout, message] of badTimeouts) {
    it(`rejects timeout ${JSON.stringify(timeout)}`, () => {
      expectError(ra(`    jwksUri: https://a.example/jwks\n    timeout: "${timeout}"\n`), { path: 'spec.jwtRules[0].timeout', at: 'timeout:', message });
    });
  }

  it('accepts the duration forms Istio does', () => {
    for (const t of ['1ms', '100ms', '5s', '1.5s', '1m30s', '2h']) expectValid(ra(`    timeout: ${t}\n`));
  });

  it('types are checked', () => {
    expectError(ra('    forwardOriginalToken: "yes"\n'), {
      path: 'spec.jwtRules[0].forwardOriginalToken',
      at: 'forwardOriginalToken:',
      message: 'expected boolean, got string "yes"',
    });
    expectError(ra('    audiences: aud\n'), { path: 'spec.jwtRules[0].audiences', at: 'audiences:', message: 'expected list, got string "aud"' });
  });

  it('selector and targetRefs are mutually exclusive', () => {
    expectError(ra('', '  selector:\n    matchLabels:\n      app: a\n  targetRefs:\n  - kind: Service\n    name: s\n'), {
      path: 'spec.targetRefs',
      at: 'targetRefs:',
      message: 'cannot be set together with selector',
    });
  });

  it('names a misspelled field', () => {
    expectError(ra('    jwks_uri: https://a.example/jwks\n'), {
      path: 'spec.jwtRules[0].jwks_uri',
      at: 'jwks_uri:',
      message: 'unknown field "jwks_uri" (did you mean "jwksUri"?)',
    });
  });
});
