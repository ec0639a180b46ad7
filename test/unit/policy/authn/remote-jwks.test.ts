import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { JwtRule } from '../../../../src/api/resources.ts';
import { authenticate, type AuthnOutcome } from '../../../../src/policy/authn/authenticate.ts';
import { compileRequestAuthn, type JwksResolver } from '../../../../src/policy/authn/compile.ts';
import {
  createRemoteJwksResolver,
  defaultJwksResolver,
  failClosedJwksResolver,
} from '../../../../src/policy/authn/remote-jwks.ts';
import { ISSUER, NOW, bearer, jwks, request, requestAuthentication, sign, testKey, type TestKey } from './fixtures.ts';

interface TestServer {
  readonly url: string;
  hits: number;
  close(): Promise<void>;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server: Server = createServer((req, res) => {
    state.hits++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const state: TestServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    hits: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return state;
}

let key: TestKey;
let servers: TestServer[] = [];
let jwksServer: TestServer;

before(async () => {
  key = await testKey('RS256', 'remote-1');
  jwksServer = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(jwks(key));
  });
  servers.push(jwksServer);
});

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

function compile(resolver: JwksResolver, ...rules: JwtRule[]) {
  return compileRequestAuthn(
    rules.map((r, i) => requestAuthentication(`ra-${i}`, 'foo', [r])),
    { jwksResolver: resolver },
  );
}

async function run(compiled: ReturnType<typeof compile>, token: string): Promise<AuthnOutcome> {
  return authenticate(compiled, request(bearer(token)), { now: NOW });
}

describe('remote JWKS', () => {
  it('fetches the key set once and serves later tokens from the cache', async () => {
    const before = jwksServer.hits;
    const compiled = compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: jwksServer.url });
    for (let i = 0; i < 3; i++) {
      const outcome = await run(compiled, await sign(key));
      assert.equal(outcome.status, 'ok', outcome.reason);
      assert.equal(outcome.requestPrincipal, `${ISSUER}/user-1`);
    }
    assert.equal(jwksServer.hits - before, 1);
  });

  it('shares one cache between rules naming the same URI', async () => {
    const before = jwksServer.hits;
    const resolver = createRemoteJwksResolver();
    const first = compile(resolver, { issuer: ISSUER, jwksUri: jwksServer.url });
    const second = compile(resolver, { issuer: ISSUER, jwksUri: jwksServer.url, audiences: [] });
    assert.equal((await run(first, await sign(key))).status, 'ok');
    assert.equal((await run(second, await sign(key))).status, 'ok');
    assert.equal(jwksServer.hits - before, 1);
  });

  it('does not fetch for a token Envoy rejects before looking at keys', async () => {
    const before = jwksServer.hits;
    const compiled = compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: jwksServer.url });
    const outcome = authenticate(compiled, request(bearer(await sign(key, { exp: -3600 }))), { now: NOW });
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.status, 401);
    assert.equal(jwksServer.hits, before);
  });

  it('stops at the first bad token, before fetching keys for the others', async () => {
    const before = jwksServer.hits;
    const compiled = compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: jwksServer.url });
    const req = request(bearer(await sign(key)), `/api?access_token=${await sign(key, { exp: -3600 })}`);
    const outcome = authenticate(compiled, req, { now: NOW });
    assert.ok(!(outcome instanceof Promise));
    assert.equal(outcome.reason, 'Jwt is expired');
    assert.equal(jwksServer.hits, before);
  });

  it('refetches once the cached set is older than the refresh interval', async () => {
    const before = jwksServer.hits;
    const compiled = compile(createRemoteJwksResolver({ cacheMaxAgeMs: 30 }), { issuer: ISSUER, jwksUri: jwksServer.url });
    assert.equal((await run(compiled, await sign(key))).status, 'ok');
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal((await run(compiled, await sign(key))).status, 'ok');
    assert.equal(jwksServer.hits - before, 2);
  });

  it('rejects a token whose kid the fetched set does not have', async () => {
    const stranger = await testKey('RS256', 'not-published');
    const compiled = compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: jwksServer.url });
    const outcome = await run(compiled, await sign(stranger));
    assert.equal(outcome.status, 401);
    assert.equal(outcome.reason, "Jwks doesn't have key to match kid or alg from Jwt");
  });

  it('fails closed when the server answers with an error', async () => {
    const broken = await serve((_req, res) => {
      res.writeHead(500);
      res.end('nope');
    });
    servers.push(broken);
    const outcome = await run(compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: broken.url }), await sign(key));
    assert.equal(outcome.status, 401);
    assert.equal(outcome.reason, 'Jwks remote fetch is failed');
    assert.equal(broken.hits, 1);
  });

  it('fails closed when the server returns something that is not a key set', async () => {
    const wrong = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"keys": 7}');
    });
    servers.push(wrong);
    const outcome = await run(compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: wrong.url }), await sign(key));
    assert.equal(outcome.status, 401);
  });

  it('fails closed when nothing listens', async () => {
    const gone = await serve(() => {});
    await gone.close();
    const outcome = await run(compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: gone.url }), await sign(key));
    assert.equal(outcome.status, 401);
    assert.equal(outcome.reason, 'Jwks remote fetch is failed');
  });

  it('gives up on a server that never answers after the rule timeout', async () => {
    const hanging = await serve(() => {
      // Never respond.
    });
    servers.push(hanging);
    const compiled = compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri: hanging.url, timeout: '0.2s' });
    assert.equal(compiled.rules[0]!.timeoutMs, 200);
    const started = performance.now();
    const outcome = await run(compiled, await sign(key));
    const elapsed = performance.now() - started;
    assert.equal(outcome.status, 401);
    assert.equal(outcome.reason, 'Jwks remote fetch is failed');
    assert.ok(elapsed >= 150 && elapsed < 2000, `took ${elapsed} ms`);
  });

  it('rejects every token without touching the network when fetching is not allowed', async () => {
    const before = jwksServer.hits;
    const outcome = await run(compile(failClosedJwksResolver, { issuer: ISSUER, jwksUri: jwksServer.url }), await sign(key));
    assert.equal(outcome.status, 401);
    assert.equal(outcome.reason, 'Jwks remote fetch is failed');
    assert.equal(jwksServer.hits, before);
  });

  it('fails closed on a URI it cannot fetch', async () => {
    for (const jwksUri of ['not a url', 'file:///etc/passwd', 'ftp://127.0.0.1/jwks']) {
      const outcome = await run(compile(createRemoteJwksResolver(), { issuer: ISSUER, jwksUri }), await sign(key));
      assert.equal(outcome.status, 401, jwksUri);
    }
  });

  it('memoizes the default resolver per URI and timeout', () => {
    const a = defaultJwksResolver('https://jwks.example.com/keys', 5000);
    assert.equal(defaultJwksResolver('https://jwks.example.com/keys', 5000), a);
    assert.notEqual(defaultJwksResolver('https://jwks.example.com/other', 5000), a);
  });
});
