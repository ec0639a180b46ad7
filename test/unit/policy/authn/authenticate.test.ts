import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SignJWT, exportSPKI } from 'jose';

import type { JwtRule } from '../../../../src/api/resources.ts';
import { authenticate, claimHeaderValue, type AuthnOutcome } from '../../../../src/policy/authn/authenticate.ts';
import { compileRequestAuthn, type CompiledRequestAuthn } from '../../../../src/policy/authn/compile.ts';
import { failClosedJwksResolver } from '../../../../src/policy/authn/remote-jwks.ts';
import type { HttpRequest } from '../../../../src/policy/facts.ts';
import {
  ISSUER,
  NOW,
  NOW_S,
  b64,
  bearer,
  jwks,
  request,
  requestAuthentication,
  sign,
  testKey,
  type TestKey,
} from './fixtures.ts';

let rsa: TestKey;
let ec: TestKey;
let ed: TestKey;
let other: TestKey;

before(async () => {
  [rsa, ec, ed, other] = await Promise.all([
    testKey('RS256', 'rsa-1'),
    testKey('ES256', 'ec-1'),
    testKey('EdDSA', 'ed-1'),
    testKey('RS256', 'rsa-1'), // same kid as `rsa`, different key
  ]);
});

function compile(...rules: JwtRule[]): CompiledRequestAuthn {
  return compileRequestAuthn([requestAuthentication('jwt', 'foo', rules)], { jwksResolver: failClosedJwksResolver });
}

function rule(extra: Partial<JwtRule> = {}): JwtRule {
  return { issuer: ISSUER, jwks: jwks(rsa, ec, ed), ...extra };
}

async function check(compiled: CompiledRequestAuthn, req: HttpRequest): Promise<AuthnOutcome> {
  return authenticate(compiled, req, { now: NOW });
}

async function expectStatus(compiled: CompiledRequestAuthn, req: HttpRequest, status: AuthnOutcome['status'], reason?: string) {
  const outcome = await check(compiled, req);
  assert.equal(outcome.status, status, `reason: ${outcome.reason}`);
  if (reason !== undefined) assert.equal(outcome.reason, reason);
  if (status !== 'ok') {
    assert.equal(outcome.requestPrincipal, null);
    assert.deepEqual(outcome.headerMutations, []);
  }
  return outcome;
}

describe('authenticate: valid tokens', () => {
  it('accepts an RS256 token and names the principal iss/sub', async () => {
    const token = await sign(rsa, { claims: { aud: 'svc', azp: 'web-client', groups: ['a'] } });
    const outcome = await expectStatus(compile(rule()), request(bearer(token)), 'ok', 'OK');
    assert.equal(outcome.requestPrincipal, `${ISSUER}/user-1`);
    assert.equal(outcome.issuer, ISSUER);
    assert.deepEqual(outcome.audiences, ['svc']);
    assert.equal(outcome.presenter, 'web-client');
    assert.deepEqual(outcome.claims?.['groups'], ['a']);
    assert.equal(outcome.policy, 'foo/jwt');
    assert.deepEqual(outcome.headerMutations, [{ op: 'remove', name: 'authorization' }]);
  });

  it('accepts ES256 and EdDSA tokens from the same key set', async () => {
    for (const key of [ec, ed]) {
      const outcome = await expectStatus(compile(rule()), request(bearer(await sign(key))), 'ok');
      assert.equal(outcome.requestPrincipal, `${ISSUER}/user-1`);
    }
  });

  it('accepts a token without kid by trying every key that fits', async () => {
    const second = await testKey('RS256', 'rsa-2');
    const compiled = compile(rule({ jwks: jwks({ ...second.jwk, kid: undefined }, { ...rsa.jwk, kid: undefined }) }));
    await expectStatus(compiled, request(bearer(await sign(rsa, { kid: null }))), 'ok');
  });

  it('accepts HS256 against an oct key of an inline set, and refuses a wrong secret', async () => {
    const secret = Buffer.from('a-shared-secret-of-32-bytes-long!');
    const compiled = compile(rule({ jwks: jwks({ kty: 'oct', k: secret.toString('base64url'), kid: 'h1', alg: 'HS256' }) }));
    const good = await new SignJWT({ iss: ISSUER, sub: 'svc', exp: NOW_S + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'h1' }).sign(secret);
    await expectStatus(compiled, request(bearer(good)), 'ok');
    const bad = await new SignJWT({ iss: ISSUER, sub: 'svc', exp: NOW_S + 60 })
      .setProtectedHeader({ alg: 'HS256', kid: 'h1' })
      .sign(Buffer.from('another-secret-of-32-bytes-long!!'));
    await expectStatus(compiled, request(bearer(bad)), 401, 'Jwt verification fails');
  });
});

describe('authenticate: near misses', () => {
  it('honours 60 s of clock skew on exp', async () => {
    const compiled = compile(rule());
    await expectStatus(compiled, request(bearer(await sign(rsa, { exp: -30 }))), 'ok');
    await expectStatus(compiled, request(bearer(await sign(rsa, { exp: -90 }))), 401, 'Jwt is expired');
  });

  it('honours 60 s of clock skew on nbf', async () => {
    const compiled = compile(rule());
    await expectStatus(compiled, request(bearer(await sign(rsa, { nbf: 30 }))), 'ok');
    await expectStatus(compiled, request(bearer(await sign(rsa, { nbf: 90 }))), 401, 'Jwt not yet valid');
  });

  it('accepts a token without exp, as Envoy does', async () => {
    await expectStatus(compile(rule()), request(bearer(await sign(rsa, { exp: null }))), 'ok');
  });

  it('rejects an unknown issuer with 401', async () => {
    const compiled = compile(rule());
    await expectStatus(compiled, request(bearer(await sign(rsa, { claims: { iss: 'https://evil.example.com' } }))), 401, 'Jwt issuer is not configured');
    await expectStatus(compiled, request(bearer(await sign(rsa, { claims: { iss: undefined } }))), 401, 'Jwt issuer is not configured');
  });

  it('rejects a disallowed audience with 403 and accepts an allowed one, string or array', async () => {
    const compiled = compile(rule({ audiences: ['svc.foo', 'https://api.example.com/'] }));
    const aud = async (value: unknown) => request(bearer(await sign(rsa, { claims: { aud: value as string } })));
    await expectStatus(compiled, await aud('other'), 403, 'Audiences in Jwt are not allowed');
    await expectStatus(compiled, await aud(['a', 'b']), 403);
    await expectStatus(compiled, request(bearer(await sign(rsa))), 403);
    await expectStatus(compiled, await aud('svc.foo'), 'ok');
    await expectStatus(compiled, await aud(['a', 'svc.foo']), 'ok');
    // Scheme and trailing slash are ignored on both sides, as jwt_verify_lib does.
    await expectStatus(compiled, await aud('api.example.com'), 'ok');
    await expectStatus(compiled, await aud('http://svc.foo/'), 'ok');
  });

  it('judges the audience before the signature, like Envoy', async () => {
    const compiled = compile(rule({ audiences: ['svc.foo'] }));
    const forged = await sign(other, { claims: { aud: 'other' } });
    await expectStatus(compiled, request(bearer(forged)), 403);
  });

  it('rejects alg "none" however it is dressed', async () => {
    const compiled = compile(rule());
    const header = b64({ alg: 'none', typ: 'JWT' });
    const payload = b64({ iss: ISSUER, sub: 'admin', exp: NOW_S + 3600 });
    await expectStatus(compiled, request(bearer(`${header}.${payload}.`)), 401);
    await expectStatus(compiled, request(bearer(`${header}.${payload}.${b64('sig')}`)), 401, 'Jwt header [alg] is not supported');
    await expectStatus(compiled, request(bearer(`${b64({ alg: 'None' })}.${payload}.${b64('sig')}`)), 401);
  });

  it('rejects HS256 signed with the RSA public key as the HMAC secret', async () => {
    const pem = await exportSPKI(rsa.publicKey);
    for (const secret of [Buffer.from(pem), Buffer.from(JSON.stringify(rsa.jwk))]) {
      const token = await new SignJWT({ iss: ISSUER, sub: 'admin', exp: NOW_S + 3600 })
        .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
        .sign(secret);
      await expectStatus(compile(rule()), request(bearer(token)), 401);
    }
  });

  it('rejects a token signed by another key with the same kid', async () => {
    await expectStatus(compile(rule()), request(bearer(await sign(other))), 401, 'Jwt verification fails');
  });

  it('rejects a token whose kid is not in the set', async () => {
    const token = await sign(rsa, { kid: 'unknown' });
    await expectStatus(compile(rule()), request(bearer(token)), 401, "Jwks doesn't have key to match kid or alg from Jwt");
  });

  it('rejects a tampered payload', async () => {
    const [h, , s] = (await sign(rsa)).split('.');
    const payload = b64({ iss: ISSUER, sub: 'admin', exp: NOW_S + 3600 });
    await expectStatus(compile(rule()), request(bearer(`${h}.${payload}.${s}`)), 401, 'Jwt verification fails');
  });

  it('rejects malformed tokens with 401', async () => {
    const compiled = compile(rule());
    await expectStatus(compiled, request({ authorization: 'Bearer abc.def' }), 401, 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections');
    await expectStatus(compiled, request({ authorization: 'Bearer abc.def.ghi' }), 401, 'Jwt header is an invalid JSON');
    await expectStatus(compiled, request({ authorization: 'Bearer a!c.def.ghi' }), 401);
    await expectStatus(compiled, request({ authorization: 'Bearer ' }), 401);
    const payload = b64({ iss: ISSUER, sub: 'x', exp: 'soon' });
    await expectStatus(compiled, request(bearer(`${b64({ alg: 'RS256' })}.${payload}.${b64('s')}`)), 401, 'Jwt payload [exp] field is not an integer');
  });

  it('rejects every token when the inline key set is unusable', async () => {
    for (const bad of ['not json', '{"keys": "nope"}', '{"keys": []}']) {
      await expectStatus(compile(rule({ jwks: bad })), request(bearer(await sign(rsa))), 401, "Jwks doesn't have any valid public key");
    }
  });

  it('rejects every token of a rule without jwks or jwksUri', async () => {
    await expectStatus(compile({ issuer: ISSUER }), request(bearer(await sign(rsa))), 401);
  });
});

describe('authenticate: requests without a token', () => {
  it('passes synchronously with no principal', () => {
    const outcome = authenticate(compile(rule()), request({}), { now: NOW });
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.status, 'ok');
    assert.equal(outcome.requestPrincipal, null);
    assert.equal(outcome.policy, null);
  });

  it('ignores an Authorization header without the case-sensitive "Bearer " prefix', async () => {
    const token = await sign(rsa);
    for (const value of ['Basic dXNlcjpwYXNz', `bearer ${token}`, `BEARER ${token}`, token]) {
      const outcome = authenticate(compile(rule()), request({ authorization: value }), { now: NOW });
      assert.ok(!(outcome instanceof Promise));
      assert.equal(outcome.status, 'ok');
      assert.equal(outcome.requestPrincipal, null);
    }
  });

  it('answers synchronously when no signature needs checking', async () => {
    const outcome = authenticate(compile(rule()), request(bearer(await sign(rsa, { exp: -3600 }))), { now: NOW });
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.status, 401);
  });

  it('passes with nothing to do when no RequestAuthentication applies', () => {
    const outcome = authenticate(compileRequestAuthn([], { jwksResolver: failClosedJwksResolver }), request({ authorization: 'Bearer x' }));
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.status, 'ok');
  });

  it('lets a CORS preflight through regardless of its token', () => {
    const req = request({ authorization: 'Bearer garbage', origin: 'https://app', 'access-control-request-method': 'POST' }, '/api', 'OPTIONS');
    const outcome = authenticate(compile(rule()), req, { now: NOW });
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.status, 'ok');
    assert.equal(outcome.requestPrincipal, null);
  });
});

describe('authenticate: token locations', () => {
  it('reads access_token from the query by default', async () => {
    const token = await sign(rsa);
    const outcome = await expectStatus(compile(rule()), request({}, `/api?x=1&access_token=${token}&y=2#frag`), 'ok');
    assert.deepEqual(outcome.headerMutations, [{ op: 'set', name: ':path', value: '/api?x=1&y=2' }]);
  });

  it('reads only the configured header, with its prefix', async () => {
    const token = await sign(rsa);
    const compiled = compile(rule({ fromHeaders: [{ name: 'X-Jwt-Assertion', prefix: 'Token ' }] }));
    const outcome = await expectStatus(compiled, request({ 'x-jwt-assertion': `Token ${token}` }), 'ok');
    assert.equal(outcome.requestPrincipal, `${ISSUER}/user-1`);
    assert.deepEqual(outcome.headerMutations, [{ op: 'remove', name: 'x-jwt-assertion' }]);
    // The default locations no longer apply.
    const elsewhere = await expectStatus(compiled, request(bearer(token), `/api?access_token=${token}`), 'ok');
    assert.equal(elsewhere.requestPrincipal, null);
    // Without the prefix the header carries no token.
    assert.equal((await check(compiled, request({ 'x-jwt-assertion': token }))).requestPrincipal, null);
  });

  it('takes the whole header value when the prefix is empty', async () => {
    const compiled = compile(rule({ fromHeaders: [{ name: 'x-token' }] }));
    await expectStatus(compiled, request({ 'x-token': await sign(rsa) }), 'ok');
    await expectStatus(compiled, request({ 'x-token': `Bearer ${await sign(rsa)}` }), 401);
  });

  it('reads a configured query parameter, percent-decoded', async () => {
    const token = await sign(rsa);
    const compiled = compile(rule({ fromParams: ['jwt'] }));
    await expectStatus(compiled, request({}, `/api?jwt=${token.replace(/\./g, '%2E')}`), 'ok');
    assert.equal((await check(compiled, request({}, `/api?access_token=${token}`))).requestPrincipal, null);
  });

  it('reads a configured cookie and leaves it in place', async () => {
    const compiled = compile(rule({ fromCookies: ['session'] }));
    const outcome = await expectStatus(compiled, request({ cookie: `a=1; session="${await sign(rsa)}"; b=2` }), 'ok');
    assert.deepEqual(outcome.headerMutations, []);
  });

  it('does not read a header named like an Object.prototype member', async () => {
    const compiled = compile(rule({ fromHeaders: [{ name: 'constructor' }] }));
    const outcome = authenticate(compiled, request({}), { now: NOW });
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.status, 'ok');
  });

  it('rejects an invalid token even next to a valid one', async () => {
    const good = await sign(rsa);
    const expired = await sign(rsa, { exp: -3600 });
    const compiled = compile(rule());
    await expectStatus(compiled, request(bearer(good), `/api?access_token=${expired}`), 401, 'Jwt is expired');
    await expectStatus(compiled, request(bearer(expired), `/api?access_token=${good}`), 401, 'Jwt is expired');
    await expectStatus(compiled, request(bearer(good), `/api?access_token=${await sign(ec)}`), 'ok');
  });
});

describe('authenticate: what reaches the application', () => {
  it('keeps the token header when forwardOriginalToken is true', async () => {
    const outcome = await expectStatus(compile(rule({ forwardOriginalToken: true })), request(bearer(await sign(rsa))), 'ok');
    assert.deepEqual(outcome.headerMutations, []);
  });

  it('writes the payload, base64url as in the token, to outputPayloadToHeader', async () => {
    const token = await sign(rsa, { claims: { role: 'reader' } });
    const outcome = await expectStatus(compile(rule({ outputPayloadToHeader: 'X-Jwt-Payload' })), request(bearer(token)), 'ok');
    const set = outcome.headerMutations.find((m) => m.op === 'set');
    assert.deepEqual(set, { op: 'set', name: 'x-jwt-payload', value: token.split('.')[1] });
    assert.equal(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).role, 'reader');
    assert.deepEqual(outcome.headerMutations[0], { op: 'remove', name: 'x-jwt-payload' });
  });

  it('copies primitive claims to headers and skips objects and arrays', async () => {
    const token = await sign(rsa, {
      claims: { email: 'a@b.c', level: 3, ratio: 1.5, admin: false, groups: ['x'], org: { id: 'o-1' }, empty: '' },
    });
    const outputClaimToHeaders = ['email', 'level', 'ratio', 'admin', 'groups', 'org', 'org.id', 'missing', 'empty'].map((claim) => ({
      header: `X-Claim-${claim.replace('.', '-')}`,
      claim,
    }));
    const outcome = await expectStatus(compile(rule({ outputClaimToHeaders })), request(bearer(token)), 'ok');
    const sets = Object.fromEntries(outcome.headerMutations.filter((m) => m.op === 'set').map((m) => [m.name, (m as { value: string }).value]));
    assert.deepEqual(sets, {
      'x-claim-email': 'a@b.c',
      'x-claim-level': '3',
      'x-claim-ratio': '1.500000',
      'x-claim-admin': 'false',
      'x-claim-org-id': 'o-1',
    });
  });

  it('removes forged output headers even when no token is presented', () => {
    const compiled = compile(rule({ outputPayloadToHeader: 'x-jwt-payload', outputClaimToHeaders: [{ header: 'x-user', claim: 'sub' }] }));
    const outcome = authenticate(compiled, request({ 'x-user': 'admin', 'x-jwt-payload': 'e30' }), { now: NOW });
    assert.ok(!(outcome instanceof Promise));
    assert.deepEqual(outcome.headerMutations, [
      { op: 'remove', name: 'x-jwt-payload' },
      { op: 'remove', name: 'x-user' },
    ]);
  });

  it('does not mutate the request', async () => {
    const headers = Object.freeze(bearer(await sign(rsa)));
    const req = Object.freeze(request(headers));
    await expectStatus(compile(rule()), req, 'ok');
    assert.ok(headers['authorization']?.startsWith('Bearer '));
  });

  it('formats numeric claims like Envoy', () => {
    assert.equal(claimHeaderValue({ n: 42 }, 'n'), '42');
    assert.equal(claimHeaderValue({ n: -1 }, 'n'), '-1.000000');
    assert.equal(claimHeaderValue({ n: 0.25 }, 'n'), '0.250000');
    assert.equal(claimHeaderValue({ n: true }, 'n'), 'true');
    assert.equal(claimHeaderValue({ n: null }, 'n'), null);
  });
});

describe('authenticate: several rules', () => {
  const A = 'https://a.example.com';
  const B = 'https://b.example.com';
  let bKey: TestKey;
  let twoRules: CompiledRequestAuthn;

  before(async () => {
    bKey = await testKey('ES256', 'b-1');
    twoRules = compileRequestAuthn(
      [
        requestAuthentication('b-auth', 'foo', [{ issuer: B, jwks: jwks(bKey), audiences: ['svc'] }]),
        requestAuthentication('a-auth', 'foo', [{ issuer: A, jwks: jwks(rsa), fromHeaders: [{ name: 'x-a-token' }] }]),
      ],
      { jwksResolver: failClosedJwksResolver },
    );
  });

  it('accepts a token of either issuer and says which policy judged it', async () => {
    const a = await sign(rsa, { claims: { iss: A } });
    const b = await sign(bKey, { claims: { iss: B, aud: 'svc' } });
    const byA = await expectStatus(twoRules, request({ 'x-a-token': a }), 'ok');
    assert.equal(byA.requestPrincipal, `${A}/user-1`);
    assert.equal(byA.policy, 'foo/a-auth');
    const byB = await expectStatus(twoRules, request(bearer(b)), 'ok');
    assert.equal(byB.policy, 'foo/b-auth');
  });

  it('rejects an issuer no rule names, and reports a real error over an unknown issuer', async () => {
    await expectStatus(twoRules, request(bearer(await sign(rsa, { claims: { iss: 'https://c.example.com' } }))), 401, 'Jwt issuer is not configured');
    await expectStatus(twoRules, request(bearer(await sign(bKey, { claims: { iss: B, aud: 'other' } }))), 403);
    await expectStatus(twoRules, request(bearer(await sign(bKey, { claims: { iss: B, aud: 'svc' }, exp: -3600 }))), 401, 'Jwt is expired');
  });

  it('accepts when one rule has all its tokens valid even if another rule saw a bad one (Istio ORs the providers)', async () => {
    const b = await sign(bKey, { claims: { iss: B, aud: 'svc' } });
    const outcome = await expectStatus(twoRules, request({ ...bearer(b), 'x-a-token': 'garbage' }), 'ok');
    assert.equal(outcome.requestPrincipal, `${B}/user-1`);
  });

  it('rejects a token of one issuer sitting in a location both rules read', async () => {
    const shared = compileRequestAuthn(
      [requestAuthentication('both', 'foo', [{ issuer: A, jwks: jwks(rsa) }, { issuer: B, jwks: jwks(bKey) }])],
      { jwksResolver: failClosedJwksResolver },
    );
    const a = await sign(rsa, { claims: { iss: A } });
    const b = await sign(bKey, { claims: { iss: B } });
    await expectStatus(shared, request(bearer(a)), 'ok');
    await expectStatus(shared, request(bearer(a), `/api?access_token=${b}`), 401, 'Jwt issuer is not configured');
  });
});

describe('authenticate: robustness', () => {
  it('never throws or rejects on arbitrary headers and targets', async () => {
    const compiled = compile(rule({ fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }, { name: 'x-t' }], fromParams: ['t'], fromCookies: ['c'] }));
    const anyText = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 60 });
    const tokenish = fc.oneof(
      anyText,
      fc.tuple(anyText, anyText, anyText).map((parts) => parts.join('.')),
      fc.tuple(fc.jsonValue(), fc.jsonValue(), anyText).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${s}`),
      fc.jsonValue().map((p) => `${b64({ alg: 'RS256', kid: 'rsa-1' })}.${b64(p)}.${b64('x')}`),
    );
    await fc.assert(
      fc.asyncProperty(tokenish, anyText, anyText, async (token, path, cookie) => {
        const req = request({ authorization: `Bearer ${token}`, 'x-t': token, cookie: `c=${cookie}` }, `/x?t=${path}`);
        const outcome = await authenticate(compiled, req, { now: NOW });
        assert.ok(outcome.status === 'ok' || outcome.status === 401 || outcome.status === 403);
        assert.equal(typeof outcome.reason, 'string');
      }),
      { numRuns: 300 },
    );
  });

  it('turns an internal error into a 401', async () => {
    const broken = { method: 'GET', host: 'h', headers: bearer(await sign(rsa)) } as unknown as HttpRequest;
    Object.defineProperty(broken, 'path', {
      get: () => {
        throw new Error('boom');
      },
    });
    const outcome = await authenticate(compile(rule()), broken, { now: NOW });
    assert.equal(outcome.status, 401);
  });
});
