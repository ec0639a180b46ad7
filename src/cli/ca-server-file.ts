// How the `ca` commands find a running CA server: `meshward ca serve` writes
// server.json into the state directory (0600: it holds the admin token) and
// removes it when it stops. A file left by a process that is gone, or whose
// admin endpoint does not answer, means no server: the commands then work on
// the state directory directly.

import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../identity/ca/state.ts';
import type { CaAdminStatus } from '../control/ca-server/index.ts';
import { processAlive } from '../lib/process.ts';

export const SERVER_FILE = 'server.json';
const SERVER_FILE_MODE = 0o600;
const ADMIN_TIMEOUT_MS = 3000;

export interface ServerFile {
  pid: number;
  /** `host:port` of the gRPC listener (CSR service, trust bundle stream). */
  grpcAddress: string;
  /** `host:port` of the admin HTTP listener. */
  adminAddress: string;
  startedAt: string;
  /** Bearer token for the admin endpoint's POST routes; valid while this server runs. */
  adminToken: string;
}

export interface LiveServer {
  file: ServerFile;
  status: CaAdminStatus;
}

export const serverFilePath = (stateDir: string) => join(resolve(stateDir), SERVER_FILE);

export async function writeServerFile(stateDir: string, file: ServerFile): Promise<void> {
  await writeFileAtomic(serverFilePath(stateDir), `${JSON.stringify(file, null, 2)}\n`, SERVER_FILE_MODE);
}

export async function removeServerFile(stateDir: string): Promise<void> {
  await rm(serverFilePath(stateDir), { force: true });
}

async function readServerFile(stateDir: string): Promise<ServerFile | null> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(serverFilePath(stateDir), 'utf8'));
  } catch {
    return null;
  }
  const f = raw as Partial<ServerFile>;
  const ok =
    typeof raw === 'object' && raw !== null &&
    Number.isSafeInteger(f.pid) && (f.pid ?? 0) > 0 &&
    typeof f.grpcAddress === 'string' && typeof f.adminAddress === 'string' &&
    typeof f.startedAt === 'string' && typeof f.adminToken === 'string';
  return ok ? (f as ServerFile) : null;
}


export interface AdminReply {
  status: number;
  body: unknown;
}

/** One call to the admin endpoint; rejects if it does not answer. */
export async function callAdmin(file: ServerFile, method: 'GET' | 'POST', path: string, body?: unknown): Promise<AdminReply> {
  const headers: Record<string, string> = {};
  if (method === 'POST') headers.authorization = `Bearer ${file.adminToken}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://${file.adminAddress}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** The CA server running on `stateDir`, if server.json names a live process whose admin endpoint answers. */
export async function findLiveServer(stateDir: string): Promise<LiveServer | null> {
  const file = await readServerFile(stateDir);
  if (!file || !processAlive(file.pid)) return null;
  try {
    const reply = await callAdmin(file, 'GET', '/status');
    if (reply.status !== 200 || typeof reply.body !== 'object' || reply.body === null) return null;
    return { file, status: reply.body as CaAdminStatus };
  } catch {
    return null;
  }
}
