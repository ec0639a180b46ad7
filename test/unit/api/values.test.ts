import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  duration,
  ipOrCidr,
  labelKey,
  matchValue,
  parseDuration,
  pathValue,
  portString,
  serviceAccountValue,
  wildcardDomain,
  type Check,
} from '../../../src/api/schemas/values.ts';
import { formatPath } from '../../../src/api/field-path.ts';
import { closest } from '../../../src/api/suggest.ts';

function table(check: Check, good: readonly string[], bad: readonly string[]): void {
  for (const v of good) assert.equal(check(v), null, `${JSON.stringify(v)} should be accepted`);
  for (const v of bad) assert.notEqual(check(v), null, `${JSON.stringify(v)} should be rejected`);
}

describe('value syntax', () => {
  it('match values: exact, prefix*, *suffix or *', () => {
    table(matchValue, ['a', '*', 'a*', '*a', '/api/v1/*', 'x.y'], ['', 'a*b', '*a*', '**', 'a**', '*a*b']);
  });

  it('paths: match values or well-formed templates', () => {
    table(
      pathValue,
      ['/', '/a/*', '*.js', '/{*}', '/{**}', '/a/{*}/b', '/a/{*}/b/{**}', '/{*}/{*}/', "/a/b~c/{*}/d@e=f:g/{**}"],
      ['', '/a/{**}/{*}', '/{**}/{**}', '/a/{b}', '/a{*}', '/{*}x', '/{x=**}', '/a*/{*}', '/{*}//a', '/{}', '/a/}'],
    );
  });

  it('ports: decimal strings 0-65535', () => {
    table(portString, ['0', '80', '65535', '080'], ['', '65536', '-1', '8o', ' 80', '80.0', '1e3']);
  });

  it('addresses and ranges, strictly', () => {
    table(
      ipOrCidr,
      ['10.0.0.1', '10.0.0.0/8', '0.0.0.0/0', '10.1.2.3/8', '::', '::1', '2001:db8::/32', '::ffff:10.0.0.1', '::ffff:10.0.0.0/104'],
      ['', '999.1.1.1', '10.0.0', '10.0.0.01', '10.0.0.0/33', '10.0.0.0/08', '10.0.0.0/', '/8', '2001:db8::/129', 'fe80::1%eth0', '[::1]', '1.2.3.4 ', 'localhost'],
    );
    assert.equal(ipOrCidr('10.0.0.0/33'), 'invalid CIDR "10.0.0.0/33": prefix length "33" must be a number from 0 to 32');
  });

  it('service accounts: name or namespace/name', () => {
    table(serviceAccountValue, ['curl', 'ns/curl'], ['', '*', 'ns/*', 'a/b/c', '/sa', 'ns/', 'x'.repeat(321)]);
  });

  it('hosts: RFC 1123 names with an optional wildcard first label', () => {
    table(
      wildcardDomain,
      ['reviews', 'reviews.prod.svc.cluster.local', '*.example.com', '*', '*-api.example.com', 'example.com.', 'Upper.Example.com'],
      ['', 'a_b.com', 'foo.*.com', '-a.com', 'a..com', '10.0.0.1', 'a.123', `${'a'.repeat(64)}.com`],
    );
  });

  it('label keys: optional DNS prefix, then a name', () => {
    table(labelKey, ['app', 'app.kubernetes.io/name', 'a_b.c-d', 'A1'], ['', '-a', 'a/', '/a', 'a/b/c', 'a b', 'x'.repeat(64)]);
  });

  it('durations: at least 1ms, whole milliseconds', () => {
    table(duration, ['1ms', '5s', '1.5s', '0.001s', '1m30s', '2h', '1000us'], ['', '5', '0s', '500us', '1.5ms', 's', '5 s', '-5s', '1d']);
    assert.equal(parseDuration('1m30.5s'), 90.5e9);
  });
});

describe('field paths and suggestions', () => {
  it('formats paths the way users read them', () => {
    assert.equal(formatPath(['spec', 'rules', 0, 'from', 1, 'source', 'ipBlocks', 2]), 'spec.rules[0].from[1].source.ipBlocks[2]');
    assert.equal(formatPath(['metadata', 'annotations', 'istio.io/dry-run']), 'metadata.annotations["istio.io/dry-run"]');
    assert.equal(formatPath(['request', 'headers', ':authority']), 'request.headers[":authority"]');
    assert.equal(formatPath(['request', 'headers', 'x-user']), 'request.headers.x-user');
    assert.equal(formatPath([]), '');
  });

  it('suggests near names only', () => {
    assert.equal(closest('principles', ['principals', 'namespaces']), 'principals');
    assert.equal(closest('Selector', ['selector', 'rules']), 'selector');
    assert.equal(closest('bogus', ['principals', 'namespaces']), null);
  });
});
