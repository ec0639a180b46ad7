// The agent accepts only the CA server's own identity: exactly one URI SAN,
// equal to the expected SPIFFE ID. A DNS name or another workload's SVID
// from the same CA is not the CA.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { checkCaIdentity } from '../../../../src/identity/agent/ca-client.ts';
import { createLeaf, createRootCa } from '../../../support/pki.ts';

const CA_ID = 'spiffe://cluster.local/ns/meshward-system/sa/meshward-control';

async function peer(uris: string[], dnsNames: string[] = []): Promise<PeerCertificate> {
  const root = await createRootCa();
  const leaf = await createLeaf(root, { uris, dnsNames });
  return { raw: leaf.cert.raw } as PeerCertificate;
}

describe('checkCaIdentity', () => {
  it('accepts the expected SPIFFE ID', async () => {
    assert.equal(checkCaIdentity(await peer([CA_ID]), CA_ID), undefined);
  });

  it('refuses another workload, two URIs, or none', async () => {
    assert.match(checkCaIdentity(await peer(['spiffe://cluster.local/ns/shop/sa/web']), CA_ID)!.message, /expected/);
    assert.ok(checkCaIdentity(await peer([CA_ID, 'spiffe://cluster.local/ns/x/sa/y']), CA_ID));
    assert.match(checkCaIdentity(await peer([], ['meshward-ca']), CA_ID)!.message, /\(none\)/);
  });

  it('refuses what it cannot parse', () => {
    assert.ok(checkCaIdentity({ raw: Buffer.from('junk') } as PeerCertificate, CA_ID));
  });
});
