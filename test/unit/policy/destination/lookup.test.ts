// Which DestinationRule a client applies: lookup order, exportTo, hosts,
// wildcards, merging and workload selectors. Each rule sets a distinct TLS
// mode so the decision shows which one won.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientTlsMode, DestinationRule, TrafficPolicy } from '../../../../src/api/resources.ts';
import {
  compileDestinationRules,
  indexDestinationRules,
  namespaceOfServiceHost,
  resolveClientTls,
  resolveRuleHost,
  type ClientTlsQuery,
} from '../../../../src/policy/destination/index.ts';

const MESH = { rootNamespace: 'istio-system' };
const HTTPBIN = 'httpbin.foo.svc.cluster.local';

function dr(
  namespace: string,
  name: string,
  host: string,
  opts: { tls?: ClientTlsMode; exportTo?: string[]; selector?: Record<string, string>; trafficPolicy?: TrafficPolicy } = {},
): DestinationRule {
  const trafficPolicy = opts.trafficPolicy ?? (opts.tls !== undefined ? { tls: { mode: opts.tls } } : undefined);
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name, namespace, labels: {}, annotations: {} },
    spec: {
      host,
      ...(trafficPolicy !== undefined ? { trafficPolicy } : {}),
      ...(opts.exportTo !== undefined ? { exportTo: opts.exportTo } : {}),
      ...(opts.selector !== undefined ? { workloadSelector: { matchLabels: opts.selector } } : {}),
    },
    source: { file: 'test', documentIndex: 0, line: 1 },
  };
}

function decide(all: DestinationRule[], q: Partial<ClientTlsQuery> = {}, mesh: Parameters<typeof resolveClientTls>[2] = MESH) {
  return resolveClientTls(all, { clientNamespace: 'bar', host: HTTPBIN, port: 8000, ...q }, mesh);
}

/** The rule in effect and the mode it gave, the two things every test here checks. */
function winner(all: DestinationRule[], q: Partial<ClientTlsQuery> = {}): [string | null, string] {
  const d = decide(all, q);
  return [d.destinationRule, d.mode];
}

describe('lookup order', () => {
  const serviceNs = dr('foo', 'svc', HTTPBIN, { tls: 'DISABLE' });
  const clientNs = dr('bar', 'client', HTTPBIN, { tls: 'SIMPLE' });
  const rootNs = dr('istio-system', 'root', HTTPBIN, { tls: 'MUTUAL' });

  it('no rule: auto mTLS', () => {
    assert.deepEqual(winner([]), [null, 'ISTIO_MUTUAL']);
    assert.equal(decide([]).auto, true);
  });

  it("the client's namespace beats the service's namespace", () => {
    assert.deepEqual(winner([serviceNs, clientNs]), ['bar/client', 'SIMPLE']);
    assert.deepEqual(winner([serviceNs, dr('bar', 'client', 'other.foo.svc.cluster.local', { tls: 'SIMPLE' })]), ['foo/svc', 'DISABLE']);
  });

  it("the service's namespace beats the root namespace", () => {
    assert.deepEqual(winner([rootNs, serviceNs]), ['foo/svc', 'DISABLE']);
    assert.deepEqual(winner([rootNs]), ['istio-system/root', 'MUTUAL']);
  });

  it('a rule in some third namespace never applies, whatever it exports', () => {
    assert.deepEqual(winner([dr('baz', 'third', HTTPBIN, { tls: 'DISABLE', exportTo: ['*'] })]), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner([dr('baz', 'third', HTTPBIN, { tls: 'DISABLE', exportTo: ['bar'] })]), [null, 'ISTIO_MUTUAL']);
  });

  it("the client's wildcard rule beats an exact rule in the service's namespace", () => {
    const all = [serviceNs, dr('bar', 'wild', '*.svc.cluster.local', { tls: 'SIMPLE' })];
    assert.deepEqual(winner(all), ['bar/wild', 'SIMPLE']);
  });

  it('takes the namespace from name.ns.svc.<domain>; other hosts skip the service step unless told', () => {
    assert.equal(namespaceOfServiceHost(HTTPBIN), 'foo');
    assert.equal(namespaceOfServiceHost('httpbin.foo'), null);
    assert.equal(namespaceOfServiceHost('api.example.com'), null);
    assert.equal(namespaceOfServiceHost('httpbin.foo.svc.'), null);
    const external = [dr('egress', 'api', 'api.example.com', { tls: 'SIMPLE' })];
    assert.deepEqual(winner(external, { host: 'api.example.com' }), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner(external, { host: 'api.example.com', serviceNamespace: 'egress' }), ['egress/api', 'SIMPLE']);
  });

  describe('a client in the root namespace', () => {
    const q = { clientNamespace: 'istio-system' };

    it('applies a private root rule before the service namespace', () => {
      const privateRoot = dr('istio-system', 'private', HTTPBIN, { tls: 'MUTUAL', exportTo: ['.'] });
      assert.deepEqual(winner([serviceNs, privateRoot], q), ['istio-system/private', 'MUTUAL']);
    });

    it('applies a public root rule only after the service namespace', () => {
      assert.deepEqual(winner([serviceNs, rootNs], q), ['foo/svc', 'DISABLE']);
      assert.deepEqual(winner([rootNs], q), ['istio-system/root', 'MUTUAL']);
    });
  });
});

describe('exportTo', () => {
  const exported = (exportTo: string[]) => [dr('foo', 'svc', HTTPBIN, { tls: 'DISABLE', exportTo })];

  it('absent or "*": every namespace', () => {
    assert.deepEqual(winner([dr('foo', 'svc', HTTPBIN, { tls: 'DISABLE' })]), ['foo/svc', 'DISABLE']);
    assert.deepEqual(winner(exported(['*'])), ['foo/svc', 'DISABLE']);
  });

  it('".": its own namespace only', () => {
    assert.deepEqual(winner(exported(['.'])), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner(exported(['.']), { clientNamespace: 'foo' }), ['foo/svc', 'DISABLE']);
  });

  it('"~": no namespace, not even its own', () => {
    assert.deepEqual(winner(exported(['~'])), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner(exported(['~']), { clientNamespace: 'foo' }), [null, 'ISTIO_MUTUAL']);
  });

  it('named namespaces: those, and not its own unless listed', () => {
    assert.deepEqual(winner(exported(['bar'])), ['foo/svc', 'DISABLE']);
    assert.deepEqual(winner(exported(['bar']), { clientNamespace: 'baz' }), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner(exported(['bar']), { clientNamespace: 'foo' }), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner(exported(['bar', '.']), { clientNamespace: 'foo' }), ['foo/svc', 'DISABLE']);
    assert.deepEqual(winner(exported(['bar', 'foo']), { clientNamespace: 'foo' }), ['foo/svc', 'DISABLE']);
  });

  it('a root rule exported to "." reaches no client outside the root namespace', () => {
    const privateRoot = [dr('istio-system', 'root', '*.local', { tls: 'SIMPLE', exportTo: ['.'] })];
    assert.deepEqual(winner(privateRoot), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner([dr('istio-system', 'root', '*.local', { tls: 'SIMPLE' })]), ['istio-system/root', 'SIMPLE']);
  });

  it('a most specific match not exported to the client ends the search in that namespace', () => {
    const all = [
      dr('foo', 'exact', HTTPBIN, { tls: 'DISABLE', exportTo: ['baz'] }),
      dr('foo', 'wild', '*.foo.svc.cluster.local', { tls: 'SIMPLE' }),
      dr('istio-system', 'root', '*.local', { tls: 'MUTUAL' }),
    ];
    // bar: the exact host matches in foo but is not exported to bar; the wildcard is not tried.
    assert.deepEqual(winner(all), ['istio-system/root', 'MUTUAL']);
    assert.deepEqual(winner(all, { clientNamespace: 'baz' }), ['foo/exact', 'DISABLE']);
    // With the exact rule private instead, it is not in foo's exported pool at all, so the wildcard is.
    const privateExact = [dr('foo', 'exact', HTTPBIN, { tls: 'DISABLE', exportTo: ['.'] }), ...all.slice(1)];
    assert.deepEqual(winner(privateExact), ['foo/wild', 'SIMPLE']);
  });
});

describe('hosts', () => {
  it("a short host is completed with the rule's namespace", () => {
    assert.deepEqual(winner([dr('foo', 'short', 'httpbin', { tls: 'DISABLE' })]), ['foo/short', 'DISABLE']);
    // In the client's namespace the same short name means httpbin.bar…, not the service in foo.
    assert.deepEqual(winner([dr('bar', 'short', 'httpbin', { tls: 'DISABLE' })]), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(
      winner([dr('bar', 'short', 'httpbin', { tls: 'DISABLE' })], { host: 'httpbin.bar.svc.cluster.local' }),
      ['bar/short', 'DISABLE'],
    );
  });

  it('a host with a dot is literal: httpbin.foo is not httpbin.foo.svc.cluster.local', () => {
    assert.deepEqual(winner([dr('foo', 'partial', 'httpbin.foo', { tls: 'DISABLE' })]), [null, 'ISTIO_MUTUAL']);
    assert.equal(resolveRuleHost('httpbin.foo', 'foo', 'cluster.local'), 'httpbin.foo');
  });

  it('completes with the configured domain suffix; IPs and "*" stay as written', () => {
    assert.equal(resolveRuleHost('httpbin', 'foo', 'corp.internal'), 'httpbin.foo.svc.corp.internal');
    assert.equal(resolveRuleHost('*', 'foo', 'cluster.local'), '*');
    assert.equal(resolveRuleHost('::1', 'foo', 'cluster.local'), '::1');
    const d = resolveClientTls(
      [dr('foo', 'short', 'httpbin', { tls: 'DISABLE' })],
      { clientNamespace: 'bar', host: 'httpbin.foo.svc.corp.internal', port: 80 },
      { rootNamespace: 'istio-system', domainSuffix: 'corp.internal' },
    );
    assert.equal(d.destinationRule, 'foo/short');
  });

  it('an exact host beats a wildcard in the same namespace', () => {
    const all = [dr('foo', 'wild', '*.foo.svc.cluster.local', { tls: 'SIMPLE' }), dr('foo', 'exact', HTTPBIN, { tls: 'DISABLE' })];
    assert.deepEqual(winner(all), ['foo/exact', 'DISABLE']);
    assert.deepEqual(winner(all, { host: 'other.foo.svc.cluster.local' }), ['foo/wild', 'SIMPLE']);
  });

  it('the longest matching wildcard wins, whatever the load order', () => {
    const broad = dr('foo', 'broad', '*.svc.cluster.local', { tls: 'MUTUAL' });
    const narrow = dr('foo', 'narrow', '*.foo.svc.cluster.local', { tls: 'SIMPLE' });
    assert.deepEqual(winner([broad, narrow]), ['foo/narrow', 'SIMPLE']);
    assert.deepEqual(winner([narrow, broad]), ['foo/narrow', 'SIMPLE']);
    assert.deepEqual(winner([broad, narrow], { host: 'httpbin.other.svc.cluster.local', serviceNamespace: 'foo' }), ['foo/broad', 'MUTUAL']);
  });

  it('"*" matches every host, and loses to any longer wildcard', () => {
    assert.deepEqual(winner([dr('istio-system', 'all', '*', { tls: 'SIMPLE' })]), ['istio-system/all', 'SIMPLE']);
    const all = [dr('istio-system', 'all', '*', { tls: 'SIMPLE' }), dr('istio-system', 'local', '*.local', { tls: 'MUTUAL' })];
    assert.deepEqual(winner(all), ['istio-system/local', 'MUTUAL']);
    assert.deepEqual(winner(all, { host: 'api.example.com' }), ['istio-system/all', 'SIMPLE']);
  });

  it('a wildcard needs the dot: *.foo.svc.cluster.local does not match xfoo.svc.cluster.local', () => {
    const all = [dr('istio-system', 'w', '*.foo.svc.cluster.local', { tls: 'SIMPLE' })];
    assert.deepEqual(winner(all, { host: 'a.foo.svc.cluster.local' }), ['istio-system/w', 'SIMPLE']);
    assert.deepEqual(winner(all, { host: 'a.xfoo.svc.cluster.local' }), [null, 'ISTIO_MUTUAL']);
  });
});

describe('rules for the same host in the same namespace are merged', () => {
  it('the first rule with a trafficPolicy supplies it; later ones only add subsets', () => {
    const subsetsOnly: DestinationRule = { ...dr('foo', 'subsets', HTTPBIN), spec: { host: HTTPBIN, subsets: [{ name: 'v1', labels: { version: 'v1' } }] } };
    const tls = dr('foo', 'tls', HTTPBIN, { tls: 'SIMPLE' });
    const d = decide([subsetsOnly, tls]);
    assert.deepEqual([d.destinationRule, d.mode], ['foo/tls', 'SIMPLE']);
    assert.match(d.reason, /foo\/subsets \+ foo\/tls \(merged\)/);
    const index = indexDestinationRules([subsetsOnly, tls], MESH);
    assert.deepEqual(index.lookup('bar', HTTPBIN)?.rule?.from, ['foo/subsets', 'foo/tls']);
  });

  it('when both have one, the first in load order wins', () => {
    const a = dr('foo', 'a', HTTPBIN, { tls: 'SIMPLE' });
    const b = dr('foo', 'b', HTTPBIN, { tls: 'DISABLE' });
    assert.deepEqual(winner([a, b]), ['foo/a', 'SIMPLE']);
    assert.deepEqual(winner([b, a]), ['foo/b', 'DISABLE']);
  });

  it('rules with different exportTo stay separate, and the last one visible applies', () => {
    const everyone = dr('foo', 'everyone', HTTPBIN, { tls: 'SIMPLE', exportTo: ['*'] });
    const barOnly = dr('foo', 'bar-only', HTTPBIN, { tls: 'DISABLE', exportTo: ['bar'] });
    assert.deepEqual(winner([everyone, barOnly]), ['foo/bar-only', 'DISABLE']);
    assert.deepEqual(winner([everyone, barOnly], { clientNamespace: 'baz' }), ['foo/everyone', 'SIMPLE']);
    // Same exportTo: merged, the first one's policy wins for everyone.
    const barToo = dr('foo', 'bar-too', HTTPBIN, { tls: 'DISABLE', exportTo: ['*'] });
    assert.deepEqual(winner([everyone, barToo]), ['foo/everyone', 'SIMPLE']);
  });

  it('rules in different namespaces are never merged', () => {
    const client = dr('bar', 'no-tp', HTTPBIN, { trafficPolicy: {} });
    const d = decide([client, dr('foo', 'svc', HTTPBIN, { tls: 'DISABLE' })]);
    assert.deepEqual([d.destinationRule, d.mode, d.auto], ['bar/no-tp', 'ISTIO_MUTUAL', true]);
  });
});

describe('workloadSelector', () => {
  const selected = dr('bar', 'for-sleep', HTTPBIN, { tls: 'DISABLE', selector: { app: 'sleep' } });
  const serviceNs = dr('foo', 'svc', HTTPBIN, { tls: 'SIMPLE' });

  it('applies to the client workloads it selects, in its own namespace', () => {
    assert.deepEqual(winner([selected, serviceNs], { clientLabels: { app: 'sleep' } }), ['bar/for-sleep', 'DISABLE']);
  });

  it("stops the lookup for other clients in that namespace: Istio then applies no rule, not the service's", () => {
    const d = decide([selected, serviceNs], { clientLabels: { app: 'other' } });
    assert.deepEqual([d.destinationRule, d.mode, d.auto], [null, 'ISTIO_MUTUAL', true]);
    assert.match(d.reason, /only with a workloadSelector/);
  });

  it('with a no-selector rule beside it, the others get that one', () => {
    const all = [selected, dr('bar', 'everyone', HTTPBIN, { tls: 'MUTUAL' }), serviceNs];
    assert.deepEqual(winner(all, { clientLabels: { app: 'other' } }), ['bar/everyone', 'MUTUAL']);
    assert.deepEqual(winner(all, { clientLabels: { app: 'sleep' } }), ['bar/for-sleep', 'DISABLE']);
  });

  it('is left out when the client labels are unknown', () => {
    assert.deepEqual(winner([selected, serviceNs]), ['foo/svc', 'SIMPLE']);
  });

  it('is never exported, whatever its exportTo says', () => {
    const inFoo = dr('foo', 'selector', HTTPBIN, { tls: 'DISABLE', selector: { app: 'sleep' }, exportTo: ['*'] });
    assert.deepEqual(winner([inFoo], { clientLabels: { app: 'sleep' } }), [null, 'ISTIO_MUTUAL']);
    assert.deepEqual(winner([inFoo], { clientNamespace: 'foo', clientLabels: { app: 'sleep' } }), ['foo/selector', 'DISABLE']);
  });

  it('absorbs a no-selector rule for the same host exported only to "." (Istio merges equal exportTo sets)', () => {
    const privateRule = dr('bar', 'private', HTTPBIN, { tls: 'MUTUAL', exportTo: ['.'] });
    // Selector rules sort first; the private rule's exportTo {.} equals the selector rule's, so it is merged into it.
    assert.deepEqual(winner([privateRule, selected], { clientLabels: { app: 'other' } }), [null, 'ISTIO_MUTUAL']);
    // Exported to everyone instead, it stays a separate entry and applies to the other clients.
    const publicRule = dr('bar', 'public', HTTPBIN, { tls: 'MUTUAL' });
    assert.deepEqual(winner([publicRule, selected], { clientLabels: { app: 'other' } }), ['bar/public', 'MUTUAL']);
  });
});

describe('rules Istio rejects', () => {
  it('OPTIONAL_MUTUAL is not a client mode: the rule is dropped as if absent', () => {
    const bad = dr('foo', 'bad', HTTPBIN, { tls: 'OPTIONAL_MUTUAL' });
    const index = indexDestinationRules([bad], MESH);
    assert.deepEqual(index.ignored.map((i) => i.destinationRule), ['foo/bad']);
    assert.deepEqual(winner([bad, dr('istio-system', 'root', HTTPBIN, { tls: 'SIMPLE' })]), ['istio-system/root', 'SIMPLE']);
    const portLevel = dr('foo', 'bad', HTTPBIN, { trafficPolicy: { portLevelSettings: [{ port: { number: 1 }, tls: { mode: 'OPTIONAL_MUTUAL' } }] } });
    assert.equal(indexDestinationRules([portLevel], MESH).ignored.length, 1);
  });
});

describe('compiled form', () => {
  it('answers as the one-shot form', () => {
    const all = [dr('foo', 'svc', HTTPBIN, { tls: 'DISABLE', exportTo: ['bar'] }), dr('istio-system', 'root', '*.local', { tls: 'SIMPLE' })];
    const compiled = compileDestinationRules(all, MESH);
    for (const clientNamespace of ['bar', 'baz', 'foo', 'istio-system']) {
      const q = { clientNamespace, host: HTTPBIN, port: 8000 };
      assert.deepEqual(compiled.resolve(q), resolveClientTls(all, q, MESH));
    }
  });
});
