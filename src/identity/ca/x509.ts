// One place that prepares @peculiar/x509: its dependency injection needs the
// Reflect polyfill loaded before it, and it signs through whatever WebCrypto
// it is given. Everything in src/ that uses @peculiar/x509 imports it from
// here, so the order can never be wrong.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509Certificate, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto);

export { x509, NodeX509Certificate, webcrypto };

export interface PemBlock {
  type: string;
  der: Buffer;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Splits PEM text into blocks, strictly: the BEGIN and END labels must agree
 * and the body must be canonical base64. Text between blocks is ignored, as
 * openssl does, so comments in bundle files are fine. Throws a plain Error
 * whose message never quotes the input (a key file may be passed by mistake).
 */
export function decodePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const [, begin, body, end] = m;
    if (begin !== end) throw new Error(`PEM block "${begin}" ends with "${end}"`);
    const compact = body!.replace(/\s+/g, '');
    if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64_BODY.test(compact)) {
      throw new Error(`PEM block "${begin}" is not valid base64`);
    }
    const der = Buffer.from(compact, 'base64');
    if (der.toString('base64') !== compact) throw new Error(`PEM block "${begin}" is not valid base64`);
    blocks.push({ type: begin!, der });
  }
  const begins = text.match(/-----BEGIN /g)?.length ?? 0;
  if (begins !== blocks.length) throw new Error('PEM text has an unterminated block');
  return blocks;
}

export function encodePem(type: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

/**
 * Checks that `der` is exactly one DER SEQUENCE with nothing after it: a
 * truncated or padded encoding is refused before any parser sees it.
 */
export function isSingleDerSequence(der: Uint8Array): boolean {
  if (der.length < 2 || der[0] !== 0x30) return false;
  const first = der[1]!;
  let length: number;
  let header: number;
  if (first < 0x80) {
    length = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || der.length < 2 + n) return false;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[2 + i]!;
    if (length < 0x80 || der[2] === 0) return false; // not minimal: DER forbids it
    header = 2 + n;
  }
  return header + length === der.length;
}

/** Parses every CERTIFICATE block in `text`; throws if there is any other kind. */
export function parseCertificates(text: string): x509.X509Certificate[] {
  const blocks = decodePem(text);
  return blocks.map((b, i) => {
    if (b.type !== 'CERTIFICATE') throw new Error(`PEM block ${i + 1} is "${b.type}", expected "CERTIFICATE"`);
    if (!isSingleDerSequence(b.der)) throw new Error(`certificate ${i + 1} is truncated or has trailing data`);
    try {
      return new x509.X509Certificate(b.der);
    } catch {
      throw new Error(`certificate ${i + 1} is not a valid X.509 certificate`);
    }
  });
}

/** SHA-256 of the DER, `AB:CD:…`: the form node:crypto's fingerprint256 and the identity API use. */
export function fingerprintOf(cert: x509.X509Certificate): string {
  return new NodeX509Certificate(Buffer.from(cert.rawData)).fingerprint256;
}

/** Canonical form for comparing fingerprints typed by people: hex only, upper case. */
export function normalizeFingerprint(text: string): string {
  return text.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
}

export function toNodeCertificate(cert: x509.X509Certificate): NodeX509Certificate {
  return new NodeX509Certificate(Buffer.from(cert.rawData));
}
