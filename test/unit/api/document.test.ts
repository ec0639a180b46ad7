import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { errorsOf, expectError, expectErrorPaths, expectValid, lineOf, load, resourceCount, warningsOf } from './support.ts';

const PA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: foo
spec:
  mtls:
    mode: STRICT
`;

describe('resource envelope', () => {
  it('a missing namespace means "default"', () => {
    const pa = expectValid(PA.replace('  namespace: foo\n', '')).resources.peerAuthentications[0]!;
    assert.equal(pa.metadata.namespace, 'default');
  });

  it('metadata.name is required', () => {
    expectError(PA.replace('  name: default\n', ''), {
      path: 'metadata.name',
      at: 'metadata:',
      message: 'missing required field "name"',
    });
  });

  it('metadata is required', () => {
    expectError(PA.replace('metadata:\n  name: default\n  namespace: foo\n', ''), {
      path: 'metadata',
      at: 1,
      message: 'missing required field "metadata"',
    });
  });

  it('names and namespaces are RFC 1123 names', () => {
    expectError(PA.replace('name: default', 'name: Bad_Name'), { path: 'metadata.name', at: 'name: Bad_Name', message: 'invalid name "Bad_Name"' });
    expectError(PA.replace('namespace: foo', 'namespace: Foo.bar'), {
      path: 'metadata.namespace',
      at: 'namespace: Foo.bar',
      message: 'invalid namespace "Foo.bar"',
    });
    expectValid(PA.replace('name: default', 'name: a.b-c'));
  });

  it('keeps labels and annotations, which must be string maps', () => {
    const yaml = PA.replace('  namespace: foo\n', '  namespace: foo\n  labels:\n    app: x\n  annotations:\n    note: "hi"\n');
    assert.deepEqual(expectValid(yaml).resources.peerAuthentications[0]?.metadata, {
      name: 'default',
      namespace: 'foo',
      labels: { app: 'x' },
      annotations: { note: 'hi' },
    });
    expectError(yaml.replace('app: x', 'version: 1'), {
      path: 'metadata.labels.version',
      at: 'version: 1',
      message: 'expected string, got integer 1 (quote it: "1")',
    });
    expectError(yaml.replace('app: x', 'app: [x]'), { path: 'metadata.labels.app', at: 'app: [x]', message: 'expected string, got list' });
    expectError(yaml.replace('app: x', '"bad key!": x'), {
      path: 'metadata.labels["bad key!"]',
      at: 'bad key!',
      message: 'invalid label key',
    });
  });

  it('null labels and annotations are absent, as in Kubernetes', () => {
    const pa = expectValid(PA.replace('  namespace: foo\n', '  namespace: foo\n  labels:\n  annotations:\n')).resources.peerAuthentications[0]!;
    assert.deepEqual([pa.metadata.labels, pa.metadata.annotations], [{}, {}]);
  });

  it('accepts the metadata kubectl leaves behind', () => {
    const extra =
      '  uid: 6b9c1c8e\n  resourceVersion: "123"\n  generation: 4\n  creationTimestamp: "2024-05-01T10:00:00Z"\n' +
      '  managedFields:\n  - manager: kubectl\n    operation: Apply\n  finalizers: []\n';
    const pa = expectValid(PA.replace('  namespace: foo\n', `  namespace: foo\n${extra}`)).resources.peerAuthentications[0]!;
    assert.deepEqual(Object.keys(pa.metadata), ['name', 'namespace', 'labels', 'annotations']);
  });

  it('ignores status, rejects other top-level fields', () => {
    expectValid(`${PA}status:\n  validationMessages: []\n`);
    expectError(`${PA}rules: []\n`, { path: 'rules', at: 'rules: []', message: 'unknown field "rules"' });
    expectError(PA.replace('spec:', 'sepc:'), { path: 'sepc', at: 'sepc:', message: 'did you mean "spec"?' });
  });

  it('needs apiVersion and kind', () => {
    expectErrorPaths('metadata:\n  name: x\n', ['apiVersion', 'kind']);
    expectError(PA.replace('kind: PeerAuthentication', 'kind: 5'), { path: 'kind', at: 'kind: 5', message: 'expected string, got integer 5' });
  });

  it('a document that is not a mapping is an error', () => {
    const result = load('- apiVersion: v1\n  kind: Service\n');
    assert.deepEqual(
      errorsOf(result).map((d) => [d.path, d.line, d.documentIndex]),
      [[undefined, 1, 0]],
    );
    assert.match(errorsOf(result)[0]!.message, /got list/);
    assert.match(errorsOf(load('just a string\n'))[0]!.message, /got string "just a string"/);
  });

  it('an unsupported version of a kind meshward reads is an error, not a skip', () => {
    expectError(PA.replace('security.istio.io/v1', 'security.istio.io/v1alpha1'), {
      path: 'apiVersion',
      at: 'apiVersion:',
      message: 'PeerAuthentication must have apiVersion security.istio.io/v1, security.istio.io/v1beta1, got "security.istio.io/v1alpha1"',
    });
    expectError(PA.replace('security.istio.io/v1', 'networking.istio.io/v1'), { path: 'apiVersion', at: 'apiVersion:', message: 'must have apiVersion' });
  });

  it('a misspelled kind in an Istio group is an error', () => {
    expectError(PA.replace('kind: PeerAuthentication', 'kind: PeerAuthentications'), {
      path: 'kind',
      at: 'kind:',
      message: 'unknown kind "PeerAuthentications" in security.istio.io (did you mean "PeerAuthentication"?)',
    });
    expectError(PA.replace('security.istio.io/v1', 'networking.istio.io/v1').replace('kind: PeerAuthentication', 'kind: destinationrule'), {
      path: 'kind',
      at: 'kind:',
      message: 'did you mean "DestinationRule"?',
    });
  });

  it('skips other kinds with a warning', () => {
    const yaml = `apiVersion: v1
kind: Service
metadata:
  name: httpbin
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: linkerd
---
${PA}`;
    const result = load(yaml);
    assert.deepEqual(errorsOf(result), []);
    assert.deepEqual(
      warningsOf(result).map((w) => [w.documentIndex, w.line, w.message.split(':')[0]]),
      [
        [0, 1, 'skipped v1 Service'],
        [1, lineOf(yaml, 'networking.istio.io/v1'), 'skipped networking.istio.io/v1 VirtualService'],
        [2, lineOf(yaml, 'policy.linkerd.io'), 'skipped policy.linkerd.io/v1alpha1 AuthorizationPolicy'],
      ],
    );
    assert.equal(resourceCount(result), 1);
  });

  it('reads the items of a List', () => {
    const yaml = `apiVersion: v1
kind: List
items:
- apiVersion: security.istio.io/v1
  kind: PeerAuthentication
  metadata:
    name: one
- apiVersion: security.istio.io/v1
  kind: PeerAuthentication
  metadata:
    name: two
  spec:
    mtls:
      mode: STRICTER
`;
    const result = load(yaml);
    assert.deepEqual(
      errorsOf(result).map((d) => [d.path, d.line]),
      [['items[1].spec.mtls.mode', lineOf(yaml, 'mode: STRICTER')]],
    );
    assert.deepEqual(result.resources.peerAuthentications.map((p) => [p.metadata.name, p.source.line]), [['one', 4]]);
  });

  it('istio.io/dry-run is refused outside AuthorizationPolicy', () => {
    expectError(PA.replace('  namespace: foo\n', '  namespace: foo\n  annotations:\n    istio.io/dry-run: "true"\n'), {
      path: 'metadata.annotations["istio.io/dry-run"]',
      at: 'istio.io/dry-run',
      message: 'only supported on AuthorizationPolicy',
    });
  });
});
