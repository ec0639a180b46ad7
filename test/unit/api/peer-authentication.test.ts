import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectError, expectErrorPaths, expectValid, warningsOf } from './support.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'istio');

const pa = (spec: string): string => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: pa
  namespace: foo
spec:
${spec}`;

const SELECTOR = '  selector:\n    matchLabels:\n      app: finance\n';

describe('PeerAuthentication: valid', () => {
  it("loads the examples from Istio's reference", () => {
    const { resources } = expectValid(readFileSync(join(FIXTURES, 'valid', 'peer-authentication.yaml'), 'utf8'));
    assert.deepEqual(
      resources.peerAuthentications.map((p) => [p.metadata.namespace, p.metadata.name, p.spec.mtls?.mode]),
      [
        ['istio-system', 'default', 'STRICT'],
        ['foo', 'default', 'PERMISSIVE'],
        ['foo', 'finance', 'STRICT'],
        ['bar', 'inherit', 'UNSET'],
      ],
    );
  });

  it('keys portLevelMtls by port number', () => {
    const p = expectValid(pa(`${SELECTOR}  portLevelMtls:\n    8080:\n      mode: DISABLE\n    "9090":\n      mode: STRICT\n`)).resources
      .peerAuthentications[0]!;
    assert.equal(p.spec.portLevelMtls?.[8080]?.mode, 'DISABLE');
    assert.equal(p.spec.portLevelMtls?.[9090]?.mode, 'STRICT');
    assert.ok(Object.isFrozen(p.spec.portLevelMtls));
  });

  it('an mtls block without a mode leaves it UNSET', () => {
    assert.deepEqual(expectValid(pa('  mtls: {}\n')).resources.peerAuthentications[0]?.spec, { mtls: { mode: 'UNSET' } });
  });
});

describe('PeerAuthentication: near misses', () => {
  it('rejects an unknown mode and names the allowed ones', () => {
    expectError(pa('  mtls:\n    mode: ON\n'), {
      path: 'spec.mtls.mode',
      at: 'mode: ON',
      message: 'expected one of UNSET, DISABLE, PERMISSIVE, STRICT, got "ON"',
    });
    expectError(pa(`${SELECTOR}  portLevelMtls:\n    8080:\n      mode: strict\n`), {
      path: 'spec.portLevelMtls["8080"].mode',
      at: 'mode: strict',
      message: 'got "strict"',
    });
  });

  it('portLevelMtls needs a workload selector', () => {
    expectError(pa('  mtls:\n    mode: STRICT\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n'), {
      path: 'spec.portLevelMtls',
      at: 'portLevelMtls:',
      message: 'mesh- and namespace-wide PeerAuthentications cannot have port-level mTLS',
    });
  });

  it('portLevelMtls needs a selector with at least one label', () => {
    expectError(pa('  selector:\n    matchLabels: {}\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n'), {
      path: 'spec.portLevelMtls',
      at: 'portLevelMtls:',
      message: 'needs a selector with at least one label',
    });
  });

  it('portLevelMtls keys are ports 1-65535', () => {
    const yaml = pa(`${SELECTOR}  portLevelMtls:\n    0:\n      mode: DISABLE\n    70000:\n      mode: DISABLE\n    http:\n      mode: DISABLE\n`);
    expectError(yaml, { path: 'spec.portLevelMtls["0"]', at: '    0:', message: 'invalid port "0": must be a number from 1 to 65535' });
    expectError(yaml, { path: 'spec.portLevelMtls["70000"]', at: '70000:', message: 'invalid port "70000"' });
    expectError(yaml, { path: 'spec.portLevelMtls.http', at: 'http:', message: 'invalid port "http"' });
  });

  it('the same port twice is an error', () => {
    // Integer-like keys come first in a JS object, so the spelled-out one is the one flagged.
    expectError(pa(`${SELECTOR}  portLevelMtls:\n    8080:\n      mode: STRICT\n    "08080":\n      mode: DISABLE\n`), {
      path: 'spec.portLevelMtls["08080"]',
      at: '"08080":',
      message: 'port 8080 is listed twice',
    });
  });

  it('an empty portLevelMtls is an error', () => {
    expectError(pa(`${SELECTOR}  portLevelMtls: {}\n`), { path: 'spec.portLevelMtls', at: 'portLevelMtls: {}', message: 'cannot be empty' });
  });

  it('rejects fields PeerAuthentication does not have', () => {
    expectErrorPaths(pa('  mtls:\n    mode: STRICT\n    clientCertificate: x\n  targetRef:\n    kind: Service\n    name: s\n'), [
      'spec.mtls.clientCertificate',
      'spec.targetRef',
    ]);
  });

  it('warns about a selector without labels', () => {
    const result = expectValid(pa('  selector: {}\n  mtls:\n    mode: STRICT\n'));
    assert.deepEqual(
      warningsOf(result).map((w) => w.path),
      ['spec.selector'],
    );
  });
});
