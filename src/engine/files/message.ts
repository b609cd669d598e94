import { z } from 'zod';
import { SyncError } from '../errors.js';
import { isSafeFileName } from './fileName.js';

/*
 * One message of the complex obs file exchange (docs/protocol.md, "Complex obs files"): what the
 * sender offers, how far the sender holds what the receiver offered, and pieces of files. Binary,
 * so a piece costs its own bytes on a slow link and not a third more as base64 would:
 *
 *   "CSF1", a 4-byte big-endian header length, the header as UTF-8 JSON, then the pieces' bytes
 *   one after another in the header's order.
 */

const MAGIC = Buffer.from('CSF1', 'ascii');
const MAX_HEADER_BYTES = 1024 * 1024;
/** Most entries of each list in one message: far more than one batch carries. */
export const MAX_ENTRIES = 10_000;

const SHA256 = z.string().regex(/^[0-9a-f]{64}$/);
const NAME = z.string().refine(isSafeFileName);
const OFFSET = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const offerSchema = z
  .object({
    obs: z.string().regex(/^[A-Za-z0-9-]{1,38}$/),
    name: NAME,
    size: OFFSET,
    sha256: SHA256,
  })
  .strict();

const haveSchema = z
  .object({ name: NAME, sha256: SHA256, offset: OFFSET, done: z.boolean() })
  .strict();

const chunkSchema = z
  .object({ name: NAME, sha256: SHA256, offset: OFFSET, length: z.number().int().min(1) })
  .strict();

const headerSchema = z
  .object({
    offers: z.array(offerSchema).max(MAX_ENTRIES),
    have: z.array(haveSchema).max(MAX_ENTRIES),
    chunks: z.array(chunkSchema).max(MAX_ENTRIES),
  })
  .strict();

/** A file the sender holds for a complex obs, offered to the receiver. */
export type FileOffer = z.output<typeof offerSchema>;
/**
 * The receiver's word on a file the other side offered: send from `offset` on, or nothing more
 * (`done`: it is here, or it is refused and never wanted).
 */
export type FileHave = z.output<typeof haveSchema>;
export interface FileChunk {
  name: string;
  sha256: string;
  offset: number;
  data: Buffer;
}

export interface FileMessage {
  offers: FileOffer[];
  have: FileHave[];
  chunks: FileChunk[];
}

export function emptyMessage(): FileMessage {
  return { offers: [], have: [], chunks: [] };
}

/** True when the message carries nothing the other side would act upon. */
export function isEmptyMessage(m: FileMessage): boolean {
  return !m.offers.length && !m.have.length && !m.chunks.length;
}

/** The most a piece's entry adds to the header (its JSON with a 255-character name). */
export const PIECE_HEADER_BYTES = 420;

/** The bytes a message's header takes, for fitting pieces into a budget. */
export function headerBytes(m: Omit<FileMessage, 'chunks'>, chunks: number): number {
  return (
    8 +
    Buffer.byteLength(JSON.stringify({ offers: m.offers, have: m.have })) +
    chunks * PIECE_HEADER_BYTES
  );
}

export function encodeFileMessage(m: FileMessage): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      offers: m.offers,
      have: m.have,
      chunks: m.chunks.map((c) => ({
        name: c.name,
        sha256: c.sha256,
        offset: c.offset,
        length: c.data.length,
      })),
    }),
    'utf8',
  );
  const len = Buffer.alloc(4);
  len.writeUInt32BE(header.length);
  return Buffer.concat([MAGIC, len, header, ...m.chunks.map((c) => c.data)]);
}

function unreadable(why: string): never {
  throw new SyncError('protocol', `The complex obs file message ${why}; nothing of it was used.`);
}

/** Reads a message; a damaged or hostile one is refused whole in one plain sentence. */
export function decodeFileMessage(body: Buffer): FileMessage {
  if (body.length < 8 || !body.subarray(0, 4).equals(MAGIC)) unreadable('is not one');
  const n = body.readUInt32BE(4);
  if (n > MAX_HEADER_BYTES) unreadable('has a header larger than 1 MB');
  if (8 + n > body.length) unreadable('is cut short');
  let raw: unknown;
  try {
    raw = JSON.parse(body.subarray(8, 8 + n).toString('utf8'));
  } catch {
    unreadable('has a damaged header');
  }
  const parsed = headerSchema.safeParse(raw);
  if (!parsed.success) {
    unreadable('names a file wrongly (an unsafe file name, a bad size, offset or fingerprint)');
  }
  const h = parsed.data;
  let at = 8 + n;
  const chunks: FileChunk[] = [];
  for (const c of h.chunks) {
    if (at + c.length > body.length) unreadable('is cut short');
    chunks.push({
      name: c.name,
      sha256: c.sha256,
      offset: c.offset,
      data: body.subarray(at, at + c.length),
    });
    at += c.length;
  }
  if (at !== body.length) unreadable('has bytes beyond its pieces');
  return { offers: h.offers, have: h.have, chunks };
}
