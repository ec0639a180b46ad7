// The CA's state directory. Layout (docs/reference/ca-state.md):
//
//   <stateDir>/            0700
//     state.json           0644  settings, roots and their states, issued count
//     bundle.pem           0644  the trust bundle: every root workloads should trust
//     lock                 0644  pid of the process that has the CA open
//     roots/<fp>.pem       0644  one root certificate per file
//     keys/<fp>.key.pem    0600  its PKCS#8 private key (self-signed mode only)
//
// <fp> is the root's SHA-256 fingerprint in lower-case hex. Every write goes
// to a temporary file in the same directory, is fsynced, renamed over the
// old file, and the directory is fsynced: a crash leaves the old file or the
// new one, never half of either.

import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { CaError } from './errors.ts';
import { CA_KEY_TYPES, type CaKeyType } from './keys.ts';
import { processAlive } from '../../lib/process.ts';

export type RootState = 'active' | 'trusted' | 'retired';
export type CaMode = 'self-signed' | 'plugin';
/**
 * Where a root rotation stands:
 * - `none`: one root, signing.
 * - `trusting-new-root`: a new root is in the bundle but does not sign yet;
 *   wait until every workload has the new bundle, then activate it.
 * - `draining-old-root`: the new root signs; the old one stays in the bundle
 *   until every certificate it signed has expired, then retire it.
 */
export type RotationPhase = 'none' | 'trusting-new-root' | 'draining-old-root';

export interface RootRecord {
  /** SHA-256 of the DER, `AB:CD:…`. */
  fingerprint: string;
  state: RootState;
  subject: string;
  notBefore: string;
  notAfter: string;
  createdAt: string;
  /** When it last became the signer; null if it never signed. */
  activatedAt: string | null;
  /** When it last stopped being the signer. */
  deactivatedAt: string | null;
  retiredAt: string | null;
}

export interface StateFile {
  version: 1;
  trustDomain: string;
  mode: CaMode;
  /** Absolute path of the cacerts directory, plug-in mode only. */
  pluginDir: string | null;
  keyType: CaKeyType;
  rootValidityDays: number;
  workloadTtlSeconds: number;
  maxWorkloadTtlSeconds: number;
  issued: number;
  rotationPhase: RotationPhase;
  roots: RootRecord[];
  updatedAt: string;
}

export const STATE_FILE = 'state.json';
export const BUNDLE_FILE = 'bundle.pem';
export const LOCK_FILE = 'lock';
export const DIR_MODE = 0o700;
export const KEY_MODE = 0o600;
export const PUBLIC_MODE = 0o644;

export const fileId = (fingerprint: string) => fingerprint.replace(/:/g, '').toLowerCase();
export const rootCertPath = (stateDir: string, fingerprint: string) => join(stateDir, 'roots', `${fileId(fingerprint)}.pem`);
export const rootKeyPath = (stateDir: string, fingerprint: string) => join(stateDir, 'keys', `${fileId(fingerprint)}.key.pem`);

export function rotationPhaseOf(roots: readonly RootRecord[]): RotationPhase {
  const waiting = roots.filter((r) => r.state === 'trusted');
  if (waiting.some((r) => r.activatedAt === null)) return 'trusting-new-root';
  if (waiting.length > 0) return 'draining-old-root';
  return 'none';
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  await chmod(dir, DIR_MODE);
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `data` to `path` atomically with `mode` (temp file, fsync, rename, fsync directory). */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.chmod(mode); // the umask may have narrowed it; never widened
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(tmp, path);
  await fsyncDir(dir);
}

export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
  await fsyncDir(dirname(path));
}

export async function stateExists(stateDir: string): Promise<boolean> {
  try {
    await stat(join(stateDir, STATE_FILE));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new CaError('invalid-state', `${join(stateDir, STATE_FILE)}: cannot read (${(err as NodeJS.ErrnoException).code})`);
  }
}

function invalid(stateDir: string, what: string): CaError {
  return new CaError('invalid-state', `${join(stateDir, STATE_FILE)}: ${what}`);
}

const isIso = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isIsoOrNull = (v: unknown) => v === null || isIso(v);

/** Reads and checks state.json; the error names the field that is wrong. */
export async function readState(stateDir: string): Promise<StateFile> {
  const path = join(stateDir, STATE_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw invalid(stateDir, code ? `cannot read (${code})` : 'is not valid JSON');
  }
  const s = raw as Partial<StateFile>;
  if (typeof raw !== 'object' || raw === null) throw invalid(stateDir, 'is not a JSON object');
  if (s.version !== 1) throw invalid(stateDir, `unsupported version ${String(s.version)}`);
  if (typeof s.trustDomain !== 'string' || s.trustDomain === '') throw invalid(stateDir, 'trustDomain is missing');
  if (s.mode !== 'self-signed' && s.mode !== 'plugin') throw invalid(stateDir, 'mode must be "self-signed" or "plugin"');
  if (s.mode === 'plugin' && typeof s.pluginDir !== 'string') throw invalid(stateDir, 'pluginDir is missing');
  if (!CA_KEY_TYPES.includes(s.keyType as CaKeyType)) throw invalid(stateDir, 'keyType is not a known key type');
  for (const f of ['rootValidityDays', 'workloadTtlSeconds', 'maxWorkloadTtlSeconds', 'issued'] as const) {
    if (typeof s[f] !== 'number' || !Number.isFinite(s[f]) || s[f] < 0) throw invalid(stateDir, `${f} must be a non-negative number`);
  }
  if (!Array.isArray(s.roots)) throw invalid(stateDir, 'roots must be a list');
  s.roots.forEach((r, i) => {
    const ok =
      typeof r === 'object' && r !== null &&
      typeof r.fingerprint === 'string' && /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(r.fingerprint) &&
      (r.state === 'active' || r.state === 'trusted' || r.state === 'retired') &&
      typeof r.subject === 'string' && isIso(r.notBefore) && isIso(r.notAfter) && isIso(r.createdAt) &&
      isIsoOrNull(r.activatedAt) && isIsoOrNull(r.deactivatedAt) && isIsoOrNull(r.retiredAt);
    if (!ok) throw invalid(stateDir, `roots[${i}] is malformed`);
  });
  const active = s.roots.filter((r) => r.state === 'active').length;
  if (s.mode === 'self-signed' && active !== 1) throw invalid(stateDir, `expected exactly one active root, found ${active}`);
  return { ...(s as StateFile), rotationPhase: rotationPhaseOf(s.roots) };
}

export async function writeState(stateDir: string, state: StateFile): Promise<void> {
  await writeFileAtomic(join(stateDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, PUBLIC_MODE);
}

// --- the lock: one process, one CertificateAuthority per state directory ----

const heldHere = new Set<string>();


/** The pid holding `stateDir`, if a live process other than this one does. */
export async function lockHolder(stateDir: string): Promise<number | null> {
  let text: string;
  try {
    text = await readFile(join(stateDir, LOCK_FILE), 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  return processAlive(pid) ? pid : null;
}

/**
 * Takes the state directory for this process. A lock left by a process that
 * is gone is taken over; one held by a live process, or already by this
 * process, is refused, so two writers never interleave their state.
 */
export async function acquireLock(stateDir: string): Promise<() => Promise<void>> {
  const key = resolve(stateDir);
  if (heldHere.has(key)) throw new CaError('state-locked', `${stateDir} is already open in this process`);
  const path = join(stateDir, LOCK_FILE);
  heldHere.add(key);
  try {
    try {
      // Exclusive create: of two processes starting together, one wins.
      const handle = await open(path, 'wx', PUBLIC_MODE);
      try {
        await handle.writeFile(`${process.pid}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await lockHolder(stateDir);
      if (holder !== null) throw new CaError('state-locked', `${stateDir} is in use by process ${holder}`);
      await writeFileAtomic(path, `${process.pid}\n`, PUBLIC_MODE); // left by a process that is gone
    }
  } catch (err) {
    heldHere.delete(key);
    throw err;
  }
  return async () => {
    heldHere.delete(key);
    await rm(join(stateDir, LOCK_FILE), { force: true });
  };
}
