// Real mTLS handshakes on 127.0.0.1 between node:tls servers and clients
// built by src/identity/tls-options.ts, with certificates from
// test/support/pki.ts. Every refused peer is refused for a named reason, and
// the test asserts which one.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  MESH_TLS_VERSION,
  PeerRefusedError,
  createMtlsServer,
  mtlsClientOptions,
  refusalOf,
  verifiedPeer,
  type MtlsMaterial,
  type MtlsServer,
  type PeerRefusal,
  type PeerRefusalReport,
} from '../../src/identity/tls-options.ts';
import { mergeBundles, trustBundleFromPem, type TrustBundle } from '../../src/identity/trust-bundle.ts';
import { verifyTlsPeer } from '../../src/identity/verify-svid.ts';
import {
  DAY,
  HOUR,
  ago,
  createIntermediateCa,
  createLeaf,
  createRootCa,
  fromNow,
  type TestCa,
  type TestLeaf,
} from '../support/pki.ts';

const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/ns/foo/sa/httpbin`;
const CLIENT_ID = `spiffe://${TD}/ns/bar/sa/sleep`;

function bundleOf(...cas: TestCa[]): TrustBundle {
  const b = trustBundleFromPem(TD, cas.map((c) => c.pem).join(''));
  if ('error' in b) throw new Error(b.error);
  return b;
}

function material(leaf: TestLeaf, bundle: TrustBundle): MtlsMaterial {
  return { key: leaf.key, chain: leaf.chain, bundle };
}

interface ClientOutcome {
  /** The client completed its side of the handshake. */
  secure: boolean;
  /** Everything the server sent. */
  data: string;
  error: Error | undefined;
  alpn: string | false | null | undefined;
  protocol: string | null;
}

/** Connects, reads until the server's greeting line (or until close), then hangs up. */
function exchange(port: number, options: tls.ConnectionOptions): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const out: ClientOutcome = { secure: false, data: '', error: undefined, alpn: undefined, protocol: null };
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.on('secureConnect', () => {
      out.secure = true;
      out.alpn = socket.alpnProtocol;
      out.protocol = socket.getProtocol();
    });
    socket.on('data', (d: Buffer) => {
      out.data += d.toString();
      if (out.data.includes('\n')) socket.end();
    });
    socket.on('error', (err) => {
      out.error ??= err;
    });
    socket.on('close', () => resolve(out));
  });
}

/** The server under test: greets each accepted peer with its ID, then echoes. */
class Harness {
  readonly refusals: PeerRefusalReport[] = [];
  /** Every refusal ever reported, claimed or not. */
  readonly history: PeerRefusalReport[] = [];
  readonly accepted: string[] = [];
  #waiters: ((r: PeerRefusalReport) => void)[] = [];
  mtls!: MtlsServer;
  port = 0;

  async start(m: MtlsMaterial): Promise<void> {
    this.mtls = createMtlsServer(m, {
      onRefused: (report) => {
        this.history.push(report);
        const waiter = this.#waiters.shift();
        if (waiter !== undefined) waiter(report);
        else this.refusals.push(report);
      },
      onAccepted: (socket, peer) => {
        this.accepted.push(peer.id.uri);
        socket.on('error', () => {});
        socket.write(`hello ${peer.id.uri} over ${socket.alpnProtocol || 'no-alpn'}\n`);
        socket.on('data', (d) => socket.write(d));
      },
    });
    this.mtls.server.listen(0, '127.0.0.1');
    await once(this.mtls.server, 'listening');
    this.port = (this.mtls.server.address() as AddressInfo).port;
  }

  /** The next refusal the server reports (those already reported and unclaimed first). */
  nextRefusal(): Promise<PeerRefusalReport> {
    const pending = this.refusals.splice(0, 1)[0];
    if (pending !== undefined) return Promise.resolve(pending);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.mtls.server.close();
  }
}

async function expectServerRefusal(h: Harness, attempt: Promise<ClientOutcome>, check: PeerRefusal): Promise<ClientOutcome> {
  const [outcome, report] = await Promise.all([attempt, h.nextRefusal()]);
  assert.equal(report.check, check, `server refused with ${report.check} (${report.reason}), expected ${check}`);
  assert.equal(outcome.data, '', 'a refused client must not receive application data');
  assert.equal(h.refusals.length, 0, 'exactly one refusal per attempt');
  return outcome;
}

let root: TestCa;
let inter: TestCa;
let bundle: TrustBundle;
let serverLeaf: TestLeaf;
let clientLeaf: TestLeaf;
const h = new Harness();

before(async () => {
  root = await createRootCa({ trustDomain: TD });
  inter = await createIntermediateCa(root);
  bundle = bundleOf(root);
  serverLeaf = await createLeaf(inter, { uris: [SERVER_ID] });
  clientLeaf = await createLeaf(inter, { uris: [CLIENT_ID] });
  await h.start(material(serverLeaf, bundle));
});

after(() => h.stop());

function client(leaf: TestLeaf, allowedIds: ReadonlySet<string> | null = new Set([SERVER_ID]), extra: Partial<Parameters<typeof mtlsClientOptions>[1]> = {}) {
  return mtlsClientOptions(material(leaf, bundle), { allowedIds, ...extra });
}

describe('mTLS handshake: accepted', () => {
  it('a client with a good SVID; both ends verify each other; TLS 1.3; ALPN h2', async () => {
    const out = await exchange(h.port, client(clientLeaf));
    assert.equal(out.error, undefined);
    assert.equal(out.data, `hello ${CLIENT_ID} over h2\n`);
    assert.equal(out.protocol, MESH_TLS_VERSION);
    assert.equal(out.alpn, 'h2');
    assert.deepEqual(h.accepted.splice(0), [CLIENT_ID]);
    assert.equal(h.refusals.length, 0);
  });

  it('an RSA-2048 client SVID', async () => {
    const rsa = await createLeaf(inter, { uris: [CLIENT_ID], keyKind: 'rsa-2048' });
    const out = await exchange(h.port, client(rsa));
    assert.equal(out.data, `hello ${CLIENT_ID} over h2\n`);
    assert.deepEqual(h.accepted.splice(0), [CLIENT_ID]);
  });

  it('a client that offers only the istio ALPN marker gets opaque TCP', async () => {
    const out = await exchange(h.port, client(clientLeaf, new Set([SERVER_ID]), { alpn: ['istio'] }));
    assert.equal(out.alpn, 'istio');
    assert.equal(out.data, `hello ${CLIENT_ID} over istio\n`);
    h.accepted.splice(0);
  });

  it('a client reads the verified server identity from its socket', async () => {
    const options = client(clientLeaf);
    const socket = tls.connect({ host: '127.0.0.1', port: h.port, ...options });
    await once(socket, 'secureConnect');
    const v = verifyTlsPeer(socket, bundle, { allowedIds: new Set([SERVER_ID]) });
    assert.ok(v.ok);
    assert.equal(v.id.uri, SERVER_ID);
    await once(socket, 'data'); // the server accepted us too; hang up cleanly
    socket.end();
    await once(socket, 'close');
    assert.deepEqual(h.accepted.splice(0), [CLIENT_ID]);
    assert.equal(h.refusals.length, 0);
  });
});

describe('mTLS handshake: refused, and why', () => {
  it('plaintext HTTP: not-tls', async () => {
    const sock = net.connect(h.port, '127.0.0.1', () => sock.write('GET / HTTP/1.1\r\nHost: httpbin\r\n\r\n'));
    let data = '';
    sock.on('data', (d) => (data += d.toString()));
    sock.on('error', () => {});
    const [report] = await Promise.all([h.nextRefusal(), once(sock, 'close')]);
    assert.equal(report.check, 'not-tls');
    assert.match(report.reason, /HTTP_REQUEST|WRONG_VERSION/);
    assert.equal(data, '');
  });

  it('plaintext bytes: not-tls', async () => {
    const sock = net.connect(h.port, '127.0.0.1', () => sock.write('hello, plaintext\n'));
    sock.on('error', () => {});
    const [report] = await Promise.all([h.nextRefusal(), once(sock, 'close')]);
    assert.equal(report.check, 'not-tls');
  });

  it('a TLS client with no certificate: no-certificate', async () => {
    const out = await expectServerRefusal(
      h,
      exchange(h.port, { ca: bundle.pem, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' }),
      'no-certificate',
    );
    assert.equal(refusalOf(out.error), 'no-certificate');
  });

  it('a TLS 1.2-only client: tls-handshake', async () => {
    const out = await expectServerRefusal(
      h,
      exchange(h.port, { ...client(clientLeaf), minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', secureContext: undefined, ca: bundle.pem, key: clientLeaf.keyPem, cert: clientLeaf.chainPem }),
      'tls-handshake',
    );
    assert.ok(out.error !== undefined);
  });

  it('a self-signed client certificate: untrusted-chain', async () => {
    const self = await createLeaf(inter, { uris: [CLIENT_ID], selfSigned: true });
    await expectServerRefusal(h, exchange(h.port, client(self)), 'untrusted-chain');
  });

  it('the right SPIFFE ID from another CA: untrusted-chain', async () => {
    const otherRoot = await createRootCa({ trustDomain: TD });
    const forged = await createLeaf(await createIntermediateCa(otherRoot), { uris: [CLIENT_ID] });
    await expectServerRefusal(h, exchange(h.port, client(forged)), 'untrusted-chain');
  });

  it('an expired client SVID: expired', async () => {
    const expired = await createLeaf(inter, { uris: [CLIENT_ID], notBefore: ago(2 * DAY), notAfter: ago(HOUR) });
    await expectServerRefusal(h, exchange(h.port, client(expired)), 'expired');
  });

  it('a client SVID not valid yet: not-yet-valid', async () => {
    const early = await createLeaf(inter, { uris: [CLIENT_ID], notBefore: fromNow(HOUR), notAfter: fromNow(DAY) });
    await expectServerRefusal(h, exchange(h.port, client(early)), 'not-yet-valid');
  });

  it('two URI SANs: uri-san-count', async () => {
    const two = await createLeaf(inter, { uris: [CLIENT_ID, `spiffe://${TD}/ns/bar/sa/admin`] });
    await expectServerRefusal(h, exchange(h.port, client(two)), 'uri-san-count');
  });

  it('a CA:true leaf: leaf-is-ca', async () => {
    const caLeaf = await createLeaf(inter, { uris: [CLIENT_ID], ca: true });
    await expectServerRefusal(h, exchange(h.port, client(caLeaf)), 'leaf-is-ca');
  });

  it('an ID from another trust domain, signed by this CA: wrong-trust-domain', async () => {
    const foreign = await createLeaf(inter, { uris: ['spiffe://evil.example/ns/bar/sa/sleep'] });
    await expectServerRefusal(h, exchange(h.port, client(foreign)), 'wrong-trust-domain');
  });

  it('no URI SAN: uri-san-count', async () => {
    const none = await createLeaf(inter, { uris: [], dnsNames: ['sleep.bar.svc'] });
    await expectServerRefusal(h, exchange(h.port, client(none)), 'uri-san-count');
  });

  it('a leaf without clientAuth: key-usage (OpenSSL refuses it first)', async () => {
    const serverOnly = await createLeaf(inter, { uris: [CLIENT_ID], extKeyUsage: ['1.3.6.1.5.5.7.3.1'] });
    await expectServerRefusal(h, exchange(h.port, client(serverOnly)), 'key-usage');
  });

  it('secure naming: a client refuses a server whose ID is not allowed', async () => {
    const out = await exchange(h.port, client(clientLeaf, new Set([`spiffe://${TD}/ns/foo/sa/other`])));
    assert.ok(out.error instanceof PeerRefusedError, `expected PeerRefusedError, got ${String(out.error)}`);
    assert.equal(out.error.check, 'not-allowed');
    assert.equal(out.error.code, 'ERR_MW_PEER_REFUSED');
    assert.equal(refusalOf(out.error), 'not-allowed');
    assert.match(out.error.message, /spiffe:\/\/cluster\.local\/ns\/foo\/sa\/httpbin/);
    assert.equal(out.data, '');
    h.accepted.splice(0); // the server, for its part, accepted the client
  });

  it('a client refuses a server whose SVID is from another CA (OpenSSL first)', async () => {
    const otherRoot = await createRootCa({ trustDomain: TD });
    const other = new Harness();
    const impostor = await createLeaf(otherRoot, { uris: [SERVER_ID] });
    await other.start(material(impostor, bundle));
    try {
      const out = await exchange(other.port, client(clientLeaf));
      assert.equal(refusalOf(out.error), 'untrusted-chain', String(out.error));
      assert.equal(out.data, '');
    } finally {
      await other.stop();
    }
  });

  it('never emits a private key in refusals or errors', () => {
    const pem = clientLeaf.keyPem.split('\n').slice(1, 3).join('');
    assert.ok(h.history.length >= 10);
    for (const r of h.history) assert.ok(!JSON.stringify(r).includes(pem));
    assert.throws(
      () => mtlsClientOptions({ key: 'not a key ' + pem, chain: clientLeaf.chain, bundle }, { allowedIds: null }),
      (err: Error) => !err.message.includes(pem) && /not a readable PEM private key/.test(err.message),
    );
    assert.throws(
      () => mtlsClientOptions({ key: serverLeaf.key, chain: clientLeaf.chain, bundle }, { allowedIds: null }),
      /key does not belong/,
    );
    const options = client(clientLeaf);
    assert.ok(!('key' in options), 'client options carry a SecureContext, not the key');
  });
});

describe('mTLS handshake: rotating a live server', () => {
  it('keeps established connections and serves new ones with the new SVID and bundle', async () => {
    const live = new Harness();
    await live.start(material(serverLeaf, bundle));
    try {
      // A connection established before the swap.
      const before = tls.connect({ host: '127.0.0.1', port: live.port, ...client(clientLeaf) });
      before.on('error', () => {});
      let received = '';
      const waitFor = (text: string) =>
        new Promise<void>((resolve) => {
          const check = () => {
            if (received.includes(text)) {
              before.off('data', onData);
              resolve();
            }
          };
          const onData = (d: Buffer) => {
            received += d.toString();
            check();
          };
          before.on('data', onData);
          check();
        });
      await waitFor(`hello ${CLIENT_ID}`);
      assert.equal(before.getPeerX509Certificate()?.fingerprint256, serverLeaf.cert.fingerprint256);

      // Root rotation: a new root and a new server SVID from it; both roots trusted.
      const newRoot = await createRootCa({ trustDomain: TD });
      const newServerLeaf = await createLeaf(newRoot, { uris: [SERVER_ID] });
      const both = mergeBundles(bundle, bundleOf(newRoot));
      live.mtls.update(material(newServerLeaf, both));

      // The old connection still works.
      before.write('ping after swap\n');
      await waitFor('ping after swap\n');

      // New connections get the new certificate...
      const fresh = tls.connect({ host: '127.0.0.1', port: live.port, ...mtlsClientOptions(material(clientLeaf, both), { allowedIds: new Set([SERVER_ID]) }) });
      fresh.on('error', () => {});
      await once(fresh, 'secureConnect');
      assert.equal(fresh.getPeerX509Certificate()?.fingerprint256, newServerLeaf.cert.fingerprint256);
      fresh.destroy();

      // ...and a client that trusts only the old root now refuses the server.
      const stale = await exchange(live.port, client(clientLeaf));
      assert.equal(refusalOf(stale.error), 'untrusted-chain', String(stale.error));

      // The server trusts clients of either root.
      const clientOfNewRoot = await createLeaf(newRoot, { uris: [CLIENT_ID] });
      const out = await exchange(live.port, mtlsClientOptions(material(clientOfNewRoot, both), { allowedIds: new Set([SERVER_ID]) }));
      assert.equal(out.data, `hello ${CLIENT_ID} over h2\n`);

      assert.ok(!before.destroyed);
      before.end();
      await once(before, 'close');
    } finally {
      await live.stop();
    }
  });

  it('verifiedPeer names the accepted client on the server socket', async () => {
    const seen = new Promise<tls.TLSSocket>((resolve) => h.mtls.server.once('secureConnection', resolve));
    const out = exchange(h.port, client(clientLeaf));
    const socket = await seen;
    assert.equal(verifiedPeer(socket)?.id.uri, CLIENT_ID);
    await out;
    h.accepted.splice(0);
  });
});
