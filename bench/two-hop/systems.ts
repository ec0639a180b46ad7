// The systems under test, each a pair of sidecars (client side, server
// side) in front of the same app, written from templates into the run's
// temporary directory and started as foreground processes (no daemon, no
// privileged port) on 127.0.0.1, pinned to one core with taskset. (meshward's
// inbound listener binds all addresses, as the proxy does; the benchmark
// only ever dials 127.0.0.1.)
//
//   meshward  two `meshward proxy --config` processes; client → server is
//             mTLS carrying HTTP/1.1 keep-alive (what the app spoke: the
//             default for `protocol: http` upstreams), server → app
//             HTTP/1.1 keep-alive. One AuthorizationPolicy (ALLOW the client
//             principal), STRICT PeerAuthentication, Istio metrics on.
//             `meshward-nodelay` is the same with nodelay.ts preloaded.
//   nginx     two nginx masters (1 worker each); client → server is mTLS
//             carrying HTTP/1.1 keep-alive (nginx cannot proxy HTTP/2
//             upstream), the server authorizes on the client's subject CN.
//   haproxy   two haproxy processes (nbthread 1); the same as nginx: mTLS,
//             HTTP/1.1 keep-alive, `http-reuse always`, authorize on CN.
//
// Each also has a raw TCP path (protocol: tcp ports / stream / mode tcp)
// through the same mTLS, carrying the same HTTP/1.1 bytes opaquely.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rotate, rssMiB } from './measure.ts';
import { NAMESPACE, SERVER_DNS, TRUST_DOMAIN, createPki, spiffeId, type Leaf, type Pki } from './pki.ts';
import { onPath } from '../host.ts';

export const REPO = resolve(import.meta.dirname, '../..');

// Below the kernel's ephemeral range (32768–60999 by default): a port in it
// can be the local end of any outgoing connection on the machine, the
// benchmark's own included, and a proxy restarted between rounds then
// fails to listen.
export const PORTS = {
  app: 29100,
  meshward: { serverHttp: 29110, serverAdmin: 29111, clientHttp: 29112, clientAdmin: 29113, serverTcp: 29114, clientTcp: 29115 },
  'meshward-nodelay': { serverHttp: 29140, serverAdmin: 29141, clientHttp: 29142, clientAdmin: 29143, serverTcp: 29144, clientTcp: 29145 },
  nginx: { serverHttp: 29120, clientHttp: 29121, serverTcp: 29124, clientTcp: 29125 },
  haproxy: { serverHttp: 29130, clientHttp: 29131, serverTcp: 29134, clientTcp: 29135 },
  'node-pipe': { serverHttp: 29150, clientHttp: 29151 },
} as const;

/**
 * `meshward-nodelay`: meshward with bench/two-hop/nodelay.ts preloaded (an
 * experiment: TCP_NODELAY on every socket). `node-pipe`: not a proxy but a
 * floor, two Node processes copying bytes over the same mTLS hop
 * (bench/two-hop/node-pipe.ts).
 */
export type SystemName = 'meshward' | 'meshward-nodelay' | 'nginx' | 'haproxy' | 'node-pipe';
export const SYSTEM_NAMES: readonly SystemName[] = ['meshward', 'meshward-nodelay', 'nginx', 'haproxy', 'node-pipe'];
export const isMeshward = (n: SystemName): n is 'meshward' | 'meshward-nodelay' => n === 'meshward' || n === 'meshward-nodelay';

export interface Sidecar {
  readonly label: string;
  /** The process whose tree is measured (nginx: the master; its worker is a child). */
  readonly proc: ChildProcess;
}

export interface RunningSystem {
  readonly name: SystemName;
  readonly client: Sidecar;
  readonly server: Sidecar;
  /** Where the load generator sends HTTP (client side) and TCP-carried HTTP. */
  readonly httpPort: number;
  readonly tcpPort: number;
  /** The server side's mTLS listener, for the handshake test. */
  readonly serverTlsPort: number;
  /** meshward: a server proxy started alone, idle, then after `POST /memory/trim` (MiB). */
  readonly idleProbe?: { readonly idle: number; readonly trimmed: number; readonly anonIdle: number; readonly anonTrimmed: number };
}

export interface StartOptions {
  readonly dir: string;
  readonly pki: Pki;
  readonly nodeBin: string;
  readonly core: string;
  /** Where the sidecars' stderr (meshward's access log) goes. */
  readonly logFile: string;
  /** Extra node flags for the meshward proxies (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
}

function pinned(core: string, cmd: string, args: readonly string[], stderrTo: string): ChildProcess {
  const err = openSync(stderrTo, 'a');
  const child = spawn('taskset', ['-c', core, cmd, ...args], { stdio: ['ignore', 'ignore', err], cwd: REPO });
  child.on('error', () => undefined);
  return child;
}

/** Whether 127.0.0.1:port can be listened on now; the error code if not. */
function tryListen(port: number): Promise<string | null> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'));
    probe.listen(port, '127.0.0.1', () => probe.close(() => done(null)));
  });
}

/**
 * Throws if any benchmark port is taken. A process left over from an
 * interrupted run would otherwise answer in place of the one being started
 * (whose own listen fails), and be measured instead of it. A closed
 * connection in TIME-WAIT can also hold one for a minute, so a taken port
 * is tried again for 70 s first.
 */
export async function assertPortsFree(): Promise<void> {
  const ports = Object.values(PORTS).flatMap((p) => (typeof p === 'number' ? [p] : Object.values(p)));
  for (const port of ports) {
    const deadline = Date.now() + 70_000;
    let code = await tryListen(port);
    if (code !== null) process.stderr.write(`127.0.0.1:${port} is taken (${code}); trying again for 70 s\n`);
    while (code !== null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      code = await tryListen(port);
    }
    if (code !== null) {
      throw new Error(`127.0.0.1:${port} is taken (${code}): a process from an earlier benchmark run? \`ss -tanp 'sport = :${port}'\` names it`);
    }
  }
}

/** Resolves once 127.0.0.1:port accepts a connection; rejects after `ms`. */
export async function waitForPort(port: number, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((done) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        done(true);
      });
      s.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// --- meshward ------------------------------------------------------------------

const PEER_AUTHN = `apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`;

const AUTHZ = `apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: server-allow-client
  namespace: ${NAMESPACE}
spec:
  selector:
    matchLabels:
      app: server
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/client"]
`;

function workload(sa: string): object {
  return { name: sa, namespace: NAMESPACE, serviceAccount: sa, labels: { app: sa }, trustDomain: TRUST_DOMAIN };
}

function identityFiles(leaf: Leaf, rootFile: string): object {
  return { files: { keyFile: leaf.keyFile, certChainFile: leaf.chainFile, bundleFile: rootFile } };
}

/** Writes the two proxy configs and policy directories; returns the config paths. */
export function writeMeshwardConfigs(dir: string, pki: Pki, name: 'meshward' | 'meshward-nodelay' = 'meshward'): { server: string; client: string } {
  const P = PORTS[name];
  const d = join(dir, name);
  mkdirSync(join(d, 'policy-server'), { recursive: true });
  mkdirSync(join(d, 'policy-client'), { recursive: true });
  writeFileSync(join(d, 'policy-server', 'peer-authn.yaml'), PEER_AUTHN);
  writeFileSync(join(d, 'policy-server', 'authz.yaml'), AUTHZ);
  writeFileSync(join(d, 'policy-client', 'peer-authn.yaml'), PEER_AUTHN);
  const server = {
    version: 1,
    workload: workload('server'),
    identity: identityFiles(pki.leaf('server', SERVER_DNS), pki.rootFile),
    inbound: [
      { port: P.serverHttp, protocol: 'http', appPort: PORTS.app },
      { port: P.serverTcp, protocol: 'tcp', appPort: PORTS.app },
    ],
    outbound: [],
    adminPort: P.serverAdmin,
    policyPaths: ['policy-server'],
  };
  const endpoint = (port: number): object[] => [{ host: '127.0.0.1', port, identities: [spiffeId('server')] }];
  const client = {
    version: 1,
    workload: workload('client'),
    identity: identityFiles(pki.leaf('client'), pki.rootFile),
    inbound: [],
    outbound: [
      { name: 'server', host: `server.${NAMESPACE}.svc.${TRUST_DOMAIN}`, servicePort: 8080, protocol: 'http', localPort: P.clientHttp, endpoints: endpoint(P.serverHttp) },
      { name: 'server-tcp', host: `server-tcp.${NAMESPACE}.svc.${TRUST_DOMAIN}`, servicePort: 9000, protocol: 'tcp', localPort: P.clientTcp, endpoints: endpoint(P.serverTcp) },
    ],
    adminPort: P.clientAdmin,
    policyPaths: ['policy-client'],
  };
  const files = { server: join(d, 'server.json'), client: join(d, 'client.json') };
  writeFileSync(files.server, JSON.stringify(server, null, 2));
  writeFileSync(files.client, JSON.stringify(client, null, 2));
  return files;
}

async function startMeshward(o: StartOptions, name: 'meshward' | 'meshward-nodelay'): Promise<RunningSystem> {
  const files = writeMeshwardConfigs(o.dir, o.pki, name);
  const bin = join(REPO, 'bin', 'meshward.js');
  const flags = [...(o.nodeArgs ?? []), ...(name === 'meshward-nodelay' ? ['--import', join(import.meta.dirname, 'nodelay.ts')] : [])];
  const P = PORTS[name];
  // A first start fills Node's compile cache, as any earlier run of meshward
  // would have: the measured start then loads no TypeScript stripper (about
  // 17 MiB of RSS that a long-running proxy only pays on its very first start).
  const importFlags = name === 'meshward-nodelay' ? ['--import', join(import.meta.dirname, 'nodelay.ts')] : [];
  const primer = pinned(o.core, o.nodeBin, [...importFlags, bin, 'proxy', '--config', files.server], o.logFile);
  await waitForPort(P.serverAdmin);
  await stopped(primer);
  // A second start, measured: idle, then after the trim the proxy would run
  // by itself after a few idle minutes (src/lib/memory-trim.ts), asked for
  // now. The pair measured below is not trimmed, as a proxy under traffic is not.
  const probe = pinned(o.core, o.nodeBin, [...importFlags, bin, 'proxy', '--config', files.server], o.logFile);
  await waitForPort(P.serverAdmin);
  await new Promise((r) => setTimeout(r, 1000));
  const idle = rssMiB([probe.pid!]);
  const anonIdle = rssMiB([probe.pid!], 'RssAnon');
  const trim = await fetch(`http://127.0.0.1:${P.serverAdmin}/memory/trim`, { method: 'POST' });
  if (trim.status !== 200) throw new Error(`POST /memory/trim: HTTP ${trim.status}`);
  // The trim's second pass at the C allocator comes a second later.
  await new Promise((r) => setTimeout(r, 1300));
  const idleProbe = { idle, trimmed: rssMiB([probe.pid!]), anonIdle, anonTrimmed: rssMiB([probe.pid!], 'RssAnon') };
  await stopped(probe);
  const server = pinned(o.core, o.nodeBin, [...flags, bin, 'proxy', '--config', files.server], o.logFile);
  const client = pinned(o.core, o.nodeBin, [...flags, bin, 'proxy', '--config', files.client], o.logFile);
  await Promise.all([waitForPort(P.serverAdmin), waitForPort(P.clientAdmin), waitForPort(P.clientHttp), waitForPort(P.serverHttp)]);
  return {
    name,
    client: { label: `${name} client`, proc: client },
    server: { label: `${name} server`, proc: server },
    httpPort: P.clientHttp,
    tcpPort: P.clientTcp,
    serverTlsPort: P.serverHttp,
    idleProbe,
  };
}

function stopped(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    child.once('exit', () => r());
    child.kill('SIGTERM');
  });
}

// --- nginx -----------------------------------------------------------------------

const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

function nginxConf(side: 'client' | 'server', dir: string, pki: Pki, withStream: boolean): string {
  const P = PORTS.nginx;
  const server = pki.leaf('server', SERVER_DNS);
  const client = pki.leaf('client');
  const common = `${withStream ? `load_module ${NGINX_STREAM_MODULE};\n` : ''}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
`;
  const tempPaths = `client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`;
  if (side === 'server') {
    const tls = `ssl_certificate ${server.chainFile}; ssl_certificate_key ${server.keyFile};
    ssl_client_certificate ${pki.rootFile}; ssl_verify_client on; ssl_protocols TLSv1.3;`;
    return `${common}http {
  access_log off; ${tempPaths}
  keepalive_requests 10000000; keepalive_timeout 60s;
  # nginx has no variable for a URI SAN: authorize on the subject CN the bench also puts in the leaf.
  map $ssl_client_s_dn $mesh_allowed { default 0; "~(^|,)CN=client(,|$)" 1; }
  upstream app { server 127.0.0.1:${PORTS.app}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:${P.serverHttp} ssl;
    ${tls}
    location / {
      if ($mesh_allowed = 0) { return 403; }
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
    }
  }
}
${withStream ? `stream {
  server { listen 127.0.0.1:${P.serverTcp} ssl; ${tls} proxy_pass 127.0.0.1:${PORTS.app}; }
}` : ''}
`;
  }
  const tls = `proxy_ssl_certificate ${client.chainFile}; proxy_ssl_certificate_key ${client.keyFile};
    proxy_ssl_trusted_certificate ${pki.rootFile}; proxy_ssl_verify on; proxy_ssl_name ${SERVER_DNS};
    proxy_ssl_protocols TLSv1.3; proxy_ssl_session_reuse on;`;
  return `${common}http {
  access_log off; ${tempPaths}
  keepalive_requests 10000000; keepalive_timeout 60s;
  upstream mesh { server 127.0.0.1:${P.serverHttp}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:${P.clientHttp};
    location / {
      proxy_pass https://mesh; proxy_http_version 1.1; proxy_set_header Connection "";
      ${tls}
    }
  }
}
${withStream ? `stream {
  server { listen 127.0.0.1:${P.clientTcp}; proxy_pass 127.0.0.1:${P.serverTcp}; proxy_ssl on; ${tls} }
}` : ''}
`;
}

async function startNginx(o: StartOptions, withStream: boolean): Promise<RunningSystem> {
  const sides = (['server', 'client'] as const).map((side) => {
    const d = join(o.dir, `nginx-${side}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'nginx.conf'), nginxConf(side, d, o.pki, withStream));
    return pinned(o.core, 'nginx', ['-p', d, '-c', join(d, 'nginx.conf'), '-g', 'daemon off;'], o.logFile);
  });
  const P = PORTS.nginx;
  await Promise.all([waitForPort(P.serverHttp), waitForPort(P.clientHttp)]);
  return {
    name: 'nginx',
    server: { label: 'nginx server', proc: sides[0]! },
    client: { label: 'nginx client', proc: sides[1]! },
    httpPort: P.clientHttp,
    tcpPort: withStream ? P.clientTcp : 0,
    serverTlsPort: P.serverHttp,
  };
}

// --- HAProxy ---------------------------------------------------------------------

function haproxyCfg(side: 'client' | 'server', pki: Pki): string {
  const P = PORTS.haproxy;
  const server = pki.leaf('server', SERVER_DNS);
  const client = pki.leaf('client');
  const head = `global
  nbthread 1
  maxconn 8192
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
`;
  if (side === 'server') {
    const bind = `ssl crt ${server.comboFile} ca-file ${pki.rootFile} verify required`;
    return `${head}
frontend server_http
  mode http
  option http-keep-alive
  bind 127.0.0.1:${P.serverHttp} ${bind} alpn http/1.1
  # HAProxy 2.6 cannot fetch a URI SAN: authorize on the subject CN the bench also puts in the leaf.
  http-request deny unless { ssl_c_s_dn(CN) -m str client }
  default_backend app_http
backend app_http
  mode http
  http-reuse always
  server app 127.0.0.1:${PORTS.app}
frontend server_tcp
  mode tcp
  bind 127.0.0.1:${P.serverTcp} ${bind}
  tcp-request content reject unless { ssl_c_s_dn(CN) -m str client }
  default_backend app_tcp
backend app_tcp
  mode tcp
  server app 127.0.0.1:${PORTS.app}
`;
  }
  const tls = `ssl crt ${client.comboFile} ca-file ${pki.rootFile} verify required verifyhost ${SERVER_DNS}`;
  return `${head}
frontend client_http
  mode http
  option http-keep-alive
  bind 127.0.0.1:${P.clientHttp}
  default_backend mesh_http
backend mesh_http
  mode http
  http-reuse always
  server s 127.0.0.1:${P.serverHttp} ${tls} alpn http/1.1
frontend client_tcp
  mode tcp
  bind 127.0.0.1:${P.clientTcp}
  default_backend mesh_tcp
backend mesh_tcp
  mode tcp
  server s 127.0.0.1:${P.serverTcp} ${tls}
`;
}

async function startHaproxy(o: StartOptions): Promise<RunningSystem> {
  const sides = (['server', 'client'] as const).map((side) => {
    const file = join(o.dir, `haproxy-${side}.cfg`);
    writeFileSync(file, haproxyCfg(side, o.pki));
    return pinned(o.core, 'haproxy', ['-f', file, '-db'], o.logFile);
  });
  const P = PORTS.haproxy;
  await Promise.all([waitForPort(P.serverHttp), waitForPort(P.clientHttp)]);
  return {
    name: 'haproxy',
    server: { label: 'haproxy server', proc: sides[0]! },
    client: { label: 'haproxy client', proc: sides[1]! },
    httpPort: P.clientHttp,
    tcpPort: P.clientTcp,
    serverTlsPort: P.serverHttp,
  };
}

// --- the Node floor ---------------------------------------------------------------

async function startNodePipe(o: StartOptions): Promise<RunningSystem> {
  const P = PORTS['node-pipe'];
  const script = join(import.meta.dirname, 'node-pipe.ts');
  const server = o.pki.leaf('server', SERVER_DNS);
  const client = o.pki.leaf('client');
  const serverProc = pinned(o.core, o.nodeBin, [script, 'server', String(P.serverHttp), String(PORTS.app), server.keyFile, server.chainFile, o.pki.rootFile], o.logFile);
  const clientProc = pinned(o.core, o.nodeBin, [script, 'client', String(P.clientHttp), String(P.serverHttp), client.keyFile, client.chainFile, o.pki.rootFile], o.logFile);
  await Promise.all([waitForPort(P.serverHttp), waitForPort(P.clientHttp)]);
  return {
    name: 'node-pipe',
    server: { label: 'node-pipe server', proc: serverProc },
    client: { label: 'node-pipe client', proc: clientProc },
    httpPort: P.clientHttp,
    // Its HTTP row is already bytes through a pipe.
    tcpPort: 0,
    serverTlsPort: P.serverHttp,
  };
}

export function startSystem(name: SystemName, o: StartOptions): Promise<RunningSystem> {
  if (isMeshward(name)) return startMeshward(o, name);
  if (name === 'node-pipe') return startNodePipe(o);
  if (name === 'nginx') {
    return startNginx(o, existsSync(NGINX_STREAM_MODULE));
  }
  return startHaproxy(o);
}

/** The app: node:http, a fixed 200 with a short body, keep-alive. Runs in its own process. */
export function startApp(nodeBin: string, core: string, logFile: string): ChildProcess {
  const code = `
const http = require('node:http');
const body = Buffer.from('ok: the two-hop benchmark app\\n');
const s = http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
s.keepAliveTimeout = 60000;
s.headersTimeout = 61000;
s.listen(${PORTS.app}, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;
  return pinned(core, nodeBin, ['-e', code], logFile);
}

/** Stops both sidecars of a system and waits for them to exit. */
export async function stopSystem(s: RunningSystem): Promise<void> {
  for (const p of [s.client.proc, s.server.proc]) {
    p.kill('SIGTERM');
    await once(p, 'exit');
  }
}

/**
 * What a benchmark of meshward's pair alone starts from: wrk and taskset
 * present, the ports free, a fresh PKI in a new directory, the app up on
 * `core`. The caller removes `dir` and stops `app`.
 */
export async function startPairBench(dirPrefix: string, core: string): Promise<{ dir: string; pki: Pki; app: ChildProcess }> {
  for (const tool of ['wrk', 'taskset']) {
    if (!onPath(tool)) throw new Error(`${tool} is not installed (bench/two-hop.ts installs it)`);
  }
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  const pki = createPki(dir);
  await assertPortsFree();
  const app = startApp(process.execPath, core, join(dir, 'app.log'));
  await waitForPort(PORTS.app);
  return { dir, pki, app };
}

export interface VariantRounds {
  readonly rounds: number;
  /** A name for each variant, and the Node flags both proxies run with. */
  readonly variants: Readonly<Record<string, readonly string[]>>;
  readonly dir: string;
  readonly pki: Pki;
  readonly core: string;
}

/**
 * Runs `measure` on a fresh meshward pair for each variant, `rounds` times,
 * the order rotated per round so that no variant always runs first; the
 * pair is stopped after each.
 */
export async function eachMeshwardVariant(o: VariantRounds, measure: (s: RunningSystem, name: string, round: number) => Promise<void>): Promise<void> {
  const names = Object.keys(o.variants);
  for (let round = 0; round < o.rounds; round++) {
    for (const name of rotate(names, round)) {
      const s = await startSystem('meshward', { dir: o.dir, pki: o.pki, nodeBin: process.execPath, core: o.core, logFile: join(o.dir, 'proxies.log'), nodeArgs: o.variants[name] });
      try {
        await measure(s, name, round);
      } finally {
        await stopSystem(s);
      }
    }
  }
}
