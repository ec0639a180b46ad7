// Signing: the leaf carries exactly the caller's SPIFFE ID and Istio's
// workload profile, whatever the CSR asks for; TTLs follow Istio's rules;
// serials are unique; the chain handed out verifies as an X.509-SVID.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { ALICE, BOB, TD, makeCsr, metricValue, openCa, refused, removeTempDirs, uriSan } from './support.ts';
import { x509, parseCertificates } from '../../../../src/identity/ca/x509.ts';
import { CertificateAuthority, DEFAULT_MAX_WORKLOAD_TTL_SECONDS } from '../../../../src/identity/ca/index.ts';
import { trustBundleFromPem } from '../../../../src/identity/trust-bundle.ts';
import { verifySvid } from '../../../../src/identity/verify-svid.ts';
import type { Registry } from 'prom-client';

let ca: CertificateAuthority;
let registry: Registry;
before(async () => {
  ({ ca, registry } = await openCa());
});
after(async () => {
  await ca.close();
  await removeTempDirs();
});

function leafOf(chain: string[]): x509.X509Certificate {
  return parseCertificates(chain[0]!)[0]!;
}

function verify(chain: string[]) {
  const bundle = trustBundleFromPem(TD, ca.trustBundlePem());
  assert.ok(!('error' in bundle), 'bundle parses');
  return verifySvid(
    chain.map((p) => new X509Certificate(p)),
    bundle,
  );
}

describe('sign: the leaf', () => {
  it('has exactly one URI SAN, the caller, whatever the CSR subject says', async () => {
    const r = await ca.sign({ csrPem: await makeCsr({ subject: 'CN=admin, O=evil' }), identity: ALICE });
    const leaf = leafOf(r.certChainPem);
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)!;
    assert.deepEqual(san.names.toJSON(), [{ type: 'url', value: ALICE.uri }]);
    assert.equal(san.critical, true, 'critical: the subject is empty');
    assert.equal(leaf.subject, '', 'the CSR subject is not copied');
  });

  it('is CA:false, digitalSignature+keyEncipherment, serverAuth+clientAuth, with an AKI naming the root', async () => {
    const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
    const leaf = leafOf(r.certChainPem);
    const [root] = parseCertificates(ca.trustBundlePem());
    const bc = leaf.getExtension(x509.BasicConstraintsExtension)!;
    assert.equal(bc.ca, false);
    assert.equal(bc.critical, true);
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.equal(ku.critical, true);
    assert.deepEqual([...leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    assert.equal(
      leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId,
      root!.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    assert.equal(leaf.issuer, root!.subject);
  });

  it('carries the CSR public key', async () => {
    const csrPem = await makeCsr({ key: 'rsa-2048' });
    const r = await ca.sign({ csrPem, identity: ALICE });
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    assert.deepEqual(Buffer.from(leafOf(r.certChainPem).publicKey.rawData), Buffer.from(csr.publicKey.rawData));
  });

  for (const key of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
    it(`signs a ${key} CSR into a chain verifySvid accepts`, async () => {
      const r = await ca.sign({ csrPem: await makeCsr({ key }), identity: BOB });
      const verdict = verify(r.certChainPem);
      assert.ok(verdict.ok, verdict.ok ? '' : `${verdict.check}: ${verdict.reason}`);
      assert.equal(verdict.id.uri, BOB.uri);
    });
  }

  it('hands out leaf then root, one PEM each ending in a newline (Istio cert_chain: root last)', async () => {
    const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
    assert.equal(r.certChainPem.length, 2);
    for (const pem of r.certChainPem) {
      assert.equal(parseCertificates(pem).length, 1);
      assert.ok(pem.endsWith('-----END CERTIFICATE-----\n'));
    }
    assert.equal(r.certChainPem[1], ca.trustBundlePem());
  });

  it('accepts a CSR whose only SAN is the caller', async () => {
    const r = await ca.sign({ csrPem: await makeCsr({ sans: [uriSan(ALICE.uri)] }), identity: ALICE });
    assert.equal(leafOf(r.certChainPem).getExtension(x509.SubjectAlternativeNameExtension)!.names.items.length, 1);
  });

  it('returns the serial (lower-case hex) and notAfter of the leaf', async () => {
    const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
    const leaf = leafOf(r.certChainPem);
    assert.equal(r.serial, leaf.serialNumber.toLowerCase());
    assert.equal(r.notAfter.getTime(), leaf.notAfter.getTime());
  });
});

describe('sign: TTL (Istio: non-positive means the default, above the maximum is refused)', () => {
  const lifetime = (chain: string[]) => {
    const leaf = leafOf(chain);
    return { fromNow: leaf.notAfter.getTime() - Date.now(), backdate: Date.now() - leaf.notBefore.getTime() };
  };

  it('defaults to 24 h, backdated 2 minutes for clock skew', async () => {
    const { fromNow, backdate } = lifetime((await ca.sign({ csrPem: await makeCsr(), identity: ALICE })).certChainPem);
    assert.ok(Math.abs(fromNow - 24 * 3600_000) < 5_000, `24 h, got ${fromNow} ms`);
    assert.ok(Math.abs(backdate - 120_000) < 5_000, `2 min, got ${backdate} ms`);
  });

  for (const ttlSeconds of [0, -5]) {
    it(`ttlSeconds ${ttlSeconds} means the default`, async () => {
      const { fromNow } = lifetime((await ca.sign({ csrPem: await makeCsr(), identity: ALICE, ttlSeconds })).certChainPem);
      assert.ok(Math.abs(fromNow - 24 * 3600_000) < 5_000);
    });
  }

  it('honours a requested TTL up to the maximum', async () => {
    const { fromNow } = lifetime((await ca.sign({ csrPem: await makeCsr(), identity: ALICE, ttlSeconds: 3600 })).certChainPem);
    assert.ok(Math.abs(fromNow - 3600_000) < 5_000);
    const max = lifetime((await ca.sign({ csrPem: await makeCsr(), identity: ALICE, ttlSeconds: DEFAULT_MAX_WORKLOAD_TTL_SECONDS })).certChainPem);
    assert.ok(Math.abs(max.fromNow - DEFAULT_MAX_WORKLOAD_TTL_SECONDS * 1000) < 5_000);
  });

  it('refuses a TTL above the maximum with ttl-too-long, and counts it as Istio\'s TTL_ERROR', async () => {
    const before = await metricValue(registry, 'citadel_server_csr_sign_err_count', { error: 'TTL_ERROR', reason: 'ttl-too-long' });
    const err = await refused(ca.sign({ csrPem: await makeCsr(), identity: ALICE, ttlSeconds: DEFAULT_MAX_WORKLOAD_TTL_SECONDS + 1 }), 'ttl-too-long');
    assert.match(err.message, /greater than the maximum/);
    assert.equal(await metricValue(registry, 'citadel_server_csr_sign_err_count', { error: 'TTL_ERROR', reason: 'ttl-too-long' }), before + 1);
  });

  it('uses configured default and maximum', async () => {
    const { ca: small } = await openCa({ workloadTtlSeconds: 600, maxWorkloadTtlSeconds: 3600 });
    try {
      const { fromNow } = lifetime((await small.sign({ csrPem: await makeCsr(), identity: ALICE })).certChainPem);
      assert.ok(Math.abs(fromNow - 600_000) < 5_000);
      await refused(small.sign({ csrPem: await makeCsr(), identity: ALICE, ttlSeconds: 3601 }), 'ttl-too-long');
      const status = small.status();
      assert.equal(status.workloadTtlSeconds, 600);
      assert.equal(status.maxWorkloadTtlSeconds, 3600);
    } finally {
      await small.close();
    }
  });

  it('refuses a default above the maximum at open', async () => {
    await refused(openCa({ workloadTtlSeconds: 7200, maxWorkloadTtlSeconds: 3600 }), 'invalid-config');
  });

  it('never lets a leaf outlive the root', async () => {
    const { ca: shortRoot } = await openCa({ rootValidityDays: 1, maxWorkloadTtlSeconds: 10 * 86400 });
    try {
      const r = await shortRoot.sign({ csrPem: await makeCsr(), identity: ALICE, ttlSeconds: 5 * 86400 });
      const [root] = parseCertificates(shortRoot.trustBundlePem());
      assert.equal(r.notAfter.getTime(), root!.notAfter.getTime());
    } finally {
      await shortRoot.close();
    }
  });
});

describe('sign: serial numbers', () => {
  it('are unique and positive over 1000 signatures', async () => {
    const csrPem = await makeCsr();
    const serials = new Set<string>();
    for (let batch = 0; batch < 10; batch++) {
      const results = await Promise.all(Array.from({ length: 100 }, () => ca.sign({ csrPem, identity: ALICE })));
      for (const r of results) {
        assert.match(r.serial, /^[0-9a-f]+$/);
        assert.ok(BigInt(`0x${r.serial}`) > 0n);
        assert.ok(r.serial.length <= 32, '128 bits at most');
        serials.add(r.serial);
      }
    }
    assert.equal(serials.size, 1000);
  });
});

describe('sign: metrics', () => {
  it('counts CSRs received and certificates issued under Istio\'s names', async () => {
    const received = await metricValue(registry, 'citadel_server_csr_count');
    const issued = await metricValue(registry, 'citadel_server_success_cert_issuance_count');
    await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
    await refused(ca.sign({ csrPem: 'nope', identity: ALICE }), 'malformed-csr');
    assert.equal(await metricValue(registry, 'citadel_server_csr_count'), received + 2);
    assert.equal(await metricValue(registry, 'citadel_server_success_cert_issuance_count'), issued + 1);
  });

  it('exports root and signing-chain expiry as Istio\'s gauges', async () => {
    const [root] = parseCertificates(ca.trustBundlePem());
    const expiry = Math.floor(root!.notAfter.getTime() / 1000);
    assert.equal(await metricValue(registry, 'citadel_server_root_cert_expiry_timestamp'), expiry);
    assert.equal(await metricValue(registry, 'citadel_server_cert_chain_expiry_timestamp'), expiry);
    const remaining = await metricValue(registry, 'citadel_server_root_cert_expiry_seconds');
    assert.ok(Math.abs(remaining - (root!.notAfter.getTime() - Date.now()) / 1000) < 60);
    const text = await registry.metrics();
    assert.match(text, /^citadel_server_root_cert_expiry_timestamp \d+$/m);
  });
});
