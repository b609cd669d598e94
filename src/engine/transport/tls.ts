import { X509Certificate, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { generate } from 'selfsigned';
import type { Home } from '../config/home.js';
import { SyncError } from '../errors.js';

/*
 * HTTPS between a child and its parent (DESIGN §8, issue 8 item 4). A parent reachable from the
 * internet has no domain a public authority would certify, so it makes its own certificate
 * (`init`), and the child trusts that one certificate, by its fingerprint, from its first contact
 * on: printed by `pair`, shown by `clone` for the person to compare, or given to `clone
 * --fingerprint` by a script. A different certificate later is refused: either someone sits in
 * between, or the parent's certificate was really replaced and the person must say so.
 *
 * Fingerprints are written like OpenSSH's: "SHA256:" and the base64 (no padding) of the SHA-256
 * of the certificate's DER bytes.
 */

/** The parent's certificate, in its home (public). */
export const CERT_FILE = 'tls-cert.pem';
/** Its private key, among the home's secrets (0600). */
export const KEY_SECRET = 'tls-key';
/** On a child: the parent's certificate fingerprint it trusts (kept with its secrets). */
export const PARENT_FINGERPRINT_SECRET = 'parent-fingerprint';

/** Twenty years: a clinic server's certificate must not expire under it. */
const VALID_DAYS = 20 * 365;

export interface Certificate {
  cert: string;
  key: string;
  fingerprint: string;
}

/** "SHA256:…" of a certificate's DER bytes. */
export function fingerprintOf(der: Buffer): string {
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
}

/**
 * A fingerprint as a person or a script gives it, made canonical: "SHA256:base64" as printed, or
 * the hex form browsers and openssl show (with or without colons). Null where it is neither.
 */
export function parseFingerprint(text: string): string | null {
  const t = text.trim();
  const b64 = /^SHA256:([A-Za-z0-9+/]{43})=?$/i.exec(t);
  if (b64 && t.startsWith('SHA256:')) return `SHA256:${b64[1]}`;
  const hex = t.replace(/^sha256[:=]?\s*/i, '').replace(/[:\s]/g, '');
  if (/^[0-9a-fA-F]{64}$/.test(hex)) {
    return `SHA256:${Buffer.from(hex, 'hex').toString('base64').replace(/=+$/, '')}`;
  }
  return null;
}

function certPath(home: Home): string {
  return path.join(home.dir, CERT_FILE);
}

/** The home's certificate, or null where it has none yet. */
export function readCertificate(home: Home): Certificate | null {
  let cert: string;
  try {
    cert = fs.readFileSync(certPath(home), 'utf8');
  } catch {
    return null;
  }
  const key = home.readSecret(KEY_SECRET);
  if (!key) return null;
  let der: Buffer;
  try {
    der = new X509Certificate(cert).raw;
  } catch (e) {
    throw new SyncError(
      'config',
      `The certificate ${certPath(home)} cannot be read; remove it and its key (secrets/${KEY_SECRET}) to make a new one.`,
      { cause: e },
    );
  }
  return { cert, key, fingerprint: fingerprintOf(der) };
}

/** The home's certificate, made now (self-signed, EC P-256: a short handshake) where missing. */
export async function ensureCertificate(home: Home, name: string): Promise<Certificate> {
  const have = readCertificate(home);
  if (have) return have;
  const notBefore = new Date(Date.now() - 86_400_000);
  const made = await generate([{ name: 'commonName', value: `ClinicSync ${name}`.slice(0, 64) }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + VALID_DAYS * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
    ],
  });
  // The key first: a certificate without its key would be unusable.
  home.writeSecret(KEY_SECRET, made.private);
  fs.mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  const temp = `${certPath(home)}.tmp`;
  fs.writeFileSync(temp, made.cert, { mode: 0o644 });
  fs.renameSync(temp, certPath(home));
  return readCertificate(home)!;
}

export function readParentFingerprint(home: Home): string | null {
  const v = home.readSecret(PARENT_FINGERPRINT_SECRET);
  return v ? parseFingerprint(v) : null;
}

export function writeParentFingerprint(home: Home, fingerprint: string): void {
  home.writeSecret(PARENT_FINGERPRINT_SECRET, fingerprint);
}
