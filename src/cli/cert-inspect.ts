// `meshward cert inspect FILE`: every certificate in a PEM file, with its
// SPIFFE ID, validity, key, CA rights, and which certificate signed it
// (found in the file itself, or in --bundle).

import { describeChain, type ChainEntry } from '../identity/inspect.ts';
import { EXIT_OK, EXIT_USAGE, readTextArgument } from './io.ts';
import { formatExpiry } from './ca-text.ts';

function signerText(e: ChainEntry, hasBundle: boolean): string {
  if (e.signedBy === 'self') return 'itself (self-signed)';
  if (e.signedBy === null) return hasBundle ? 'not found in this file or the bundle' : 'not found in this file (pass --bundle)';
  const where = e.signedBy.in === 'chain' ? `[${e.signedBy.index}]` : `bundle[${e.signedBy.index}]`;
  const how = e.signedBy.matchedBy === 'key-id' ? 'key identifier' : 'issuer name';
  return `${where} ${e.signedBy.subject || '(empty subject)'} (matched by ${how}, signature verified)`;
}

function text(entries: ChainEntry[], now: Date, hasBundle: boolean): string {
  const out: string[] = [];
  for (const e of entries) {
    out.push(`[${e.index}] ${e.spiffeId ?? (e.subject || '(no SPIFFE ID, empty subject)')}`);
    const row = (k: string, v: string) => out.push(`    ${k.padEnd(12)} ${v}`);
    row('subject', e.subject || '(empty)');
    row('issuer', e.issuer || '(empty)');
    if (e.uris.length + e.dnsNames.length + e.ipAddresses.length > 0) {
      row('SANs', [...e.uris.map((u) => `URI:${u}`), ...e.dnsNames.map((d) => `DNS:${d}`), ...e.ipAddresses.map((i) => `IP:${i}`)].join(', '));
    }
    row('serial', e.serial);
    row('not before', e.notBefore.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    row('not after', `${formatExpiry(e.notAfter, now)}${e.validity === 'not-yet-valid' ? ' (not yet valid)' : ''}`);
    row('key', e.keyType);
    row('CA', e.isCa ? `yes${e.pathLength !== null ? `, pathLen ${e.pathLength}` : ''}` : 'no');
    row('key usage', [...e.keyUsage, ...e.extKeyUsage].join(', ') || '(none)');
    row('fingerprint', e.fingerprint);
    row('signed by', signerText(e, hasBundle));
  }
  return `${out.join('\n')}\n`;
}

export async function runCertInspect(file: string, bundle: string | undefined, output: 'text' | 'json'): Promise<number> {
  const { name, text: pem } = await readTextArgument(file);
  const issuers = bundle !== undefined ? (await readTextArgument(bundle)).text : '';
  let entries: ChainEntry[];
  try {
    entries = describeChain(pem, issuers);
  } catch (err) {
    process.stderr.write(`${name}: error: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (output === 'json') process.stdout.write(`${JSON.stringify({ file: name, certificates: entries })}\n`);
  else process.stdout.write(text(entries, new Date(), bundle !== undefined));
  return EXIT_OK;
}
