// AuthorizationPolicy semantics as near-miss pairs: for each rule of Istio's
// model, one request that is allowed and a twin, different in one field,
// that is denied.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { engineFrom, decide, expectDecision, type RequestOverrides } from '../../../support/engine.ts';
import { loadResourcesFromText } from '../../../../src/api/load.ts';

const HEAD = (name: string, action = 'ALLOW', ns = 'foo') => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  action: ${action}
`;

const allowPolicy = (rules: string) => `${HEAD('p')}  selector:
    matchLabels:
      app: httpbin
  rules:
${rules}`;

interface Pair {
  name: string;
  yaml: string;
  allowed: RequestOverrides;
  denied: RequestOverrides;
  deniedStatus?: 403 | 'reset';
  mesh?: Record<string, unknown>;
}

const pairs: Pair[] = [
  // --- sources -----------------------------------------------------------------------------
  {
    name: 'principals: exact',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/bar/sa/sleep"]`),
    allowed: {},
    denied: { principal: 'cluster.local/ns/bar/sa/other' },
  },
  {
    name: 'principals: need mTLS (plaintext has no identity whatever it claims)',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/bar/sa/sleep"]`),
    allowed: {},
    denied: { mtls: false },
  },
  {
    name: 'principals: "*" means any authenticated peer',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["*"]`),
    allowed: { principal: 'cluster.local/ns/x/sa/y' },
    denied: { mtls: false, principal: null },
  },
  {
    name: 'principals: prefix wildcard',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/bar/*"]`),
    allowed: { principal: 'cluster.local/ns/bar/sa/any' },
    denied: { principal: 'cluster.local/ns/baz/sa/any' },
  },
  {
    name: 'principals: suffix wildcard',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["*/sa/sleep"]`),
    allowed: { principal: 'cluster.local/ns/bar/sa/sleep' },
    denied: { principal: 'cluster.local/ns/bar/sa/sleepy' },
  },
  {
    name: 'notPrincipals',
    yaml: allowPolicy(`  - from:
    - source:
        notPrincipals: ["cluster.local/ns/bar/sa/evil"]`),
    allowed: {},
    denied: { principal: 'cluster.local/ns/bar/sa/evil' },
  },
  {
    name: 'principals: cluster.local stands for the local trust domain and its aliases',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/bar/sa/sleep"]`),
    mesh: { trustDomain: 'td-new', trustDomainAliases: ['td-old'] },
    allowed: { principal: 'td-old/ns/bar/sa/sleep' },
    denied: { principal: 'td-other/ns/bar/sa/sleep' },
  },
  {
    name: 'namespaces: derived from the peer identity',
    yaml: allowPolicy(`  - from:
    - source:
        namespaces: ["bar"]`),
    allowed: { principal: 'cluster.local/ns/bar/sa/x' },
    denied: { principal: 'cluster.local/ns/barn/sa/x' },
  },
  {
    name: 'namespaces: plaintext claims of a namespace do not count',
    yaml: allowPolicy(`  - from:
    - source:
        namespaces: ["bar"]`),
    allowed: {},
    denied: { mtls: false, clientNamespace: 'bar' },
  },
  {
    name: 'namespaces: prefix wildcard',
    yaml: allowPolicy(`  - from:
    - source:
        namespaces: ["team-*"]`),
    allowed: { principal: 'cluster.local/ns/team-a/sa/x' },
    denied: { principal: 'cluster.local/ns/other/sa/x' },
  },
  {
    name: 'notNamespaces',
    yaml: allowPolicy(`  - from:
    - source:
        notNamespaces: ["untrusted"]`),
    allowed: {},
    denied: { principal: 'cluster.local/ns/untrusted/sa/x' },
  },
  {
    name: 'ipBlocks: direct peer address',
    yaml: allowPolicy(`  - from:
    - source:
        ipBlocks: ["10.0.0.0/16"]`),
    allowed: { ip: '10.0.2.7' },
    denied: { ip: '10.1.2.7' },
  },
  {
    name: 'ipBlocks ignore the forwarded client address',
    yaml: allowPolicy(`  - from:
    - source:
        ipBlocks: ["203.0.113.0/24"]`),
    allowed: { ip: '203.0.113.9', remoteIp: '10.9.9.9' },
    denied: { ip: '10.0.2.7', remoteIp: '203.0.113.9' },
  },
  {
    name: 'remoteIpBlocks: original client address',
    yaml: allowPolicy(`  - from:
    - source:
        remoteIpBlocks: ["198.51.100.0/24"]`),
    allowed: { remoteIp: '198.51.100.23' },
    denied: { remoteIp: '198.51.101.23' },
  },
  {
    name: 'notIpBlocks',
    yaml: allowPolicy(`  - from:
    - source:
        notIpBlocks: ["10.0.2.0/24"]`),
    allowed: { ip: '10.0.3.1' },
    denied: { ip: '10.0.2.1' },
  },
  {
    name: 'ipBlocks: IPv6',
    yaml: allowPolicy(`  - from:
    - source:
        ipBlocks: ["2001:db8::/32"]`),
    allowed: { ip: '2001:db8::1' },
    denied: { ip: '2001:db9::1' },
  },
  {
    name: 'serviceAccounts: namespace/name',
    yaml: allowPolicy(`  - from:
    - source:
        serviceAccounts: ["bar/sleep"]`),
    allowed: {},
    denied: { principal: 'cluster.local/ns/bar/sa/sleep2' },
  },
  // --- operations ----------------------------------------------------------------------------
  {
    name: 'methods',
    yaml: allowPolicy(`  - to:
    - operation:
        methods: ["GET", "HEAD"]`),
    allowed: { method: 'HEAD' },
    denied: { method: 'POST' },
  },
  {
    name: 'methods are case-sensitive',
    yaml: allowPolicy(`  - to:
    - operation:
        methods: ["GET"]`),
    allowed: { method: 'GET' },
    denied: { method: 'get' },
  },
  {
    name: 'notMethods',
    yaml: allowPolicy(`  - to:
    - operation:
        notMethods: ["DELETE"]`),
    allowed: { method: 'GET' },
    denied: { method: 'DELETE' },
  },
  {
    name: 'paths: exact ignores the query',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["/ip"]`),
    allowed: { path: '/ip?x=1' },
    denied: { path: '/ip/' },
  },
  {
    name: 'paths: prefix',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["/api/v1/payments/*"]`),
    allowed: { path: '/api/v1/payments/42' },
    denied: { path: '/api/v1/paymentsX/42' },
  },
  {
    name: 'paths: suffix',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["*/status"]`),
    allowed: { path: '/a/b/status' },
    denied: { path: '/a/b/status/x' },
  },
  {
    name: 'paths: "*" matches any path',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["*"]`),
    allowed: { path: '/anything' },
    denied: { path: '/x', method: 'GET', principal: null, mtls: false, tcp: true },
    deniedStatus: 'reset',
  },
  {
    name: 'paths: {*} is one segment',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["/foo/{*}/bar"]`),
    allowed: { path: '/foo/x/bar' },
    denied: { path: '/foo/x/y/bar' },
  },
  {
    name: 'paths: {**} is any number of segments',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["/foo/{**}"]`),
    allowed: { path: '/foo/x/y/z' },
    denied: { path: '/food/x' },
  },
  {
    name: 'paths: {*} at the end',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["/users/{*}"]`),
    allowed: { path: '/users/alice' },
    denied: { path: '/users/alice/keys' },
  },
  {
    name: 'notPaths',
    yaml: allowPolicy(`  - to:
    - operation:
        notPaths: ["/admin/*"]`),
    allowed: { path: '/public/x' },
    denied: { path: '/admin/x' },
  },
  {
    name: 'hosts: case-insensitive',
    yaml: allowPolicy(`  - to:
    - operation:
        hosts: ["HttpBin.Foo.svc.cluster.local"]`),
    allowed: { host: 'httpbin.foo.SVC.cluster.local' },
    denied: { host: 'httpbin.bar.svc.cluster.local' },
  },
  {
    name: 'hosts: exact host does not match with a port',
    yaml: allowPolicy(`  - to:
    - operation:
        hosts: ["example.com"]`),
    allowed: { host: 'example.com' },
    denied: { host: 'example.com:8080' },
  },
  {
    name: 'hosts: suffix wildcard',
    yaml: allowPolicy(`  - to:
    - operation:
        hosts: ["*.example.com"]`),
    allowed: { host: 'api.example.com' },
    denied: { host: 'example.com' },
  },
  {
    name: 'notHosts',
    yaml: allowPolicy(`  - to:
    - operation:
        notHosts: ["admin.example.com"]`),
    allowed: { host: 'www.example.com' },
    denied: { host: 'ADMIN.example.com' },
  },
  {
    name: 'ports: the workload port',
    yaml: allowPolicy(`  - to:
    - operation:
        ports: ["8080"]`),
    allowed: { port: 8080 },
    denied: { port: 9090 },
  },
  {
    name: 'notPorts',
    yaml: allowPolicy(`  - to:
    - operation:
        notPorts: ["9090"]`),
    allowed: { port: 8080 },
    denied: { port: 9090 },
  },
  // --- conditions ------------------------------------------------------------------------------
  {
    name: 'when request.headers: exact',
    yaml: allowPolicy(`  - when:
    - key: request.headers[X-Version]
      values: ["v1"]`),
    allowed: { headers: { 'x-version': 'v1' } },
    denied: { headers: { 'x-version': 'v2' } },
  },
  {
    name: 'when request.headers: missing header does not match values',
    yaml: allowPolicy(`  - when:
    - key: request.headers[x-version]
      values: ["*"]`),
    allowed: { headers: { 'x-version': '' } },
    denied: { headers: {} },
  },
  {
    name: 'when request.headers notValues: missing header passes',
    yaml: allowPolicy(`  - when:
    - key: request.headers[x-debug]
      notValues: ["1"]`),
    allowed: { headers: {} },
    denied: { headers: { 'x-debug': '1' } },
  },
  {
    name: 'when source.ip',
    yaml: allowPolicy(`  - when:
    - key: source.ip
      values: ["10.0.2.7"]`),
    allowed: { ip: '10.0.2.7' },
    denied: { ip: '10.0.2.8' },
  },
  {
    name: 'when remote.ip',
    yaml: allowPolicy(`  - when:
    - key: remote.ip
      values: ["198.51.100.0/24"]`),
    allowed: { remoteIp: '198.51.100.1' },
    denied: { remoteIp: '198.51.99.1' },
  },
  {
    name: 'when source.namespace',
    yaml: allowPolicy(`  - when:
    - key: source.namespace
      values: ["bar"]`),
    allowed: {},
    denied: { principal: 'cluster.local/ns/baz/sa/sleep' },
  },
  {
    name: 'when source.principal',
    yaml: allowPolicy(`  - when:
    - key: source.principal
      values: ["cluster.local/ns/bar/sa/sleep"]`),
    allowed: {},
    denied: { mtls: false },
  },
  {
    name: 'when destination.ip',
    yaml: allowPolicy(`  - when:
    - key: destination.ip
      values: ["10.0.1.0/24"]`),
    allowed: { destinationIp: '10.0.1.5' },
    denied: { destinationIp: '10.0.9.5' },
  },
  {
    name: 'when destination.port',
    yaml: allowPolicy(`  - when:
    - key: destination.port
      values: ["8080"]`),
    allowed: { port: 8080 },
    denied: { port: 8081 },
  },
  {
    name: 'when connection.sni',
    yaml: allowPolicy(`  - when:
    - key: connection.sni
      values: ["*.foo.svc.cluster.local"]`),
    allowed: { sni: 'outbound_.8000_._.httpbin.foo.svc.cluster.local' },
    denied: { sni: 'httpbin.bar.svc.cluster.local' },
  },
  {
    name: 'when notValues',
    yaml: allowPolicy(`  - when:
    - key: source.ip
      notValues: ["10.0.2.0/24"]`),
    allowed: { ip: '10.0.3.1' },
    denied: { ip: '10.0.2.1' },
  },
  // --- rule structure -----------------------------------------------------------------------------
  {
    name: 'fields within a source are ANDed',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/bar/sa/sleep"]
        ipBlocks: ["10.0.0.0/8"]`),
    allowed: { ip: '10.0.2.7' },
    denied: { ip: '192.168.0.1' },
  },
  {
    name: 'sources in a rule are ORed',
    yaml: allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/a/sa/a"]
    - source:
        ipBlocks: ["10.0.0.0/8"]`),
    allowed: { ip: '10.0.2.7' },
    denied: { ip: '192.168.0.1' },
  },
  {
    name: 'from, to and when are ANDed',
    yaml: allowPolicy(`  - from:
    - source:
        namespaces: ["bar"]
    to:
    - operation:
        methods: ["GET"]
    when:
    - key: request.headers[x-a]
      values: ["1"]`),
    allowed: { headers: { 'x-a': '1' } },
    denied: { headers: { 'x-a': '2' } },
  },
  {
    name: 'rules are ORed',
    yaml: allowPolicy(`  - to:
    - operation:
        paths: ["/a"]
  - to:
    - operation:
        paths: ["/b"]`),
    allowed: { path: '/b' },
    denied: { path: '/c' },
  },
];

describe('AuthorizationPolicy near-miss pairs', () => {
  for (const p of pairs) {
    it(p.name, async () => {
      const engine = engineFrom(p.yaml, p.mesh);
      const allowed = await decide(engine, p.allowed);
      expectDecision(allowed, 'ALLOW', 200);
      const denied = await decide(engine, p.denied);
      expectDecision(denied, 'DENY', p.deniedStatus ?? 403, 'authorization');
    });
  }
});

describe('actions and defaults', () => {
  it('no policy allows', async () => {
    const d = await decide(engineFrom(''));
    expectDecision(d, 'ALLOW', 200);
    assert.equal(d.policy, null);
  });

  it('spec: {} denies all (an ALLOW policy with no rules)', async () => {
    const engine = engineFrom(`${HEAD('deny-all').replace('  action: ALLOW\n', '')}`.replace('spec:\n', 'spec: {}\n'));
    const d = await decide(engine);
    expectDecision(d, 'DENY', 403, 'authorization');
    assert.equal(d.policy, null);
  });

  it('rules: [{}] allows all', async () => {
    const d = await decide(engineFrom(`${HEAD('allow-all')}  rules:\n  - {}\n`));
    expectDecision(d, 'ALLOW', 200);
    assert.equal(d.policy, 'foo/allow-all');
  });

  it('ALLOW policies selecting other workloads do not apply', async () => {
    const engine = engineFrom(`${HEAD('p')}  selector:\n    matchLabels:\n      app: other\n  rules:\n  - to:\n    - operation:\n        paths: ["/nothing"]\n`);
    expectDecision(await decide(engine), 'ALLOW', 200);
  });

  it('ALLOW policies in other namespaces do not apply', async () => {
    const engine = engineFrom(`${HEAD('p', 'ALLOW', 'bar')}  rules:\n  - to:\n    - operation:\n        paths: ["/nothing"]\n`);
    expectDecision(await decide(engine), 'ALLOW', 200);
  });

  it('a policy in the root namespace applies mesh-wide', async () => {
    const engine = engineFrom(`${HEAD('p', 'ALLOW', 'istio-system')}  rules:\n  - to:\n    - operation:\n        paths: ["/ok"]\n`);
    expectDecision(await decide(engine, { path: '/ok' }), 'ALLOW', 200);
    expectDecision(await decide(engine, { path: '/no' }), 'DENY', 403, 'authorization');
  });

  it('the root namespace follows meshConfig.rootNamespace', async () => {
    const yaml = `${HEAD('p', 'ALLOW', 'mesh-root')}  rules:\n  - to:\n    - operation:\n        paths: ["/ok"]\n`;
    expectDecision(await decide(engineFrom(yaml), { path: '/no' }), 'ALLOW', 200);
    expectDecision(await decide(engineFrom(yaml, { rootNamespace: 'mesh-root' }), { path: '/no' }), 'DENY', 403, 'authorization');
  });

  it('DENY wins over ALLOW and names the policy', async () => {
    const engine = engineFrom(`${HEAD('allow-all')}  rules:\n  - {}\n---\n${HEAD('deny-admin', 'DENY')}  rules:\n  - to:\n    - operation:\n        paths: ["/admin*"]\n`);
    expectDecision(await decide(engine, { path: '/public' }), 'ALLOW', 200);
    const d = await decide(engine, { path: '/admin/x' });
    expectDecision(d, 'DENY', 403, 'authorization');
    assert.equal(d.policy, 'foo/deny-admin');
  });

  it('DENY with no rules is refused by validation (Istio: it could never trigger)', () => {
    const { diagnostics } = loadResourcesFromText('deny.yaml', `${HEAD('d', 'DENY')}  selector:\n    matchLabels:\n      app: httpbin\n`);
    assert.ok(diagnostics.some((d) => d.severity === 'error' && d.path === 'spec.rules'));
  });

  it('AUDIT never decides but is reported', async () => {
    const d = await decide(engineFrom(`${HEAD('audit', 'AUDIT')}  rules:\n  - {}\n`));
    expectDecision(d, 'ALLOW', 200);
    assert.deepEqual(d.trace.authorization?.observed.map((o) => o.policy), ['foo/audit']);
  });

  it('a dry-run DENY policy never decides', async () => {
    const yaml = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry
  namespace: foo
  annotations:
    istio.io/dry-run: "true"
spec:
  action: DENY
  rules:
  - {}
`;
    const d = await decide(engineFrom(yaml));
    expectDecision(d, 'ALLOW', 200);
    assert.equal(d.trace.authorization?.observed[0]?.dryRun, true);
  });

  it('the ALLOW policy that allowed is named', async () => {
    const engine = engineFrom(allowPolicy(`  - to:\n    - operation:\n        paths: ["/a"]\n  - to:\n    - operation:\n        paths: ["/b"]\n`));
    const d = await decide(engine, { path: '/b' });
    assert.equal(d.policy, 'foo/p');
    assert.equal(d.rule, 1);
  });
});

describe('CUSTOM', () => {
  const custom = (provider: string) => `${HEAD('ext', 'CUSTOM')}  provider:\n    name: ${provider}\n  rules:\n  - to:\n    - operation:\n        paths: ["/secure/*"]\n`;
  const mesh = { extensionProviders: [{ name: 'ext-authz' }] };

  it('is only consulted when its rules match', async () => {
    expectDecision(await decide(engineFrom(custom('ext-authz'), mesh), { path: '/open' }), 'ALLOW', 200);
  });
  it('ALLOW from the provider lets evaluation continue', async () => {
    const engine = engineFrom(`${custom('ext-authz')}---\n${HEAD('deny', 'DENY')}  rules:\n  - to:\n    - operation:\n        paths: ["/secure/admin"]\n`, mesh);
    expectDecision(await decide(engine, { path: '/secure/x', extAuthz: { 'ext-authz': 'ALLOW' } }), 'ALLOW', 200);
    const d = await decide(engine, { path: '/secure/admin', extAuthz: { 'ext-authz': 'ALLOW' } });
    expectDecision(d, 'DENY', 403, 'authorization');
    assert.equal(d.policy, 'foo/deny');
  });
  it('DENY from the provider denies', async () => {
    const d = await decide(engineFrom(custom('ext-authz'), mesh), { path: '/secure/x', extAuthz: { 'ext-authz': 'DENY' } });
    expectDecision(d, 'DENY', 403, 'authorization');
    assert.equal(d.policy, 'foo/ext');
  });
  it('no answer fails closed', async () => {
    expectDecision(await decide(engineFrom(custom('ext-authz'), mesh), { path: '/secure/x' }), 'DENY', 403, 'authorization');
  });
  it('an unknown provider denies what it matches', async () => {
    const engine = engineFrom(custom('missing'), mesh);
    expectDecision(await decide(engine, { path: '/secure/x', extAuthz: { missing: 'ALLOW' } }), 'DENY', 403, 'authorization');
    expectDecision(await decide(engine, { path: '/open' }), 'ALLOW', 200);
  });
});

describe('HTTP-only fields on TCP connections', () => {
  it('ALLOW: a rule with an HTTP-only field is dropped, so TCP is denied', async () => {
    const engine = engineFrom(allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/bar/sa/sleep"]
    to:
    - operation:
        methods: ["GET"]`));
    expectDecision(await decide(engine), 'ALLOW', 200);
    expectDecision(await decide(engine, { tcp: true }), 'DENY', 'reset', 'authorization');
  });
  it('ALLOW: a rule with only TCP fields still applies to TCP', async () => {
    const engine = engineFrom(allowPolicy(`  - from:
    - source:
        principals: ["cluster.local/ns/bar/sa/sleep"]
    to:
    - operation:
        ports: ["8080"]`));
    expectDecision(await decide(engine, { tcp: true }), 'ALLOW', 200);
    expectDecision(await decide(engine, { tcp: true, port: 9000 }), 'DENY', 'reset', 'authorization');
  });
  it('DENY: only the HTTP-only fields are dropped, so the rule denies more', async () => {
    const engine = engineFrom(`${HEAD('d', 'DENY')}  rules:
  - from:
    - source:
        namespaces: ["bar"]
    to:
    - operation:
        methods: ["DELETE"]
`);
    expectDecision(await decide(engine, { method: 'GET' }), 'ALLOW', 200);
    expectDecision(await decide(engine, { tcp: true }), 'DENY', 'reset', 'authorization');
    expectDecision(await decide(engine, { tcp: true, principal: 'cluster.local/ns/other/sa/x' }), 'ALLOW', 200);
  });
  it('DENY: a when on request headers is dropped on TCP', async () => {
    const engine = engineFrom(`${HEAD('d', 'DENY')}  rules:
  - when:
    - key: request.headers[x-block]
      values: ["1"]
`);
    expectDecision(await decide(engine, { headers: {} }), 'ALLOW', 200);
    expectDecision(await decide(engine, { tcp: true }), 'DENY', 'reset', 'authorization');
  });
});

describe('less common condition keys', () => {
  it('source.serviceAccount matches the peer identity', async () => {
    const engine = engineFrom(allowPolicy(`  - when:
    - key: source.serviceAccount
      values: ["bar/sleep"]`));
    expectDecision(await decide(engine), 'ALLOW', 200);
    expectDecision(await decide(engine, { principal: 'cluster.local/ns/bar/sa/other' }), 'DENY', 403, 'authorization');
  });
  it('request.experimental.inline.headers matches one element of a comma-separated value', async () => {
    const engine = engineFrom(allowPolicy(`  - when:
    - key: request.experimental.inline.headers[x-groups]
      values: ["admin"]`));
    expectDecision(await decide(engine, { headers: { 'x-groups': 'dev,admin,ops' } }), 'ALLOW', 200);
    expectDecision(await decide(engine, { headers: { 'x-groups': 'dev,administrators' } }), 'DENY', 403, 'authorization');
  });
});
