import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorsOf, expectError, expectErrorPaths, expectValid, lineOf, load, warningsOf } from './support.ts';

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'istio');

/** An AuthorizationPolicy named foo/p whose spec is `spec` (already indented by two spaces). */
const policy = (spec: string): string => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
  namespace: foo
spec:
${spec}`;

/** One rule with one source. */
const withSource = (source: string): string =>
  policy(`  rules:
  - from:
    - source:
${source}`);

/** One rule with one operation. */
const withOperation = (operation: string): string =>
  policy(`  rules:
  - to:
    - operation:
${operation}`);

/** One rule with one condition. */
const withCondition = (condition: string): string =>
  policy(`  rules:
  - when:
    - ${condition}`);

describe('AuthorizationPolicy: valid', () => {
  it('loads the payment-service example as typed, frozen data', () => {
    const yaml = readFileSync(join(FIXTURES, 'valid', 'authorization-policy.yaml'), 'utf8').split('\n---\n')[0]!;
    const { resources } = expectValid(yaml);
    assert.equal(resources.authorizationPolicies.length, 1);
    const p = resources.authorizationPolicies[0]!;
    assert.equal(p.kind, 'AuthorizationPolicy');
    assert.equal(p.apiVersion, 'security.istio.io/v1beta1');
    assert.deepEqual(p.metadata, { name: 'payment-service-policy', namespace: 'production', labels: {}, annotations: {} });
    assert.deepEqual(p.spec.selector, { matchLabels: { app: 'payment-service' } });
    assert.equal(p.spec.action, 'ALLOW');
    assert.deepEqual(p.spec.rules?.[0]?.to?.[0]?.operation?.paths, ['/api/v1/payments/*', '/api/v1/refunds/*']);
    assert.deepEqual(p.source, { file: 'policy.yaml', documentIndex: 0, line: 2 });
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.spec.rules) && Object.isFrozen(p.spec.rules?.[0]?.from?.[0]?.source?.principals));
    assert.throws(() => (p.spec.rules as unknown as unknown[]).push({}), TypeError);
  });

  it("loads every example from Istio's reference", () => {
    const result = expectValid(readFileSync(join(FIXTURES, 'valid', 'authorization-policy.yaml'), 'utf8'));
    assert.equal(result.resources.authorizationPolicies.length, 12);
  });

  it('spec: {} is an ALLOW policy with no rules (denies everything)', () => {
    const p = expectValid(policy('  {}\n')).resources.authorizationPolicies[0]!;
    assert.deepEqual(p.spec, {});
  });

  it('a missing or empty spec means the same', () => {
    for (const yaml of [policy(''), policy('').replace('spec:\n', '')]) {
      assert.deepEqual(expectValid(yaml).resources.authorizationPolicies[0]?.spec, {});
    }
  });

  it('rules: [{}] is one rule that matches everything', () => {
    const p = expectValid(policy('  rules:\n  - {}\n')).resources.authorizationPolicies[0]!;
    assert.deepEqual(p.spec.rules, [{}]);
  });

  it('AUDIT needs no rules', () => {
    expectValid(policy('  action: AUDIT\n'));
  });

  it('accepts every supported condition key', () => {
    const keys = [
      ['request.headers[x-user]', 'alice*'],
      ['request.experimental.inline.headers[x-user]', 'alice'],
      ['source.ip', '10.0.0.0/8'],
      ['remote.ip', '2001:db8::1'],
      ['destination.ip', '::ffff:10.0.0.1'],
      ['destination.port', '8080'],
      ['source.namespace', 'prod*'],
      ['source.principal', 'cluster.local/ns/a/sa/b'],
      ['source.serviceAccount', 'a/b'],
      ['request.auth.principal', 'issuer/subject'],
      ['request.auth.audiences', '*.example.com'],
      ['request.auth.presenter', 'client'],
      ['request.auth.claims[groups]', 'admin'],
      ['request.auth.claims[realm_access][roles]', 'admin'],
      ['connection.sni', '*.example.com'],
      ['experimental.envoy.filters.network.mysql_proxy[db.table]', '[update]'],
    ];
    const when = keys.map(([k, v]) => `    - key: ${k}\n      values: ["${v}"]\n`).join('');
    expectValid(policy(`  rules:\n  - when:\n${when}`));
  });
});

describe('AuthorizationPolicy: action and provider', () => {
  it('rejects an unknown action and names the allowed ones', () => {
    expectError(policy('  action: ALLOWED\n'), {
      path: 'spec.action',
      at: 'action: ALLOWED',
      message: 'expected one of ALLOW, DENY, AUDIT, CUSTOM, got "ALLOWED"',
    });
  });

  it('CUSTOM needs provider.name', () => {
    const yaml = policy('  action: CUSTOM\n  rules:\n  - {}\n');
    expectError(yaml, { path: 'spec.provider', at: 'spec:', message: 'action CUSTOM needs provider.name' });
    expectError(policy('  action: CUSTOM\n  provider:\n    name: ""\n  rules:\n  - {}\n'), {
      path: 'spec.provider.name',
      at: 'name: ""',
      message: 'must not be empty',
    });
  });

  it('CUSTOM without rules is never triggered', () => {
    expectError(policy('  action: CUSTOM\n  provider:\n    name: opa\n'), {
      path: 'spec.rules',
      at: 'spec:',
      message: 'never triggered',
    });
  });

  it('provider is only for CUSTOM', () => {
    expectError(policy('  action: DENY\n  provider:\n    name: opa\n  rules:\n  - {}\n'), {
      path: 'spec.provider',
      at: 'provider:',
      message: 'provider is only allowed with action CUSTOM, not DENY',
    });
    expectError(policy('  provider:\n    name: opa\n'), { path: 'spec.provider', at: 'provider:', message: 'not ALLOW' });
  });

  it('DENY without rules never matches', () => {
    expectError(policy('  action: DENY\n'), { path: 'spec.rules', at: 'spec:', message: 'a DENY policy without rules never matches' });
    expectError(policy('  action: DENY\n  rules: []\n'), { path: 'spec.rules', at: 'rules: []', message: 'never matches' });
  });

  it('CUSTOM cannot match on identities the provider never sees', () => {
    const yaml = policy(`  action: CUSTOM
  provider:
    name: opa
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/a/sa/b"]
        ipBlocks: ["10.0.0.0/8"]
    when:
    - key: request.auth.claims[iss]
      values: ["x"]
`);
    expectError(yaml, {
      path: 'spec.rules[0].from[0].source.principals',
      at: 'principals:',
      message: 'principals is not supported with action CUSTOM',
    });
    expectError(yaml, { path: 'spec.rules[0].when[0].key', at: 'key:', message: 'not supported with action CUSTOM' });
    expectErrorPaths(yaml, ['spec.rules[0].from[0].source.principals', 'spec.rules[0].when[0].key']);
  });
});

describe('AuthorizationPolicy: selector and target references', () => {
  const ref = '    kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n';

  it('selector and targetRef are mutually exclusive', () => {
    expectError(policy(`  selector:\n    matchLabels:\n      app: a\n  targetRef:\n${ref}`), {
      path: 'spec.targetRef',
      at: 'targetRef:',
      message: 'cannot be set together with selector',
    });
  });

  it('selector and targetRefs are mutually exclusive', () => {
    expectError(policy(`  selector:\n    matchLabels:\n      app: a\n  targetRefs:\n  - kind: Service\n    name: s\n`), {
      path: 'spec.targetRefs',
      at: 'targetRefs:',
      message: 'cannot be set together with selector',
    });
  });

  it('targetRef and targetRefs are mutually exclusive', () => {
    expectError(policy(`  targetRef:\n${ref}  targetRefs:\n  - kind: Service\n    name: s\n`), {
      path: 'spec.targetRefs',
      at: 'targetRefs:',
      message: 'cannot be set together with targetRef',
    });
  });

  it('targetRef must name a supported kind in its own namespace', () => {
    expectError(policy('  targetRef:\n    kind: Deployment\n    group: apps\n    name: d\n'), {
      path: 'spec.targetRef.kind',
      at: 'kind: Deployment',
      message: 'unsupported target "apps/Deployment"',
    });
    expectError(policy(`  targetRef:\n${ref}    namespace: other\n`), {
      path: 'spec.targetRef.namespace',
      at: 'namespace: other',
      message: 'cross-namespace',
    });
    expectError(policy('  targetRefs:\n  - kind: Service\n'), {
      path: 'spec.targetRefs[0].name',
      at: '- kind: Service',
      message: 'missing required field "name"',
    });
  });

  it('selectors take no wildcards and no empty keys', () => {
    expectError(policy('  selector:\n    matchLabels:\n      app: "pay*"\n'), {
      path: 'spec.selector.matchLabels.app',
      at: 'app: "pay*"',
      message: 'wildcards are not supported in selectors',
    });
    expectError(policy('  selector:\n    matchLabels:\n      "": x\n'), {
      path: 'spec.selector.matchLabels[""]',
      at: '"": x',
      message: 'empty label key',
    });
  });

  it('a selector without labels is a warning, as in Istio', () => {
    const result = expectValid(policy('  selector: {}\n  rules:\n  - {}\n'));
    assert.deepEqual(
      warningsOf(result).map((w) => [w.path, w.message.slice(0, 26)]),
      [['spec.selector', 'selector has no labels: th']],
    );
    assert.deepEqual(result.resources.authorizationPolicies[0]?.spec.selector, { matchLabels: {} });
  });
});

describe('AuthorizationPolicy: rule structure', () => {
  it('empty from, to and when lists are errors', () => {
    const yaml = policy('  rules:\n  - from: []\n    to: []\n    when: []\n');
    expectError(yaml, { path: 'spec.rules[0].from', at: 'from: []', message: 'cannot be empty' });
    expectError(yaml, { path: 'spec.rules[0].to', at: 'to: []', message: 'cannot be empty' });
    expectError(yaml, { path: 'spec.rules[0].when', at: 'when: []', message: 'cannot be empty' });
  });

  it('a from entry needs a source, and a to entry an operation', () => {
    expectError(policy('  rules:\n  - from:\n    - {}\n'), {
      path: 'spec.rules[0].from[0].source',
      at: '- {}',
      message: 'missing required field "source"',
    });
    expectError(policy('  rules:\n  - to:\n    - {}\n'), {
      path: 'spec.rules[0].to[0].operation',
      at: '- {}',
      message: 'missing required field "operation"',
    });
  });

  it('a source or operation with no fields is an error', () => {
    expectError(policy('  rules:\n  - from:\n    - source: {}\n'), {
      path: 'spec.rules[0].from[0].source',
      at: 'source: {}',
      message: 'source must set at least one field',
    });
    expectError(policy('  rules:\n  - to:\n    - operation: {}\n'), {
      path: 'spec.rules[0].to[0].operation',
      at: 'operation: {}',
      message: 'operation must set at least one field',
    });
  });

  it('an empty value list is an error, not "match anything"', () => {
    expectError(withSource('        principals: []\n'), {
      path: 'spec.rules[0].from[0].source.principals',
      at: 'principals: []',
      message: 'cannot be empty',
    });
  });

  it('null where a list belongs is an error', () => {
    expectError(policy('  rules:\n  - from:\n    to:\n    - operation:\n        paths: ["/a"]\n'), {
      path: 'spec.rules[0].from',
      at: '- from:',
      message: 'expected list, got null',
    });
  });

  it('names a misspelled field and suggests the right one, without a second "empty source" error', () => {
    const yaml = withSource('        principles: ["cluster.local/ns/a/sa/b"]\n');
    expectError(yaml, {
      path: 'spec.rules[0].from[0].source.principles',
      at: 'principles:',
      message: 'unknown field "principles" (did you mean "principals"?)',
    });
    expectErrorPaths(yaml, ['spec.rules[0].from[0].source.principles']);
  });

  it('unknown fields at every level are errors', () => {
    expectErrorPaths(
      policy('  acton: DENY\n  rules:\n  - form: []\n    to:\n    - operation:\n        methods: ["GET"]\n        verb: x\n'),
      ['spec.acton', 'spec.rules[0].form', 'spec.rules[0].to[0].operation.verb'],
    );
  });

  it('reports every error, including rules whose siblings have type errors', () => {
    const yaml = policy(`  action: DENY
  selector:
    matchLabels:
      app: a
  targetRef:
    kind: Service
    name: s
  rules:
  - from: []
  - to:
    - operation:
        ports: [80]
        methods: [""]
  - when:
    - key: source.ip
      values: ["10.0.0.0/33"]
`);
    expectErrorPaths(yaml, [
      'spec.targetRef',
      'spec.rules[0].from',
      'spec.rules[1].to[0].operation.ports[0]',
      'spec.rules[1].to[0].operation.methods[0]',
      'spec.rules[2].when[0].values[0]',
    ]);
  });
});

describe('AuthorizationPolicy: sources', () => {
  for (const field of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks']) {
    it(`${field} must be IP addresses or CIDR ranges`, () => {
      const yaml = withSource(`        ${field}: ["10.0.0.0/8", "10.0.0.0/33", "999.1.1.1", "2001:db8::/129", "10.0.0.1%eth0"]\n`);
      const at = `${field}:`;
      expectError(yaml, {
        path: `spec.rules[0].from[0].source.${field}[1]`,
        at,
        message: 'invalid CIDR "10.0.0.0/33": prefix length',
      });
      expectError(yaml, { path: `spec.rules[0].from[0].source.${field}[2]`, at, message: 'invalid IP address "999.1.1.1"' });
      expectError(yaml, { path: `spec.rules[0].from[0].source.${field}[3]`, at, message: 'invalid CIDR "2001:db8::/129"' });
      expectError(yaml, { path: `spec.rules[0].from[0].source.${field}[4]`, at, message: 'invalid IP address "10.0.0.1%eth0"' });
      assert.equal(errorsOf(load(yaml)).length, 4);
    });
  }

  it('points at the line of the bad entry in a block list', () => {
    const yaml = withSource('        ipBlocks:\n        - 10.0.0.0/8\n        - 10.1.0.0/40\n');
    expectError(yaml, { path: 'spec.rules[0].from[0].source.ipBlocks[1]', at: '10.1.0.0/40', message: 'prefix length' });
  });

  it('wildcards in principals and namespaces are only a prefix or a suffix', () => {
    expectError(withSource('        principals: ["cluster.local/ns/*/sa/curl"]\n'), {
      path: 'spec.rules[0].from[0].source.principals[0]',
      at: 'principals:',
      message: 'only allowed as a whole prefix',
    });
    expectError(withSource('        notNamespaces: ["*prod*"]\n'), {
      path: 'spec.rules[0].from[0].source.notNamespaces[0]',
      at: 'notNamespaces:',
      message: 'a prefix or a suffix, not both',
    });
    expectValid(withSource('        principals: ["*", "*/sa/curl", "cluster.local/ns/prod/*"]\n        namespaces: ["prod-*"]\n'));
  });

  it('principals are written without spiffe://', () => {
    expectError(withSource('        principals: ["spiffe://cluster.local/ns/a/sa/b"]\n'), {
      path: 'spec.rules[0].from[0].source.principals[0]',
      at: 'principals:',
      message: 'without "spiffe://"',
    });
  });

  it('values must not be empty strings', () => {
    expectError(withSource('        requestPrincipals: ["issuer/sub", ""]\n'), {
      path: 'spec.rules[0].from[0].source.requestPrincipals[1]',
      at: 'requestPrincipals:',
      message: 'must not be empty',
    });
  });

  it('serviceAccounts are "name" or "namespace/name", without wildcards', () => {
    const yaml = withSource('        serviceAccounts: ["a/b/c", "*", "ns/", "/sa"]\n');
    const at = 'serviceAccounts:';
    expectError(yaml, { path: 'spec.rules[0].from[0].source.serviceAccounts[0]', at, message: 'expected "name" or "namespace/name"' });
    expectError(yaml, { path: 'spec.rules[0].from[0].source.serviceAccounts[1]', at, message: 'wildcards are not allowed' });
    expectError(yaml, { path: 'spec.rules[0].from[0].source.serviceAccounts[2]', at, message: 'empty service account name' });
    expectError(yaml, { path: 'spec.rules[0].from[0].source.serviceAccounts[3]', at, message: 'empty namespace' });
  });

  it('serviceAccounts cannot be combined with principals or namespaces', () => {
    expectError(withSource('        serviceAccounts: ["ns/sa"]\n        namespaces: ["ns"]\n'), {
      path: 'spec.rules[0].from[0].source.serviceAccounts',
      at: 'serviceAccounts:',
      message: 'cannot set serviceAccounts together with namespaces',
    });
    expectError(withSource('        notServiceAccounts: ["ns/sa"]\n        principals: ["td/ns/a/sa/b"]\n'), {
      path: 'spec.rules[0].from[0].source.notServiceAccounts',
      at: 'notServiceAccounts:',
      message: 'together with principals',
    });
  });

  it('at most 16 service accounts', () => {
    const many = Array.from({ length: 17 }, (_, i) => `"ns/sa${i}"`).join(', ');
    expectError(withSource(`        serviceAccounts: [${many}]\n`), {
      path: 'spec.rules[0].from[0].source.serviceAccounts',
      at: 'serviceAccounts:',
      message: 'at most 16',
    });
  });
});

describe('AuthorizationPolicy: operations', () => {
  it('ports are strings holding 0-65535', () => {
    const yaml = withOperation('        ports: ["0", "65535", "65536", "http", "-1"]\n');
    for (const i of [2, 3, 4]) {
      expectError(yaml, { path: `spec.rules[0].to[0].operation.ports[${i}]`, at: 'ports:', message: 'must be a number from 0 to 65535' });
    }
    assert.equal(errorsOf(load(yaml)).length, 3);
  });

  it('a port written as a YAML number is a type error with a hint', () => {
    expectError(withOperation('        notPorts: [8080]\n'), {
      path: 'spec.rules[0].to[0].operation.notPorts[0]',
      at: 'notPorts:',
      message: 'expected string, got integer 8080 (quote it: "8080")',
    });
  });

  it('hosts and methods: "*" only as a whole prefix or suffix', () => {
    expectError(withOperation('        hosts: ["api.*.example.com"]\n'), {
      path: 'spec.rules[0].to[0].operation.hosts[0]',
      at: 'hosts:',
      message: 'only allowed as a whole prefix',
    });
    expectError(withOperation('        notMethods: ["*ET*"]\n'), {
      path: 'spec.rules[0].to[0].operation.notMethods[0]',
      at: 'notMethods:',
      message: 'not both',
    });
  });

  const pathCases: [string, string][] = [
    ['', 'must not be empty'],
    ['/a*b', 'only allowed as a whole prefix'],
    ['*/admin/*', 'not both'],
    ['/{**}/a/{*}', '{**} must be the last operator'],
    ['/{**}/{**}', '{**} must be the last operator'],
    ['/foo/{bar}', 'must be whole path segments'],
    ['/foo{*}', 'must be whole path segments'],
    ['/foo/{x=*}', 'must be whole path segments'],
    ['/a*/{*}', 'not a plain literal'],
    ['/a//{*}', 'empty path segment'],
  ];
  for (const [path, message] of pathCases) {
    it(`rejects path ${JSON.stringify(path)}`, () => {
      expectError(withOperation(`        paths: ["/ok", ${JSON.stringify(path)}]\n`), {
        path: 'spec.rules[0].to[0].operation.paths[1]',
        at: 'paths:',
        message,
      });
    });
  }

  it('accepts path templates that follow the rules', () => {
    expectValid(withOperation('        paths: ["/{*}", "/{**}", "/a/{*}/b/{**}", "/a/{*}/{*}/x.txt/{**}", "/v1/{*}/"]\n'));
  });
});

describe('AuthorizationPolicy: conditions', () => {
  it('needs a key and at least one of values or notValues', () => {
    expectError(withCondition('values: ["a"]\n'), { path: 'spec.rules[0].when[0].key', at: '- values:', message: 'missing required field "key"' });
    expectError(withCondition('key: ""\n      values: ["a"]\n'), { path: 'spec.rules[0].when[0].key', at: 'key: ""', message: 'must not be empty' });
    expectError(withCondition('key: source.ip\n'), {
      path: 'spec.rules[0].when[0]',
      at: '- key: source.ip',
      message: 'at least one of values or notValues must be set for key "source.ip"',
    });
    expectError(withCondition('key: source.ip\n      values: []\n'), {
      path: 'spec.rules[0].when[0].values',
      at: 'values: []',
      message: 'cannot be empty',
    });
  });

  const badKeys: [string, string][] = [
    ['source.user', 'unknown condition key "source.user"'],
    ['request.header[x]', 'unknown condition key'],
    ['request.headers', 'expected request.headers[<header-name>]'],
    ['request.headers[]', 'expected request.headers[<header-name>]'],
    ['request.headers[a][b]', 'expected request.headers[<header-name>]'],
    ['request.auth.claims', 'expected request.auth.claims[<claim>]'],
    ['request.auth.claims[a]b]', 'expected request.auth.claims[<claim>]'],
    ['request.auth.claims[a][]', 'expected request.auth.claims[<claim>]'],
    ['experimental.envoy.filters.network', 'expected experimental.envoy.filters.<filter>[<key>]'],
    ['destination.labels[app]', 'replaced by the workload selector'],
    ['destination.namespace', "replaced by the policy's metadata.namespace"],
    ['destination.user', 'only supported in v1alpha1'],
  ];
  for (const [key, message] of badKeys) {
    it(`rejects key ${key}`, () => {
      expectError(withCondition(`key: "${key}"\n      values: ["x"]\n`), { path: 'spec.rules[0].when[0].key', at: 'key:', message });
    });
  }

  it('checks IP values for IP keys', () => {
    const yaml = withCondition('key: destination.ip\n      values: ["10.0.0.1"]\n      notValues: ["10.0.0.0/33"]\n');
    expectError(yaml, { path: 'spec.rules[0].when[0].notValues[0]', at: 'notValues:', message: 'invalid CIDR "10.0.0.0/33"' });
    expectError(withCondition('key: remote.ip\n      values: ["1.2.3"]\n'), {
      path: 'spec.rules[0].when[0].values[0]',
      at: 'values:',
      message: 'invalid IP address "1.2.3"',
    });
  });

  it('checks ports for destination.port', () => {
    expectError(withCondition('key: destination.port\n      values: ["80", "http"]\n'), {
      path: 'spec.rules[0].when[0].values[1]',
      at: 'values:',
      message: 'invalid port "http"',
    });
  });

  it('checks service accounts, principals and match values by key', () => {
    expectError(withCondition('key: source.serviceAccount\n      values: ["ns/*"]\n'), {
      path: 'spec.rules[0].when[0].values[0]',
      at: 'values:',
      message: 'wildcards are not allowed',
    });
    expectError(withCondition('key: source.principal\n      notValues: ["spiffe://td/ns/a/sa/b"]\n'), {
      path: 'spec.rules[0].when[0].notValues[0]',
      at: 'notValues:',
      message: 'without "spiffe://"',
    });
    expectError(withCondition('key: request.headers[x-env]\n      values: ["pr*d"]\n'), {
      path: 'spec.rules[0].when[0].values[0]',
      at: 'values:',
      message: 'only allowed as a whole prefix',
    });
    expectError(withCondition('key: connection.sni\n      values: [""]\n'), {
      path: 'spec.rules[0].when[0].values[0]',
      at: 'values:',
      message: 'must not be empty',
    });
  });
});

describe('AuthorizationPolicy: dry-run and warnings', () => {
  const dryRun = (value: string, spec: string): string =>
    policy(spec).replace('  namespace: foo\n', `  namespace: foo\n  annotations:\n    istio.io/dry-run: ${value}\n`);

  it('istio.io/dry-run only works with ALLOW or DENY', () => {
    expectError(dryRun('"true"', '  action: AUDIT\n'), {
      path: 'metadata.annotations["istio.io/dry-run"]',
      at: 'istio.io/dry-run',
      message: 'only supports action ALLOW or DENY, not AUDIT',
    });
  });

  it('istio.io/dry-run is "true" or "false"', () => {
    expectError(dryRun('"yes"', '  rules:\n  - {}\n'), {
      path: 'metadata.annotations["istio.io/dry-run"]',
      at: 'istio.io/dry-run',
      message: 'invalid istio.io/dry-run value "yes"',
    });
    expectValid(dryRun('"false"', '  rules:\n  - {}\n'));
  });

  it('warns about DENY rules made only of HTTP attributes, and still loads the policy', () => {
    const yaml = policy('  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: ["/admin"]\n  - to:\n    - operation:\n        ports: ["8080"]\n');
    const result = expectValid(yaml);
    assert.deepEqual(
      warningsOf(result).map((w) => [w.path, w.line]),
      [['spec.rules[0]', lineOf(yaml, '  - to:')]],
    );
    assert.match(warningsOf(result)[0]!.message, /denies all traffic to TCP ports/);
    assert.equal(result.resources.authorizationPolicies.length, 1);
  });
});
