// `meshward authz check` and `meshward validate` as other tools run them: a
// real process, real files, stdin, exit codes, and stdout holding exactly one
// JSON object.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runMeshward } from '../support/cli.ts';

const EXAMPLES = resolve(import.meta.dirname, '../../examples/authz/policies');
const REQUESTS = resolve(import.meta.dirname, '../../examples/authz/requests');

function meshward(args: string[], stdin?: string) {
  return runMeshward(args, stdin === undefined ? {} : { stdin });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('authz check -o json', () => {
  it('prints exactly one JSON object with the contract fields, exit 0, for a DENY', async () => {
    const r = await meshward(['authz', 'check', '-f', join(EXAMPLES, 'payment.yaml'), '--request', join(REQUESTS, 'reporting-to-payments.json'), '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(
      { decision: out.decision, status: out.status, stage: out.stage, policy: out.policy, principal: out.principal, requestPrincipal: out.requestPrincipal },
      { decision: 'DENY', status: 403, stage: 'authorization', policy: null, principal: 'cluster.local/ns/production/sa/reporting-service', requestPrincipal: null },
    );
    assert.equal(r.stdout.trim().split('\n').length, 1);
  });

  it('ALLOW names the allowing policy', async () => {
    const r = await meshward(['authz', 'check', '-f', EXAMPLES, '--request', join(REQUESTS, 'order-to-payments.json'), '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.decision, 'ALLOW');
    assert.equal(out.status, 200);
    assert.equal(out.stage, null);
    assert.equal(out.policy, 'production/payment-service-policy');
  });

  it('plaintext under STRICT is a reset at peer-authentication', async () => {
    const r = await meshward(['authz', 'check', '-f', EXAMPLES, '--request', join(REQUESTS, 'plaintext-to-payments.json'), '-o', 'json']);
    const out = JSON.parse(r.stdout);
    assert.deepEqual([out.decision, out.status, out.stage, out.principal], ['DENY', 'reset', 'peer-authentication', null]);
  });

  it('reads the request from stdin with --request -', async () => {
    const request = JSON.stringify({
      destination: { namespace: 'production', labels: { app: 'payment-service' }, serviceAccount: 'payment-service', port: 9090 },
      source: { principal: null, namespace: null, ip: '10.0.0.1', mtls: false },
      request: { protocol: 'tcp' },
    });
    const r = await meshward(['authz', 'check', '-f', EXAMPLES, '--request', '-', '-o', 'json'], request);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    // port 9090 is PERMISSIVE; the payment policy's only rule uses HTTP fields, so TCP is denied
    assert.deepEqual([out.decision, out.status, out.stage], ['DENY', 'reset', 'authorization']);
  });

  it('several -f form one configuration; an empty or comment-only file contributes nothing', async () => {
    const empty = join(dir, 'empty.yaml');
    const comments = join(dir, 'comments.yaml');
    await writeFile(empty, '');
    await writeFile(comments, '# nothing here\n---\n# still nothing\n');
    const r = await meshward(['authz', 'check', '-f', empty, '-f', comments, '-f', join(EXAMPLES, 'payment.yaml'), '--request', join(REQUESTS, 'order-to-payments.json'), '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).decision, 'ALLOW');
  });

  it('skips other kinds with a warning on stderr, stdout stays JSON', async () => {
    const file = join(dir, 'mixed.yaml');
    await writeFile(file, `apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\nspec: {}\n`);
    const r = await meshward(['authz', 'check', '-f', file, '--request', join(REQUESTS, 'order-to-payments.json'), '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning/);
    assert.match(r.stderr, /Service/);
    assert.equal(JSON.parse(r.stdout).decision, 'ALLOW');
  });
});

describe('authz check errors exit 2 and name the problem', () => {
  it('an invalid resource: file, document, field and reason; nothing on stdout', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: ok\nspec: {}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: bad\n  namespace: foo\nspec:\n  action: ALLOWED\n`);
    const r = await meshward(['authz', 'check', '-f', file, '--request', join(REQUESTS, 'order-to-payments.json'), '-o', 'json']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /bad\.yaml/);
    assert.match(r.stderr, /document 1/);
    assert.match(r.stderr, /spec\.action/);
    assert.match(r.stderr, /ALLOWED/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('an invalid request: field path and reason', async () => {
    const file = join(dir, 'request.json');
    await writeFile(file, JSON.stringify({ destination: { namespace: 'foo', labels: {}, serviceAccount: 'x', port: 'eighty' }, source: { principal: null, namespace: null, ip: '10.0.0.1', mtls: false }, request: { protocol: 'tcp' } }));
    const r = await meshward(['authz', 'check', '-f', EXAMPLES, '--request', file, '-o', 'json']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /destination\.port/);
    assert.equal(r.stdout, '');
  });

  it('a request that is not JSON', async () => {
    const r = await meshward(['authz', 'check', '-f', EXAMPLES, '--request', '-', '-o', 'json'], '{not json');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not valid JSON/);
  });

  it('a missing file', async () => {
    const r = await meshward(['authz', 'check', '-f', join(dir, 'nope.yaml'), '--request', join(REQUESTS, 'order-to-payments.json'), '-o', 'json']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nope\.yaml/);
  });

  it('a usage error', async () => {
    const r = await meshward(['authz', 'check', '-f', EXAMPLES]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--request/);
  });
});

describe('authz check text output explains the decision', () => {
  it('names the nearest ALLOW rule and the first condition not met', async () => {
    const r = await meshward(['authz', 'check', '-f', EXAMPLES, '--request', join(REQUESTS, 'reporting-to-payments.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^DENY \(HTTP 403\) at authorization/);
    assert.match(r.stdout, /nearest ALLOW rule: production\/payment-service-policy rules\[0\]/);
    assert.match(r.stdout, /first condition not met: source\.principals/);
  });
});

describe('validate', () => {
  it('exits 0 and counts resources for valid files', async () => {
    const r = await meshward(['validate', '-f', EXAMPLES]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /3 resource\(s\) valid/);
  });

  it('prints every error of every file and exits non-zero', async () => {
    const sub = join(dir, 'tree', 'nested');
    await mkdir(sub, { recursive: true });
    await writeFile(join(dir, 'tree', 'a.yaml'), `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\nspec:\n  action: CUSTOM\n  rules:\n  - from:\n    - source:\n        ipBlocks: ["10.0.0.0/33"]\n`);
    await writeFile(join(sub, 'b.yml'), `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: b\nspec:\n  mtls:\n    mode: STRICTEST\n`);
    const r = await meshward(['validate', '-f', join(dir, 'tree')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /a\.yaml:\d+ \(document 0\): error: spec\.provider/);
    assert.match(r.stderr, /a\.yaml:10 \(document 0\): error: spec\.rules\[0\]\.from\[0\]\.source\.ipBlocks\[0\]/);
    assert.match(r.stderr, /b\.yml:7 \(document 0\): error: spec\.mtls\.mode/);
  });
});
