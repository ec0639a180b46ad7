import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAuthzCheckRequest, type AuthzCheckRequest } from '../../../src/api/authz-request.ts';
import { DEFAULT_MESH_CONFIG } from '../../../src/api/mesh-config.ts';
import { formatDiagnostic } from '../../../src/api/diagnostics.ts';

const FILE = 'request.json';

type Json = Record<string, unknown>;

function httpRequest(): Json {
  return {
    destination: { namespace: 'foo', labels: { app: 'httpbin' }, serviceAccount: 'httpbin', port: 8080 },
    source: { principal: 'cluster.local/ns/bar/sa/curl', namespace: 'bar', ip: '10.0.2.7', mtls: true },
    request: { protocol: 'http', method: 'GET', path: '/status/200', host: 'httpbin.foo', headers: { 'X-User': 'alice' } },
  };
}

/** A copy of the base request with `patch` applied at a dotted path (undefined deletes). */
function withField(base: Json, path: string, value: unknown): Json {
  const copy = structuredClone(base);
  const keys = path.split('.');
  let node = copy as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

function valid(json: unknown): AuthzCheckRequest {
  const r = parseAuthzCheckRequest(FILE, json);
  assert.deepEqual(r.diagnostics.map(formatDiagnostic), []);
  assert.ok(r.request);
  return r.request;
}

function expectInvalid(json: unknown, path: string | undefined, message: string): void {
  const r = parseAuthzCheckRequest(FILE, json);
  assert.equal(r.request, undefined);
  const found = r.diagnostics.find((d) => d.path === path && d.message.includes(message));
  assert.ok(found, `expected ${path}: ${message}, got:\n${r.diagnostics.map(formatDiagnostic).join('\n')}`);
  assert.equal(found.file, FILE);
  assert.equal(found.severity, 'error');
}

describe('authz check request: valid', () => {
  it('reads an HTTP request, lower-cases header names and fills meshConfig defaults', () => {
    const r = valid(httpRequest());
    assert.equal(r.request.protocol, 'http');
    assert.deepEqual({ ...r.request.headers }, { 'x-user': 'alice' });
    assert.deepEqual(r.meshConfig, DEFAULT_MESH_CONFIG);
    assert.equal(r.source.mtls, true);
    assert.deepEqual({ ...r.destination.labels }, { app: 'httpbin' });
    assert.ok(Object.isFrozen(r) && Object.isFrozen(r.request.headers) && Object.isFrozen(r.meshConfig.trustDomainAliases));
  });

  it('header and label maps do not inherit from Object.prototype', () => {
    const r = valid(httpRequest());
    assert.equal(r.request.headers?.['constructor'], undefined);
    assert.equal(r.destination.labels['toString'], undefined);
  });

  it('host defaults to "" and headers to {}', () => {
    const json = withField(withField(httpRequest(), 'request.host', undefined), 'request.headers', undefined);
    const r = valid(json);
    assert.equal(r.request.host, '');
    assert.deepEqual({ ...r.request.headers }, {});
  });

  it('reads a TCP connection with SNI, and auto mTLS with a service and client namespace', () => {
    const r = valid({
      destination: { namespace: 'db', labels: {}, serviceAccount: 'mysql', port: 3306, ip: '10.0.0.9', service: { host: 'mysql.db.svc.cluster.local', port: 3306 } },
      source: { principal: null, namespace: 'app', ip: '10.0.2.7', remoteIp: '2001:db8::1', mtls: 'auto' },
      request: { protocol: 'tcp', sni: 'mysql.db' },
    });
    assert.deepEqual(r.request, { protocol: 'tcp', sni: 'mysql.db' });
    assert.equal(r.source.mtls, 'auto');
    assert.equal(r.request.path, undefined);
  });

  it('resolves meshConfig: DEFAULT normalization is BASE, providers keep their name', () => {
    const r = valid({
      ...httpRequest(),
      meshConfig: {
        rootNamespace: 'mesh-root',
        trustDomain: 'example.org',
        trustDomainAliases: ['old.example.org'],
        pathNormalization: { normalization: 'DEFAULT' },
        extensionProviders: [{ name: 'opa', envoyExtAuthzGrpc: { service: 'opa.svc', port: 9191 } }],
      },
      extAuthz: { opa: 'DENY' },
    });
    assert.deepEqual(r.meshConfig, {
      rootNamespace: 'mesh-root',
      trustDomain: 'example.org',
      trustDomainAliases: ['old.example.org'],
      pathNormalization: 'BASE',
      extensionProviders: [{ name: 'opa' }],
    });
    assert.deepEqual({ ...r.extAuthz }, { opa: 'DENY' });
    assert.equal(valid(withField(httpRequest(), 'meshConfig.pathNormalization.normalization', 'MERGE_SLASHES')).meshConfig.pathNormalization, 'MERGE_SLASHES');
  });
});

describe('authz check request: near misses', () => {
  it('is a JSON object', () => {
    expectInvalid(null, undefined, 'expected object, got null');
    expectInvalid([], undefined, 'expected object, got list');
  });

  it('requires the destination fields', () => {
    for (const f of ['namespace', 'labels', 'serviceAccount', 'port']) {
      expectInvalid(withField(httpRequest(), `destination.${f}`, undefined), `destination.${f}`, `missing required field "${f}"`);
    }
  });

  it('ports are integers 1-65535', () => {
    expectInvalid(withField(httpRequest(), 'destination.port', 0), 'destination.port', 'invalid port 0');
    expectInvalid(withField(httpRequest(), 'destination.port', 65536), 'destination.port', 'invalid port 65536');
    expectInvalid(withField(httpRequest(), 'destination.port', '8080'), 'destination.port', 'expected integer, got string "8080"');
    expectInvalid(withField(httpRequest(), 'destination.port', 80.5), 'destination.port', 'expected integer, got number 80.5');
    expectInvalid(withField(httpRequest(), 'destination.service', { host: 'a', port: 0 }), 'destination.service.port', 'invalid port 0');
  });

  it('addresses are strict IPs', () => {
    expectInvalid(withField(httpRequest(), 'source.ip', '10.0.2.256'), 'source.ip', 'invalid IP address "10.0.2.256"');
    expectInvalid(withField(httpRequest(), 'source.ip', undefined), 'source.ip', 'missing required field "ip"');
    expectInvalid(withField(httpRequest(), 'source.remoteIp', '10.0.0.0/8'), 'source.remoteIp', 'invalid IP address');
    expectInvalid(withField(httpRequest(), 'destination.ip', 'localhost'), 'destination.ip', 'invalid IP address');
  });

  it('mtls is true, false or "auto"', () => {
    expectInvalid(withField(httpRequest(), 'source.mtls', 'yes'), 'source.mtls', 'expected true, false or "auto", got string "yes"');
    expectInvalid(withField(httpRequest(), 'source.mtls', undefined), 'source.mtls', 'missing required field "mtls"');
  });

  it('auto mTLS needs the dialled service and the client namespace', () => {
    const auto = withField(withField(httpRequest(), 'source.mtls', 'auto'), 'source.namespace', null);
    expectInvalid(auto, 'destination.service', 'required when source.mtls is "auto"');
    expectInvalid(auto, 'source.namespace', 'must not be null when source.mtls is "auto"');
  });

  it('a plaintext connection has no principal', () => {
    expectInvalid(withField(httpRequest(), 'source.mtls', false), 'source.principal', 'must be null when source.mtls is false');
    valid(withField(withField(httpRequest(), 'source.mtls', false), 'source.principal', null));
  });

  it('principals are written without spiffe://', () => {
    expectInvalid(withField(httpRequest(), 'source.principal', 'spiffe://cluster.local/ns/a/sa/b'), 'source.principal', 'without "spiffe://"');
    expectInvalid(withField(httpRequest(), 'source.principal', undefined), 'source.principal', 'missing required field "principal"');
  });

  it('protocol is http or tcp', () => {
    expectInvalid(withField(httpRequest(), 'request.protocol', 'grpc'), 'request.protocol', 'expected one of http, tcp, got "grpc"');
  });

  it('http needs method and path', () => {
    const json = withField(withField(httpRequest(), 'request.method', undefined), 'request.path', undefined);
    expectInvalid(json, 'request.method', 'required for protocol http');
    expectInvalid(json, 'request.path', 'required for protocol http');
    expectInvalid(withField(httpRequest(), 'request.method', 'GE T'), 'request.method', 'invalid method "GE T"');
  });

  it('tcp has none of the HTTP fields', () => {
    const json = withField(httpRequest(), 'request.protocol', 'tcp');
    for (const f of ['method', 'path', 'host', 'headers']) expectInvalid(json, `request.${f}`, 'must not be set for protocol tcp');
  });

  it('headers hold neither host nor pseudo-headers, nor the same name twice', () => {
    expectInvalid(withField(httpRequest(), 'request.headers', { Host: 'a' }), 'request.headers.Host', 'goes in request.host');
    expectInvalid(withField(httpRequest(), 'request.headers', { ':authority': 'a' }), 'request.headers[":authority"]', 'pseudo-headers');
    expectInvalid(withField(httpRequest(), 'request.headers', { 'x-a': '1', 'X-A': '2' }), 'request.headers.X-A', 'given twice');
    expectInvalid(withField(httpRequest(), 'request.headers', { 'bad header': '1' }), 'request.headers["bad header"]', 'invalid header name');
    expectInvalid(withField(httpRequest(), 'request.headers', { 'x-n': 1 }), 'request.headers.x-n', 'expected string, got integer 1');
  });

  it('unknown fields are errors, except inside extension providers', () => {
    expectInvalid({ ...httpRequest(), extra: 1 }, 'extra', 'unknown field "extra"');
    expectInvalid(withField(httpRequest(), 'destination.serviceAcount', 'x'), 'destination.serviceAcount', 'did you mean "serviceAccount"?');
    expectInvalid(withField(httpRequest(), 'meshConfig.trustDomains', ['x']), 'meshConfig.trustDomains', 'unknown field');
  });

  it('meshConfig values are checked', () => {
    expectInvalid(withField(httpRequest(), 'meshConfig.pathNormalization', { normalization: 'MERGE' }), 'meshConfig.pathNormalization.normalization', 'expected one of NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES, DEFAULT');
    expectInvalid(withField(httpRequest(), 'meshConfig.extensionProviders', [{ name: 'a' }, { name: 'a' }]), 'meshConfig.extensionProviders[1].name', 'duplicate extension provider name "a"');
    expectInvalid(withField(httpRequest(), 'meshConfig.extensionProviders', [{ port: 1 }]), 'meshConfig.extensionProviders[0].name', 'missing required field "name"');
    expectInvalid(withField(httpRequest(), 'meshConfig.rootNamespace', 'Mesh Root'), 'meshConfig.rootNamespace', 'invalid namespace');
  });

  it('extAuthz answers are ALLOW or DENY', () => {
    expectInvalid({ ...httpRequest(), extAuthz: { opa: 'MAYBE' } }, 'extAuthz.opa', 'expected one of ALLOW, DENY, got "MAYBE"');
  });

  it('reports every problem at once', () => {
    const r = parseAuthzCheckRequest(FILE, {
      destination: { namespace: 'foo', labels: {}, serviceAccount: '', port: 0 },
      source: { principal: null, namespace: null, ip: 'x', mtls: 1 },
      request: { protocol: 'tcp', path: '/' },
    });
    assert.deepEqual(r.diagnostics.map((d) => d.path).sort(), [
      'destination.port',
      'destination.serviceAccount',
      'request.path',
      'source.ip',
      'source.mtls',
    ]);
  });
});
