// `meshward ca serve`: runs the CA server on a state directory made by
// `meshward ca init`: Istio's CSR API and the trust bundle stream on the
// gRPC listener, and the admin endpoint (status, metrics, root rotation,
// bootstrap tokens) on a second one. Both listen on loopback only: local
// mode has no way to attest a workload on another host, so nothing off
// this host may ask for a certificate.
//
// It writes server.json (see ca-server-file.ts) so the other `ca` commands
// find it, resumes a root rotation the CA's state records, and on SIGINT or
// SIGTERM stops the listeners, closes the CA and removes server.json. A
// second signal during that is not caught: it ends the process at once,
// and the next start takes over the stale lock.

import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { Registry } from '../lib/prometheus.ts';
import { CertificateAuthority, type CaLogEntry, type CaStatus } from '../identity/ca/index.ts';
import { CaAdmin, CaServer, isLoopbackHost, type CaServerLogEntry } from '../control/ca-server/index.ts';
import { MeshwardError } from '../lib/errors.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { printCaError } from './ca-text.ts';
import { removeServerFile, writeServerFile } from './ca-server-file.ts';
import { untilSignal } from './signals.ts';

export interface CaServeOptions {
  stateDir: string;
  /** `host:port` of the gRPC listener. */
  listen: string;
  /** `host:port` of the admin listener. */
  admin: string;
}

interface ListenAddress {
  host: string;
  port: number;
}

/** `127.0.0.1:15012` or `[::1]:15012`; anything but a loopback IP is refused. */
export function parseLoopbackAddress(flag: string, value: string): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(value) ?? /^([^:[\]]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new MeshwardError('ERR_MW_USAGE', `${flag} ${value}: expected host:port, e.g. 127.0.0.1:15012 or [::1]:15012`);
  }
  const host = m[1]!;
  if (!isLoopbackHost(host)) {
    const what = isIP(host) === 0 ? 'not an IP address' : 'not a loopback address';
    throw new MeshwardError(
      'ERR_MW_USAGE',
      `${flag} ${value}: ${what}; the CA server listens on loopback only (127.0.0.0/8 or ::1), e.g. 127.0.0.1:${port}`,
    );
  }
  return { host, port };
}

function logLine(component: string, level: string, event: string, fields: Readonly<Record<string, unknown>>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component, level, event, ...fields })}\n`);
}

const serverLog = (e: CaServerLogEntry) => {
  if (e.level !== 'debug') logLine('ca-server', e.level, e.event, e.fields);
};
// The server logs every issuance and rotation step with more detail; the
// CA's own entries add only its warnings and errors.
const caLog = (e: CaLogEntry) => {
  if (e.level !== 'info') logLine('ca', e.level, e.event, { message: e.message, ...e.fields });
};

export async function runCaServe(opts: CaServeOptions): Promise<number> {
  const grpcAt = parseLoopbackAddress('--listen', opts.listen);
  const adminAt = parseLoopbackAddress('--admin', opts.admin);
  // Caught from here on, so a signal during start-up still stops cleanly.
  const { signalled, release } = untilSignal();

  let before: CaStatus;
  try {
    before = await CertificateAuthority.readStatus(opts.stateDir);
  } catch (err) {
    release();
    if (printCaError(err)) {
      process.stderr.write('meshward: run `meshward ca init` to create a CA\n');
      return EXIT_USAGE;
    }
    throw err;
  }
  const registry = new Registry();
  let ca: CertificateAuthority;
  try {
    ca = await CertificateAuthority.open({ stateDir: opts.stateDir, trustDomain: before.trustDomain, registry, log: caLog });
  } catch (err) {
    release();
    if (printCaError(err)) return EXIT_USAGE;
    throw err;
  }

  let server: CaServer | undefined;
  let admin: CaAdmin | undefined;
  const stop = async () => {
    try {
      await admin?.stop();
      await server?.stop();
      await ca.close();
    } finally {
      await removeServerFile(ca.stateDir);
    }
  };
  // Goes to the admin endpoint and into server.json (0600), nowhere else.
  const adminToken = randomBytes(32).toString('base64url');
  try {
    server = await CaServer.start({ ca, host: grpcAt.host, port: grpcAt.port, registry, log: serverLog });
    admin = await CaAdmin.start({ server, ca, registry, host: adminAt.host, port: adminAt.port, token: adminToken, log: serverLog });
    await writeServerFile(ca.stateDir, {
      pid: process.pid,
      grpcAddress: server.address,
      adminAddress: admin.address,
      startedAt: new Date().toISOString(),
      adminToken,
    });
  } catch (err) {
    release();
    await stop().catch(() => {});
    process.stderr.write(`meshward: cannot start the CA server: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }

  process.stdout.write(`serving CA for trust domain ${ca.trustDomain}: grpc ${server.address}, admin http://${admin.address} (pid ${process.pid})\n`);
  const recorded = ca.rotationPhase;
  if (recorded !== 'none') {
    admin.rotateRoot().then(
      (o) => logLine('ca-server', 'info', 'root-rotation-resumed', { from: recorded, step: o.phase }),
      (err: unknown) => logLine('ca-server', 'error', 'root-rotation-resume-failed', { error: (err as Error).message }),
    );
  }

  const sig = await signalled;
  logLine('ca-server', 'info', 'ca-server-stopping', { signal: sig });
  await stop();
  return EXIT_OK;
}
