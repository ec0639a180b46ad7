// Reading a TLS peer's certificate without node 24's leak
// (src/identity/peer-certificates.ts): with the fix installed, node's server
// still authorizes exactly the clients it did, and the certificate a peer
// presented is still readable from either end.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { createHash } from 'node:crypto';
import { avoidNodePeerChainLeak, certificateSha256Hex, peerLeaf, presentedSpiffeId } from '../../src/identity/peer-certificates.ts';
import { createLeaf, createRootCa, type TestCa, type TestLeaf } from '../support/pki.ts';

const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/ns/shop/sa/payments`;
const CLIENT_ID = `spiffe://${TD}/ns/shop/sa/orders`;

interface Accepted {
  readonly authorized: boolean;
  readonly authorizationError: unknown;
  readonly x509San: string | undefined;
  readonly leafFingerprint: string | undefined;
}

describe('peer certificates without the chain leak', () => {
  let root: TestCa;
  let serverLeaf: TestLeaf;
  let clientLeaf: TestLeaf;
  let foreignLeaf: TestLeaf;
  const servers: tls.Server[] = [];

  before(async () => {
    avoidNodePeerChainLeak();
    root = await createRootCa({ trustDomain: TD });
    serverLeaf = await createLeaf(root, { uris: [SERVER_ID] });
    clientLeaf = await createLeaf(root, { uris: [CLIENT_ID] });
    foreignLeaf = await createLeaf(await createRootCa({ trustDomain: TD }), { uris: [CLIENT_ID] });
  });
  after(() => {
    for (const s of servers) s.close();
  });

  /** A server asking for client certificates; resolves with what it made of the first client. */
  async function serverFor(rejectUnauthorized: boolean): Promise<{ port: number; accepted: Promise<Accepted> }> {
    const server = tls.createServer({ key: serverLeaf.keyPem, cert: serverLeaf.chainPem, ca: root.pem, requestCert: true, rejectUnauthorized });
    servers.push(server);
    const accepted = new Promise<Accepted>((resolve) => {
      server.once('secureConnection', (socket: tls.TLSSocket) => {
        resolve({
          authorized: socket.authorized,
          authorizationError: socket.authorizationError,
          x509San: socket.getPeerX509Certificate()?.subjectAltName,
          leafFingerprint: peerLeaf(socket)?.fingerprint256,
        });
        socket.end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { port: (server.address() as AddressInfo).port, accepted };
  }

  function connect(port: number, leaf: TestLeaf | null): tls.TLSSocket {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: root.pem,
      ...(leaf === null ? {} : { key: leaf.keyPem, cert: leaf.chainPem }),
      checkServerIdentity: () => undefined,
    });
    socket.on('error', () => undefined);
    return socket;
  }

  /** What a server asking for client certificates made of a client presenting `leaf` (null: none). */
  async function acceptedBy(rejectUnauthorized: boolean, leaf: TestLeaf | null): Promise<Accepted> {
    const { port, accepted } = await serverFor(rejectUnauthorized);
    const client = connect(port, leaf);
    try {
      return await accepted;
    } finally {
      client.destroy();
    }
  }

  it('authorizes a client whose certificate chains to the CA, and reads its leaf', async () => {
    const seen = await acceptedBy(false, clientLeaf);
    assert.equal(seen.authorized, true);
    assert.equal(seen.x509San, `URI:${CLIENT_ID}`);
    assert.equal(seen.leafFingerprint, clientLeaf.cert.fingerprint256);
  });

  it('does not authorize a client without a certificate', async () => {
    const seen = await acceptedBy(false, null);
    assert.equal(seen.authorized, false);
    assert.equal(typeof seen.authorizationError, 'string');
    assert.equal(seen.x509San, undefined);
    assert.equal(seen.leafFingerprint, undefined);
  });

  it('does not authorize a client whose certificate another CA issued', async () => {
    const seen = await acceptedBy(false, foreignLeaf);
    assert.equal(seen.authorized, false);
    assert.match(String(seen.authorizationError), /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE/);
  });

  it('refuses, when certificates are required, a client without one', async () => {
    const { port, accepted } = await serverFor(true);
    let secure = false;
    accepted.then(() => (secure = true), () => undefined);
    const client = connect(port, null);
    const error = await new Promise<unknown>((resolve) => client.once('error', resolve));
    assert.equal((error as { code?: string }).code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    assert.equal(secure, false);
  });

  it('authorizes a client that resumes a session, whose certificate the session carries', async () => {
    const server = tls.createServer({ key: serverLeaf.keyPem, cert: serverLeaf.chainPem, ca: root.pem, requestCert: true, rejectUnauthorized: false });
    servers.push(server);
    const seen: { reused: boolean; authorized: boolean; san: string | undefined }[] = [];
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      seen.push({ reused: socket.isSessionReused(), authorized: socket.authorized, san: peerLeaf(socket)?.subjectAltName });
      socket.end('hello\n');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const first = connect(port, clientLeaf).resume();
    const [session] = (await once(first, 'session')) as [Buffer];
    first.destroy();
    const second = tls.connect({ host: '127.0.0.1', port, ca: root.pem, key: clientLeaf.keyPem, cert: clientLeaf.chainPem, session, checkServerIdentity: () => undefined });
    second.on('error', () => undefined);
    second.resume();
    await once(second, 'secureConnect');
    assert.equal(second.isSessionReused(), true);
    await new Promise((r) => second.once('close', r));
    assert.deepEqual(seen[1], { reused: true, authorized: true, san: `URI:${CLIENT_ID}` });
  });

  it("reads the server's SPIFFE ID on the client, once per socket", async () => {
    const { port } = await serverFor(false);
    const client = connect(port, clientLeaf);
    assert.equal(presentedSpiffeId(client), null, 'nothing is presented before the handshake');
    await once(client, 'secureConnect');
    assert.equal(presentedSpiffeId(client), SERVER_ID);
    assert.equal(presentedSpiffeId(client), SERVER_ID);
    assert.equal(client.getPeerX509Certificate()?.subjectAltName, `URI:${SERVER_ID}`);
    client.destroy();
  });

  it("hashes a certificate's DER as x-forwarded-client-cert's Hash= says, once per certificate", () => {
    const hex = certificateSha256Hex(clientLeaf.cert);
    assert.equal(hex, createHash('sha256').update(clientLeaf.cert.raw).digest('hex'));
    assert.equal(certificateSha256Hex(clientLeaf.cert), hex);
    assert.notEqual(certificateSha256Hex(serverLeaf.cert), hex);
  });
});
