// token-issuer: a demo OpenID-style issuer for the ingress gateway's JWT
// policy. DEMO ONLY: it signs a token for anyone who asks, its ES256 key
// lives in memory and changes on every start. Never use it as a real
// identity provider.
//
//   GET /.well-known/jwks.json           the public key set
//   GET /token?sub=alice&role=admin      a JWT (role: user by default, or admin), as text
//
// It runs outside the mesh, on 127.0.0.1:$PORT.

import { createServer } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

import { log } from './lib.ts';

const ISSUER = 'https://auth.shop.example';
const AUDIENCE = 'shop';
const KID = `shop-${Date.now().toString(36)}`;

const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] });

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const done = (status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type });
    res.end(body);
    log(`token-issuer ${req.method} ${url.pathname}${url.search} ${status}`);
  };
  if (req.method === 'GET' && url.pathname === '/.well-known/jwks.json') return done(200, 'application/json', jwks);
  if (req.method === 'GET' && url.pathname === '/token') {
    const sub = url.searchParams.get('sub') ?? 'alice';
    const role = url.searchParams.get('role') ?? 'user';
    if (role !== 'user' && role !== 'admin') return done(400, 'text/plain', 'role must be user or admin\n');
    new SignJWT({ role })
      .setProtectedHeader({ alg: 'ES256', kid: KID, typ: 'JWT' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey)
      .then((token) => done(200, 'text/plain', `${token}\n`), (err: Error) => done(500, 'text/plain', `${err.message}\n`));
    return;
  }
  done(404, 'text/plain', 'not found\n');
});

const port = Number(process.env['PORT'] ?? 18000);
server.listen(port, '127.0.0.1', () => log(`token-issuer listening on 127.0.0.1:${port} (demo only)`));
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
