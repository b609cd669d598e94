import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/*
 * Request and response authentication between a child and its parent (DESIGN §8).
 *
 * After pairing, child and parent share the child's node secret (32 random bytes). Every request
 * carries the child's node id, a time on the PARENT's clock (the child keeps an offset learned
 * from signed answers), a fresh 16-byte nonce and an HMAC-SHA256 over the method, the route, the
 * node id, the time, the nonce and the SHA-256 of the body exactly as sent. The parent refuses a
 * request that is unsigned, from an unknown node, badly signed, outside ±15 minutes of its clock,
 * or whose nonce it has already seen within that window. Answers are signed with the same secret
 * over their status, the parent's time, the request's nonce and the SHA-256 of the body, so the
 * child can tell its own parent answered this very request.
 *
 * The route signed is the endpoint's own path (e.g. /v1/exchange), not the URL's: a parent behind
 * a reverse proxy that mounts it under a prefix still verifies.
 */

export const HEADER = {
  node: 'x-clinicsync-node',
  time: 'x-clinicsync-time',
  nonce: 'x-clinicsync-nonce',
  signature: 'x-clinicsync-signature',
  /** on a 401: which check failed (see Refusal), so the child knows a clock retry may help */
  refusal: 'x-clinicsync-refusal',
  /** on POST /v1/pair: HMAC of the body under the key derived from the pairing code */
  proof: 'x-clinicsync-proof',
  /**
   * on POST /v1/exchange: the most the child wants back, `records=N, bytes=M` (a slow link's
   * smaller batches). Unsigned: changing it can only make the answer smaller or the parent's own.
   */
  batch: 'x-clinicsync-batch',
} as const;

/** How far a request's time may be from the parent's clock. */
export const TIME_WINDOW_MS = 15 * 60 * 1000;

/** Why the parent refused a request with 401. */
export type Refusal = 'unsigned' | 'unknown-node' | 'signature' | 'time' | 'replay';

export const REFUSALS: readonly Refusal[] = [
  'unsigned',
  'unknown-node',
  'signature',
  'time',
  'replay',
];

/** The sentence the parent sends with each refusal (plain, for the child's user and logs). */
export const REFUSAL_SENTENCE: Readonly<Record<Refusal, string>> = {
  unsigned:
    'The request is not signed; this clinic must be paired with the main server (clinic-sync clone) first.',
  'unknown-node':
    'The main server does not know this clinic; pair it again with a new code from "clinic-sync pair".',
  signature:
    "The request's signature does not match; this clinic's key for the main server is wrong, so pair it again.",
  time: "The request's time is more than 15 minutes from the main server's clock; ClinicSync corrects this by itself on the next try.",
  replay: 'This request was already received once; the copy was refused.',
};

export const NODE_ID = /^[0-9a-f]{16}$/;
const NONCE = /^[0-9a-f]{32}$/;
const TIME = /^[0-9]{1,16}$/;
const SIGNATURE = /^[0-9a-f]{64}$/;

/** A fresh nonce: 16 random bytes as 32 lowercase hex digits. */
export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

/** A fresh node secret: 32 random bytes. */
export function newNodeSecret(): Buffer {
  return randomBytes(32);
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface RequestParts {
  method: string;
  /** the endpoint's path, e.g. /v1/exchange */
  path: string;
  node: string;
  /** ms since the epoch on the parent's clock, as a decimal string */
  time: string;
  nonce: string;
  /** SHA-256 of the body as sent, hex */
  bodySha256: string;
}

export interface ResponseParts {
  status: number;
  /** the parent's X-ClinicSync-Time header */
  time: string;
  /** the nonce of the request this answers */
  nonce: string;
  bodySha256: string;
}

function hmacHex(secret: Buffer, text: string): string {
  return createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}

export function signRequest(secret: Buffer, p: RequestParts): string {
  return hmacHex(
    secret,
    [
      'clinicsync-request-v1',
      p.method.toUpperCase(),
      p.path,
      p.node,
      p.time,
      p.nonce,
      p.bodySha256,
    ].join('\n'),
  );
}

export function signResponse(secret: Buffer, p: ResponseParts): string {
  return hmacHex(
    secret,
    ['clinicsync-response-v1', String(p.status), p.time, p.nonce, p.bodySha256].join('\n'),
  );
}

/** Compares two hex signatures in constant time; false for anything malformed. */
export function sameSignature(expected: string, given: string | undefined): boolean {
  if (given === undefined || !SIGNATURE.test(given) || !SIGNATURE.test(expected)) return false;
  return timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(given, 'hex'));
}

/** The four headers a signed request carries. */
export function requestHeaders(secret: Buffer, p: RequestParts): Record<string, string> {
  return {
    [HEADER.node]: p.node,
    [HEADER.time]: p.time,
    [HEADER.nonce]: p.nonce,
    [HEADER.signature]: signRequest(secret, p),
  };
}

/** The signed headers of a request, checked only for shape. */
export interface SignedHeaders {
  node: string;
  time: number;
  timeText: string;
  nonce: string;
  signature: string;
}

type HeaderBag = Record<string, string | string[] | undefined>;

function one(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

/** Reads the signed headers, or null where any is missing or malformed. */
export function readSignedHeaders(headers: HeaderBag): SignedHeaders | null {
  const node = one(headers, HEADER.node);
  const time = one(headers, HEADER.time);
  const nonce = one(headers, HEADER.nonce);
  const signature = one(headers, HEADER.signature);
  if (!node || !NODE_ID.test(node)) return null;
  if (!time || !TIME.test(time)) return null;
  if (!nonce || !NONCE.test(nonce)) return null;
  if (!signature || !SIGNATURE.test(signature)) return null;
  return { node, time: Number(time), timeText: time, nonce, signature };
}

/** True when `time` (ms) is within the replay window of `now` (ms). */
export function withinWindow(time: number, now: number, windowMs = TIME_WINDOW_MS): boolean {
  return Math.abs(now - time) <= windowMs;
}

export function headerValue(headers: HeaderBag, name: string): string | undefined {
  return one(headers, name);
}

export function isRefusal(v: string | undefined): v is Refusal {
  return v !== undefined && (REFUSALS as readonly string[]).includes(v);
}
