// Properties of the whole engine, over generated input:
//   1. it never throws and always returns a well-formed decision, whatever the
//      request holds (huge paths, invalid UTF-16, control characters, garbage
//      tokens, odd header names);
//   2. re-encoding a forbidden path — percent-encoding, dot segments,
//      backslashes, doubled slashes, escaped slashes — never turns a DENY
//      into an ALLOW, in any normalization mode.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { engineFrom, request } from '../../support/engine.ts';

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: foo
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin", "/admin/*"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-public
  namespace: foo
spec:
  rules:
  - to:
    - operation:
        paths: ["/public/*", "/admin/*"]
    when:
    - key: request.headers[x-env]
      notValues: ["prod"]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: foo
spec:
  jwtRules:
  - issuer: https://issuer.example
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}'
`;

const MODES = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const;
const ENGINES = Object.fromEntries(MODES.map((m) => [m, engineFrom(POLICIES, { pathNormalization: m })]));

const STATUSES = new Set([200, 400, 401, 403, 'reset']);

describe('engine properties', () => {
  it('never throws and always answers with a well-formed decision', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...MODES),
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.string({ maxLength: 20 }),
        fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 60 }), { maxKeys: 4 }),
        fc.oneof(fc.constant(''), fc.string({ maxLength: 200 }), fc.base64String({ maxLength: 200 }).map((s) => `Bearer ${s}.${s}.${s}`)),
        fc.string({ maxLength: 40 }),
        async (mode, path, method, headers, token, ip) => {
          const hdrs: Record<string, string> = {};
          for (const [k, v] of Object.entries(headers)) hdrs[k.toLowerCase()] = v;
          if (token !== '') hdrs['authorization'] = token;
          const d = await ENGINES[mode]!.check(request({ path, method, headers: hdrs, ip }));
          assert.ok(d.decision === 'ALLOW' || d.decision === 'DENY');
          assert.ok(STATUSES.has(d.status));
          if (d.decision === 'ALLOW') assert.equal(d.status, 200);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('a very long path is decided, not crashed on', async () => {
    const d = await ENGINES['BASE']!.check(request({ path: `/admin/${'a/../'.repeat(50_000)}x` }));
    assert.equal(d.decision, 'DENY');
  });

  // Ways to write the same path that Envoy's normalization folds back, per mode.
  const segment = fc.stringMatching(/^[a-z0-9._~-]{1,8}$/).filter((s) => s !== '.' && s !== '..');
  function reencode(path: string, choices: number[], mode: (typeof MODES)[number]): string {
    let out = '';
    let i = 0;
    for (const ch of path) {
      const c = choices[i++ % choices.length]!;
      if (ch === '/') {
        if (c % 5 === 0 && mode !== 'NONE') out += '/./';
        else if (c % 5 === 1 && mode !== 'NONE') out += '/zz/../';
        else if (c % 5 === 2 && mode !== 'NONE') out += '\\';
        else if (c % 5 === 3 && (mode === 'MERGE_SLASHES' || mode === 'DECODE_AND_MERGE_SLASHES')) out += '//';
        else if (c % 5 === 4 && mode === 'DECODE_AND_MERGE_SLASHES') out += '%2F';
        else out += '/';
      } else if (c % 3 === 0 && mode !== 'NONE') {
        out += `%${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
      } else if (c % 3 === 1 && mode !== 'NONE') {
        out += `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
      } else out += ch;
    }
    return out;
  }

  it('re-encoding a denied path never allows it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...MODES),
        fc.array(segment, { maxLength: 4 }),
        fc.array(fc.nat(1000), { minLength: 1, maxLength: 30 }),
        fc.constantFrom('', '?q=1', '#frag', '?a=/public/x'),
        async (mode, rest, choices, suffix) => {
          const canonical = `/admin${rest.length > 0 ? `/${rest.join('/')}` : ''}`;
          const encoded = `/${reencode(canonical.slice(1), choices, mode)}${suffix}`;
          const d = await ENGINES[mode]!.check(request({ path: encoded }));
          assert.equal(d.decision, 'DENY', `${mode}: ${encoded} → ${d.trace.normalizedPath} was allowed`);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
