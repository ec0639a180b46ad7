import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectError, expectErrorPaths, expectValid, warningsOf } from './support.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'istio');

const dr = (spec: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dr
  namespace: foo
spec:
  host: reviews.foo.svc.cluster.local
${spec}`;

/** A DestinationRule whose top-level tls block holds `fields` (indented by six spaces). */
const tls = (fields: string): string => dr(`  trafficPolicy:\n    tls:\n${fields}`);

describe('DestinationRule: valid', () => {
  it("loads the examples from Istio's reference", () => {
    const { resources } = expectValid(readFileSync(join(FIXTURES, 'valid', 'destination-rule.yaml'), 'utf8'));
    assert.equal(resources.destinationRules.length, 7);
    const [ratings, ports, mtls] = resources.destinationRules;
    assert.deepEqual(ratings?.spec.subsets?.[0]?.labels, { version: 'v3' });
    assert.deepEqual(ratings?.spec.trafficPolicy?.loadBalancer, { simple: 'LEAST_REQUEST' });
    assert.deepEqual(ports?.spec.trafficPolicy?.portLevelSettings?.map((p) => p.port?.number), [80, 9080]);
    assert.equal(mtls?.spec.trafficPolicy?.tls?.mode, 'MUTUAL');
    assert.equal(mtls?.apiVersion, 'networking.istio.io/v1alpha3');
  });

  it('keeps the opaque settings as they were written', () => {
    const rule = expectValid(dr('  trafficPolicy:\n    outlierDetection:\n      consecutive5xxErrors: 7\n      interval: 5m\n')).resources
      .destinationRules[0]!;
    assert.deepEqual(rule.spec.trafficPolicy?.outlierDetection, { consecutive5xxErrors: 7, interval: '5m' });
    assert.ok(Object.isFrozen(rule.spec.trafficPolicy?.outlierDetection));
  });
});

describe('DestinationRule: host', () => {
  it('is required', () => {
    expectError(dr('').replace('  host: reviews.foo.svc.cluster.local\n', '  exportTo: ["."]\n'), {
      path: 'spec.host',
      at: 'spec:',
      message: 'missing required field "host"',
    });
  });

  it('a DestinationRule without a spec has no host', () => {
    expectError(dr('').replace(/spec:\n.*\n/, ''), { path: 'spec', at: 1, message: 'missing required field "spec"' });
  });

  it('is a host name whose first label may be a wildcard', () => {
    expectValid(dr('').replace('reviews.foo.svc.cluster.local', '"*.example.com"'));
    expectValid(dr('').replace('reviews.foo.svc.cluster.local', 'reviews'));
    expectError(dr('').replace('reviews.foo.svc.cluster.local', 'reviews_v2.foo'), {
      path: 'spec.host',
      at: 'host:',
      message: 'invalid host "reviews_v2.foo": label "reviews_v2" is not valid',
    });
    expectError(dr('').replace('reviews.foo.svc.cluster.local', '"foo.*.com"'), { path: 'spec.host', at: 'host:', message: 'label "*" is not valid' });
    expectError(dr('').replace('reviews.foo.svc.cluster.local', '10.0.0.1'), { path: 'spec.host', at: 'host:', message: 'cannot be all-numeric' });
  });
});

describe('DestinationRule: client TLS', () => {
  it('rejects an unknown mode and names the allowed ones', () => {
    expectError(tls('      mode: STRICT\n'), {
      path: 'spec.trafficPolicy.tls.mode',
      at: 'mode: STRICT',
      message: 'expected one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, OPTIONAL_MUTUAL, got "STRICT"',
    });
  });

  it('MUTUAL without credentialName needs a client certificate and key', () => {
    const yaml = tls('      mode: MUTUAL\n      caCertificates: /etc/ca.pem\n');
    expectError(yaml, { path: 'spec.trafficPolicy.tls.clientCertificate', at: 'tls:', message: 'mode MUTUAL needs clientCertificate' });
    expectError(yaml, { path: 'spec.trafficPolicy.tls.privateKey', at: 'tls:', message: 'mode MUTUAL needs privateKey' });
  });

  it('credentialName replaces certificate files', () => {
    expectError(tls('      mode: MUTUAL\n      credentialName: cred\n      clientCertificate: /etc/cert.pem\n'), {
      path: 'spec.trafficPolicy.tls.clientCertificate',
      at: 'clientCertificate:',
      message: 'cannot be set together with credentialName',
    });
    expectError(tls('      mode: SIMPLE\n      credentialName: cred\n      caCrl: /etc/crl.pem\n'), {
      path: 'spec.trafficPolicy.tls.caCrl',
      at: 'caCrl:',
      message: 'cannot be set together with credentialName',
    });
  });

  it('insecureSkipVerify excludes verification settings', () => {
    expectError(tls('      mode: SIMPLE\n      insecureSkipVerify: true\n      subjectAltNames: ["a"]\n'), {
      path: 'spec.trafficPolicy.tls.subjectAltNames',
      at: 'subjectAltNames:',
      message: 'cannot be set when insecureSkipVerify is true',
    });
    expectValid(tls('      mode: SIMPLE\n      insecureSkipVerify: true\n'));
  });

  it('ISTIO_MUTUAL ignores certificate fields: a warning, as Istio only documents it', () => {
    const result = expectValid(tls('      mode: ISTIO_MUTUAL\n      clientCertificate: /etc/cert.pem\n      sni: a.example\n'));
    assert.deepEqual(
      warningsOf(result).map((w) => [w.path, w.message.slice(0, 30)]),
      [['spec.trafficPolicy.tls.clientCertificate', 'ignored with mode ISTIO_MUTUAL']],
    );
  });

  it('rejects unknown TLS fields', () => {
    expectError(tls('      mode: SIMPLE\n      sniHost: a\n'), { path: 'spec.trafficPolicy.tls.sniHost', at: 'sniHost:', message: 'unknown field "sniHost"' });
  });
});

describe('DestinationRule: traffic policies', () => {
  it('portLevelSettings need a port 1-65535', () => {
    const yaml = dr(`  trafficPolicy:
    portLevelSettings:
    - tls:
        mode: DISABLE
    - port:
        number: 0
      tls:
        mode: DISABLE
    - port:
        number: 70000
      tls:
        mode: DISABLE
`);
    expectError(yaml, { path: 'spec.trafficPolicy.portLevelSettings[0].port', at: '- tls:', message: 'missing required field "port"' });
    expectError(yaml, { path: 'spec.trafficPolicy.portLevelSettings[1].port.number', at: 'number: 0', message: 'invalid port 0' });
    expectError(yaml, { path: 'spec.trafficPolicy.portLevelSettings[2].port.number', at: 'number: 70000', message: 'invalid port 70000' });
  });

  it('a port listed twice in portLevelSettings is an error', () => {
    const yaml = dr(`  trafficPolicy:
    portLevelSettings:
    - port:
        number: 9080
      tls:
        mode: DISABLE
    - port:
        number: 9080
      tls:
        mode: ISTIO_MUTUAL
`);
    expectError(yaml, {
      path: 'spec.trafficPolicy.portLevelSettings[1].port.number',
      at: 'number: 9080',
      nth: 2,
      message: 'port 9080 already has settings in portLevelSettings[0]',
    });
  });

  it('a port setting must set something besides the port', () => {
    expectError(dr('  trafficPolicy:\n    portLevelSettings:\n    - port:\n        number: 80\n'), {
      path: 'spec.trafficPolicy.portLevelSettings[0]',
      at: '- port:',
      message: 'must set at least one of loadBalancer, connectionPool, outlierDetection, tls',
    });
  });

  it('a traffic policy must set something', () => {
    expectError(dr('  trafficPolicy: {}\n'), { path: 'spec.trafficPolicy', at: 'trafficPolicy:', message: 'traffic policy must set at least one of' });
  });

  it('tunnel and proxyProtocol do not go together', () => {
    expectError(dr('  trafficPolicy:\n    tunnel:\n      targetHost: a\n      targetPort: 1\n    proxyProtocol:\n      version: V1\n'), {
      path: 'spec.trafficPolicy.proxyProtocol',
      at: 'proxyProtocol:',
      message: 'cannot be set together with tunnel',
    });
  });

  it('h2UpgradePolicy is one of Istio\'s values, at the top and per port', () => {
    expectError(dr('  trafficPolicy:\n    connectionPool:\n      http:\n        h2UpgradePolicy: UPGRAED\n'), {
      path: 'spec.trafficPolicy.connectionPool.http.h2UpgradePolicy',
      at: 'h2UpgradePolicy:',
      message: 'UPGRADE',
    });
    expectError(dr('  trafficPolicy:\n    portLevelSettings:\n    - port:\n        number: 80\n      connectionPool:\n        http:\n          h2UpgradePolicy: yes\n'), {
      path: 'spec.trafficPolicy.portLevelSettings[0].connectionPool.http.h2UpgradePolicy',
      at: 'h2UpgradePolicy:',
      message: 'DO_NOT_UPGRADE',
    });
  });

  it('opaque settings must still be objects', () => {
    expectError(dr('  trafficPolicy:\n    loadBalancer: ROUND_ROBIN\n'), {
      path: 'spec.trafficPolicy.loadBalancer',
      at: 'loadBalancer:',
      message: 'expected object, got string "ROUND_ROBIN"',
    });
  });
});

describe('DestinationRule: subsets', () => {
  it('subset names are unique RFC 1123 labels', () => {
    const yaml = dr('  subsets:\n  - name: v1\n    labels:\n      version: v1\n  - name: v1\n  - name: Version_2\n  - labels:\n      version: v3\n');
    expectError(yaml, { path: 'spec.subsets[1].name', at: '- name: v1', nth: 2, message: 'duplicate subset name "v1" (also subsets[0])' });
    expectError(yaml, { path: 'spec.subsets[2].name', at: 'Version_2', message: 'invalid subset name "Version_2"' });
    expectError(yaml, { path: 'spec.subsets[3].name', at: '- labels:', message: 'missing required field "name"' });
  });

  it('subset labels are Kubernetes labels', () => {
    expectError(dr('  subsets:\n  - name: v1\n    labels:\n      version: "not valid!"\n'), {
      path: 'spec.subsets[0].labels.version',
      at: 'version:',
      message: 'invalid label value "not valid!"',
    });
  });

  it('checks TLS inside a subset traffic policy', () => {
    expectError(dr('  subsets:\n  - name: v1\n    trafficPolicy:\n      tls:\n        mode: MUTUAL\n        credentialName: c\n        privateKey: k\n'), {
      path: 'spec.subsets[0].trafficPolicy.tls.privateKey',
      at: 'privateKey:',
      message: 'cannot be set together with credentialName',
    });
  });
});

describe('DestinationRule: exportTo', () => {
  it('accepts ".", "*" and namespace names', () => {
    expectValid(dr('  exportTo: [".", "bar"]\n'));
    expectValid(dr('  exportTo: ["*"]\n'));
  });

  it('rejects "~", which only a ServiceEntry may use', () => {
    expectError(dr('  exportTo: ["~"]\n'), { path: 'spec.exportTo[0]', at: 'exportTo:', message: 'only allowed on a ServiceEntry' });
  });

  it('rejects names that are not namespaces', () => {
    expectError(dr('  exportTo: ["not a namespace"]\n'), { path: 'spec.exportTo[0]', at: 'exportTo:', message: 'invalid exportTo entry "not a namespace"' });
  });

  it('rejects duplicates, including "." and its own namespace', () => {
    expectError(dr('  exportTo: ["foo", "."]\n'), { path: 'spec.exportTo[1]', at: 'exportTo:', message: '"." is this namespace (foo)' });
    expectError(dr('  exportTo: [".", "foo"]\n'), { path: 'spec.exportTo[1]', at: 'exportTo:', message: 'duplicate exportTo entry "foo"' });
    expectError(dr('  exportTo: ["bar", "bar"]\n'), { path: 'spec.exportTo[1]', at: 'exportTo:', message: 'duplicate exportTo entry "bar"' });
  });

  it('"*" stands alone', () => {
    expectError(dr('  exportTo: ["*", "bar"]\n'), { path: 'spec.exportTo', at: 'exportTo:', message: 'cannot mix "*"' });
  });

  it('with a workloadSelector, only its own namespace', () => {
    const selector = '  workloadSelector:\n    matchLabels:\n      app: ratings\n';
    expectError(dr(`${selector}  exportTo: ["*"]\n`), { path: 'spec.exportTo', at: 'exportTo:', message: 'can only be exported to its own namespace' });
    expectValid(dr(`${selector}  exportTo: ["foo"]\n`));
  });

  it('reports several problems at once', () => {
    expectErrorPaths(dr('  exportTo: ["~", "a b"]\n  subsets:\n  - name: x\n  - name: x\n'), [
      'spec.exportTo[0]',
      'spec.exportTo[1]',
      'spec.subsets[1].name',
    ]);
  });
});
