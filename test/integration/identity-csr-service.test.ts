// The CSR service as a workload meets it: real gRPC over TLS on 127.0.0.1,
// a real CA in a temporary state directory, real CSRs. Each refusal is
// checked three ways: the status code the caller sees (opaque), the reason
// the server counted, and the reason it logged.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { CREATE_CERTIFICATE_PATH, identityServices } from '../../src/api/identity-messages.ts';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../src/identity/ca/index.ts';
import { CaServer, BootstrapTokens, type CaServerLogEntry } from '../../src/control/ca-server/index.ts';
import { CaCallError, createCertificate, type CallerCredential, type CaConnection } from '../../src/identity/agent/ca-client.ts';
import { generateKeyAndCsr } from '../../src/identity/agent/keys.ts';
import { trustBundleFromPem, type TrustBundle } from '../../src/identity/trust-bundle.ts';
import { verifySvid } from '../../src/identity/verify-svid.ts';

const TD = 'cluster.local';
const A = `spiffe://${TD}/ns/shop/sa/frontend`;
const B = `spiffe://${TD}/ns/shop/sa/payments`;
const SERVER_ID = `spiffe://${TD}/ns/meshward-system/sa/meshward-control`;

let dir: string;
let ca: CertificateAuthority;
let server: CaServer;
let registry: Registry;
let tokens: BootstrapTokens;
let tokenKey: Uint8Array;
/** Shifts the token clock: minting "in the past" makes an expired token. */
let tokenSkewMs = 0;
const logs: CaServerLogEntry[] = [];

function conn(): CaConnection {
  return { address: server.address, bundlePem: server.trustBundlePem(), caIdentity: SERVER_ID, agentId: 'test-client', timeoutMs: 5000 };
}

function bundle(): TrustBundle {
  const b = trustBundleFromPem(TD, server.trustBundlePem());
  assert.ok(!('error' in b));
  return b;
}

async function token(id: string): Promise<CallerCredential> {
  return { kind: 'token', token: await server.mintBootstrapToken(id) };
}

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => (v.labels as Record<string, unknown>)[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

async function refusal(p: Promise<unknown>): Promise<CaCallError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CaCallError, `expected a gRPC error, got ${String(err)}`);
    return err;
  }
  assert.fail('the call succeeded');
}

function lastLog(event: string): CaServerLogEntry {
  const entry = logs.findLast((e) => e.event === event);
  assert.ok(entry, `no ${event} log entry`);
  return entry;
}

/** Issues a certificate for A with a bootstrap token; returns what renewal needs. */
async function bootstrapA(): Promise<{ keyPem: string; certChainPem: string; chain: string[] }> {
  const { keyPem, csrPem } = await generateKeyAndCsr(A);
  const chain = await createCertificate(conn(), await token(A), { csrPem, ttlSeconds: 600, metadata: { WorkloadName: 'frontend-1' } });
  return { keyPem, certChainPem: chain[0]!, chain };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-csr-'));
  registry = new Registry();
  ca = await CertificateAuthority.open({ stateDir: join(dir, 'ca'), trustDomain: TD, registry, workloadTtlSeconds: 3600 });
  tokenKey = randomBytes(32);
  tokens = new BootstrapTokens({ audience: SERVER_ID, key: tokenKey, now: () => Date.now() + tokenSkewMs });
  server = await CaServer.start({ ca, registry, bootstrapTokens: tokens, log: (e) => logs.push(e) });
});

after(async () => {
  await server?.stop();
  await ca?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('CreateCertificate with a bootstrap token', () => {
  it('issues an X509-SVID for the token subject, leaf first and root last', async () => {
    const { chain } = await bootstrapA();
    assert.equal(chain.length, 2);
    for (const pem of chain) assert.ok(pem.endsWith('\n'), 'each element ends with a newline, as Istio sends them');
    const leaf = new X509Certificate(chain[0]!);
    const root = new X509Certificate(chain[1]!);
    assert.equal(leaf.subjectAltName, `URI:${A}`);
    assert.deepEqual(bundle().fingerprints, [root.fingerprint256]);
    const verdict = verifySvid([leaf], bundle());
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.reason);
    assert.equal(verdict.id.uri, A);
    const issued = lastLog('certificate-issued');
    assert.equal(issued.fields.authenticator, 'bootstrap-token');
    assert.deepEqual(issued.fields.metadata, { WorkloadName: 'frontend-1' });
  });

  it('refuses a replayed token, and counts it as a replay', async () => {
    const cred = await token(A);
    const { csrPem } = await generateKeyAndCsr(A);
    await createCertificate(conn(), cred, { csrPem, ttlSeconds: 0, metadata: {} });
    const before = await counter('citadel_server_authentication_failure_count', { reason: 'replayed' });
    const received = await counter('citadel_server_csr_count');
    const err = await refusal(createCertificate(conn(), cred, { csrPem, ttlSeconds: 0, metadata: {} }));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(await counter('citadel_server_csr_count'), received + 1, 'a refused CSR is still a CSR received, as Istio counts');
    assert.equal(err.message, 'request authentication failure', 'the caller learns nothing about why');
    assert.equal(await counter('citadel_server_authentication_failure_count', { reason: 'replayed' }), before + 1);
    const log = lastLog('authn-refused');
    assert.equal(log.fields.reason, 'replayed', 'the replay check refused it');
    assert.equal(log.fields.authenticator, 'bootstrap-token');
  });

  it('refuses an expired token', async () => {
    tokenSkewMs = -10 * 60_000; // minted ten minutes ago: five minutes past its expiry
    const cred = await token(A);
    tokenSkewMs = 0;
    const { csrPem } = await generateKeyAndCsr(A);
    const err = await refusal(createCertificate(conn(), cred, { csrPem, ttlSeconds: 0, metadata: {} }));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(lastLog('authn-refused').fields.reason, 'expired');
    assert.equal(await counter('citadel_server_authentication_failure_count', { reason: 'expired' }), 1);
  });

  it('refuses a token minted for another CA (audience) or with another key', async () => {
    const { csrPem } = await generateKeyAndCsr(A);
    const otherAudience = new BootstrapTokens({ audience: `spiffe://${TD}/ns/other/sa/other-ca`, key: tokenKey });
    let err = await refusal(createCertificate(conn(), { kind: 'token', token: await otherAudience.mint(A) }, { csrPem, ttlSeconds: 0, metadata: {} }));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(lastLog('authn-refused').fields.reason, 'wrong-audience');

    const foreignKey = new BootstrapTokens({ audience: SERVER_ID });
    err = await refusal(createCertificate(conn(), { kind: 'token', token: await foreignKey.mint(A) }, { csrPem, ttlSeconds: 0, metadata: {} }));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(lastLog('authn-refused').fields.reason, 'bad-signature');

    err = await refusal(createCertificate(conn(), { kind: 'token', token: 'not.a.jwt' }, { csrPem, ttlSeconds: 0, metadata: {} }));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(lastLog('authn-refused').fields.reason, 'malformed');
    assert.equal(await counter('citadel_server_authentication_failure_count', { reason: 'wrong-audience' }), 1);
    assert.equal(await counter('citadel_server_authentication_failure_count', { reason: 'bad-signature' }), 1);
  });

  it("refuses a CSR for B's identity with A's token, and counts the mismatch", async () => {
    const { csrPem } = await generateKeyAndCsr(B);
    const before = await counter('citadel_server_csr_sign_err_count', { reason: 'identity-mismatch' });
    const err = await refusal(createCertificate(conn(), await token(A), { csrPem, ttlSeconds: 0, metadata: {} }));
    assert.equal(err.code, status.PERMISSION_DENIED);
    assert.doesNotMatch(err.message, /payments|frontend/, 'the caller is not told which names were compared');
    assert.equal(await counter('citadel_server_csr_sign_err_count', { reason: 'identity-mismatch' }), before + 1);
    const log = lastLog('csr-refused');
    assert.equal(log.fields.reason, 'identity-mismatch');
    assert.equal(log.fields.identity, A);
    assert.match(String(log.fields.detail), /payments/, 'the server log says what was asked for');
  });

  it('refuses a call with no credential at all', async () => {
    const { csrPem } = await generateKeyAndCsr(A);
    const method = identityServices().certificate.CreateCertificate!;
    const client = new Client(server.address, credentials.createSsl(Buffer.from(server.trustBundlePem()), null, null, { checkServerIdentity: () => undefined }), {
      'grpc.ssl_target_name_override': 'meshward-ca',
    });
    const code = await new Promise<number>((resolve) => {
      client.makeUnaryRequest(
        CREATE_CERTIFICATE_PATH,
        method.requestSerialize,
        method.responseDeserialize,
        { csr: csrPem, validity_duration: 0 },
        new Metadata(),
        (err: ServiceError | null) => resolve(err?.code ?? status.OK),
      );
    });
    client.close();
    assert.equal(code, status.UNAUTHENTICATED);
    assert.equal(lastLog('authn-refused').fields.reason, 'no-credentials');
  });
});

describe('CreateCertificate with the current SVID (renewal over mTLS)', () => {
  it('renews with the client certificate; the identity comes from it', async () => {
    const svid = await bootstrapA();
    const { keyPem, csrPem } = await generateKeyAndCsr(A);
    const chain = await createCertificate(conn(), { kind: 'svid', keyPem: svid.keyPem, certChainPem: svid.certChainPem }, {
      csrPem,
      ttlSeconds: 300,
      metadata: {},
    });
    const leaf = new X509Certificate(chain[0]!);
    assert.equal(leaf.subjectAltName, `URI:${A}`);
    assert.notEqual(leaf.serialNumber, new X509Certificate(svid.certChainPem).serialNumber);
    assert.ok(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem)));
    const issued = lastLog('certificate-issued');
    assert.equal(issued.fields.authenticator, 'client-certificate');
    assert.equal(issued.fields.requestedTtlSeconds, 300);
  });

  it("refuses a CSR for another identity even with a valid certificate", async () => {
    const svid = await bootstrapA();
    const { csrPem } = await generateKeyAndCsr(B);
    const err = await refusal(
      createCertificate(conn(), { kind: 'svid', keyPem: svid.keyPem, certChainPem: svid.certChainPem }, { csrPem, ttlSeconds: 0, metadata: {} }),
    );
    assert.equal(err.code, status.PERMISSION_DENIED);
  });
});

describe('CreateCertificate with a bad CSR', () => {
  let cred: CallerCredential;
  before(async () => {
    const svid = await bootstrapA();
    cred = { kind: 'svid', keyPem: svid.keyPem, certChainPem: svid.certChainPem };
  });

  const call = (csrPem: string) => createCertificate(conn(), cred, { csrPem, ttlSeconds: 0, metadata: {} });

  it('says "not PEM" for text that is not PEM, and keeps serving', async () => {
    const err = await refusal(call('this is not a certificate request'));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.message, /not PEM/);
    const { csrPem } = await generateKeyAndCsr(A);
    assert.equal((await call(csrPem)).length, 2);
  });

  it('says "truncated" for a CSR cut short, and keeps serving', async () => {
    const { csrPem } = await generateKeyAndCsr(A);
    const lines = csrPem.trimEnd().split('\n');
    // Drop the last full base64 line: still valid base64, but the DER ends early.
    const truncated = [...lines.slice(0, lines.length - 3), lines[lines.length - 1]!].join('\n') + '\n';
    const err = await refusal(call(truncated));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.message, /truncated/);
    assert.equal((await call(csrPem)).length, 2);
  });

  it('says "malformed PEM" for a body that is not base64', async () => {
    const err = await refusal(call('-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n'));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.message, /malformed PEM/);
  });

  it('names the limit for an oversized CSR, and keeps serving', async () => {
    const { csrPem } = await generateKeyAndCsr(A);
    const oversized = csrPem + '#'.repeat(20 * 1024);
    const before = await counter('citadel_server_csr_parsing_err_count');
    const err = await refusal(call(oversized));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.message, /larger than the limit of 16384 bytes/);
    assert.equal(await counter('citadel_server_csr_parsing_err_count'), before + 1, "counted by the CA's parse error counter");
    assert.equal((await call(csrPem)).length, 2);
  });

  it('refuses a PEM block of another kind', async () => {
    const err = await refusal(call(server.trustBundlePem()));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.message, /"CERTIFICATE", expected "CERTIFICATE REQUEST"/);
  });
});
