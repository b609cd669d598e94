import {
  createCipheriv,
  createDecipheriv,
  hkdfSync,
  randomBytes,
  type CipherGCM,
  type DecipherGCM,
} from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SyncError, isSyncError } from '../errors.js';

/*
 * The layout of a transfer file (issue 7, DESIGN §5 and §8): a header anyone can read (who wrote
 * the file, for whom, when), then the batches, sealed with AES-256-GCM under a key only the two
 * nodes hold.
 *
 *   "CSYNCUSB"  format (1 byte)  header length (4 bytes, big-endian)  header (JSON, UTF-8)
 *   ciphertext  GCM tag (16 bytes)  "CSYNCEND"
 *
 * Everything before the ciphertext is the GCM's additional authenticated data, so the header
 * (writer, recipient, creation time, format) cannot be changed without the tag failing. The key
 * is derived with HKDF-SHA256 from the node secret the pair shares since registration, salted per
 * file and bound to the direction (writer → recipient), so a file's key is never reused and a
 * file cannot be passed off as one written the other way. The end marker tells a file cut short
 * (a key pulled out while writing) from one that was changed.
 *
 * Inside, the plaintext is a run of frames: a 4-byte big-endian length, then one gzipped protocol
 * envelope exactly as the network carries it (src/engine/protocol/xml.ts).
 */

export const TRANSFER_FORMAT = 1;
export const TRANSFER_EXTENSION = '.csync';
/**
 * The largest transfer file written or read. A file is read whole before anything of it is
 * applied, so this bounds the memory a load needs; a larger backlog goes in several round trips.
 */
export const TRANSFER_MAX_BYTES = 512 * 1024 * 1024;
const MAGIC = Buffer.from('CSYNCUSB', 'latin1');
const END = Buffer.from('CSYNCEND', 'latin1');
const TAG_BYTES = 16;
const PREFIX_BYTES = MAGIC.length + 1 + 4;
const MAX_HEADER_BYTES = 16 * 1024;
const NODE_ID = /^[0-9a-f]{16}$/;
const INCARNATION = /^[0-9a-f]{8}$/;

/** Who wrote a file, for whom, and when: readable without the key, vouched for by it. */
export interface TransferHeader {
  from: { node: string; name: string; incarnation: string };
  to: { node: string; name: string };
  /** ISO time the writer's clock showed when it wrote the file */
  created: string;
  /** HKDF salt (16 bytes) and GCM nonce (12 bytes), base64 */
  salt: string;
  iv: string;
}

function fileKey(secret: Buffer, h: TransferHeader): Buffer {
  return Buffer.from(
    hkdfSync(
      'sha256',
      secret,
      Buffer.from(h.salt, 'base64'),
      `clinicsync transfer v${TRANSFER_FORMAT} ${h.from.node}>${h.to.node}`,
      32,
    ),
  );
}

function prefixOf(headerJson: Buffer): Buffer {
  const p = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(p, 0);
  p.writeUInt8(TRANSFER_FORMAT, MAGIC.length);
  p.writeUInt32BE(headerJson.length, MAGIC.length + 1);
  return Buffer.concat([p, headerJson]);
}

/** Seals frames as they come; `head` first, then each `frame`, then `end`. */
export class Sealer {
  readonly head: Buffer;
  private readonly cipher: CipherGCM;

  constructor(secret: Buffer, header: Omit<TransferHeader, 'salt' | 'iv'>) {
    const full: TransferHeader = {
      ...header,
      salt: randomBytes(16).toString('base64'),
      iv: randomBytes(12).toString('base64'),
    };
    this.head = prefixOf(Buffer.from(JSON.stringify(full), 'utf8'));
    this.cipher = createCipheriv(
      'aes-256-gcm',
      fileKey(secret, full),
      Buffer.from(full.iv, 'base64'),
    );
    this.cipher.setAAD(this.head);
  }

  /** The sealed bytes of one frame (its length, then the gzipped envelope). */
  frame(body: Buffer): Buffer {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([this.cipher.update(len), this.cipher.update(body)]);
  }

  end(): Buffer {
    return Buffer.concat([this.cipher.final(), this.cipher.getAuthTag(), END]);
  }
}

/** The bytes a frame adds to the file, for checking free space before it is written. */
export function sealedFrameBytes(body: Buffer): number {
  return 4 + body.length;
}

/** What the file's end adds. */
export const SEAL_END_BYTES = TAG_BYTES + END.length;

/** A file split into its parts, the header read but not yet trusted. */
export interface OpenedFile {
  header: TransferHeader;
  aad: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/**
 * Reads the parts of a transfer file. `name` is how the file is named in sentences. Refuses, in
 * plain words, a file that is not a transfer file, one cut short, and one whose header is damaged.
 */
export function splitFile(bytes: Buffer, name: string): OpenedFile {
  if (bytes.length < MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new SyncError(
      'protocol',
      `${name} is not a ClinicSync transfer file (or its beginning is damaged); nothing was applied.`,
    );
  }
  if (bytes.length < PREFIX_BYTES) throw cutShort(name);
  const format = bytes.readUInt8(MAGIC.length);
  if (format !== TRANSFER_FORMAT) {
    throw new SyncError(
      'protocol',
      format > TRANSFER_FORMAT
        ? `${name} was written by a newer version of ClinicSync (file format ${format}); upgrade ClinicSync on this computer, then load it again. Nothing was applied.`
        : `${name} is in a file format (${format}) this version of ClinicSync no longer reads; write a new file. Nothing was applied.`,
    );
  }
  const headerBytes = bytes.readUInt32BE(MAGIC.length + 1);
  if (headerBytes > MAX_HEADER_BYTES) throw damaged(name);
  const bodyStart = PREFIX_BYTES + headerBytes;
  if (bytes.length < bodyStart + SEAL_END_BYTES || !bytes.subarray(-END.length).equals(END)) {
    throw cutShort(name);
  }
  const header = readHeader(bytes.subarray(PREFIX_BYTES, bodyStart));
  if (!header) throw damaged(name);
  return {
    header,
    aad: bytes.subarray(0, bodyStart),
    ciphertext: bytes.subarray(bodyStart, bytes.length - SEAL_END_BYTES),
    tag: bytes.subarray(bytes.length - SEAL_END_BYTES, bytes.length - END.length),
  };
}

/** Just the header, for listing files on a key without opening them; null when unreadable. */
export function peekHeader(start: Buffer): TransferHeader | null {
  if (start.length < PREFIX_BYTES || !start.subarray(0, MAGIC.length).equals(MAGIC)) return null;
  if (start.readUInt8(MAGIC.length) !== TRANSFER_FORMAT) return null;
  const n = start.readUInt32BE(MAGIC.length + 1);
  if (n > MAX_HEADER_BYTES || start.length < PREFIX_BYTES + n) return null;
  return readHeader(start.subarray(PREFIX_BYTES, PREFIX_BYTES + n));
}

/** How many bytes of a file peekHeader needs at most. */
export const PEEK_BYTES = PREFIX_BYTES + MAX_HEADER_BYTES;

/** Decrypts and checks the whole file; refuses a file changed after it was written. */
export function unseal(file: OpenedFile, secret: Buffer, name: string): Buffer {
  let decipher: DecipherGCM;
  try {
    decipher = createDecipheriv(
      'aes-256-gcm',
      fileKey(secret, file.header),
      Buffer.from(file.header.iv, 'base64'),
    );
    decipher.setAAD(file.aad);
    decipher.setAuthTag(file.tag);
    return Buffer.concat([decipher.update(file.ciphertext), decipher.final()]);
  } catch (e) {
    throw new SyncError(
      'protocol',
      `${name} does not open with the key this computer shares with ${file.header.from.name}: it was changed or damaged after it was written, or written before the two were paired again. Nothing was applied; write a new file on ${file.header.from.name}.`,
      { cause: e },
    );
  }
}

/** The frames of an unsealed file, in order. */
export function* frames(plain: Buffer, name: string): Generator<Buffer> {
  let at = 0;
  while (at < plain.length) {
    if (at + 4 > plain.length) throw unreadable(name);
    const n = plain.readUInt32BE(at);
    if (at + 4 + n > plain.length) throw unreadable(name);
    yield plain.subarray(at + 4, at + 4 + n);
    at += 4 + n;
  }
}

function readHeader(json: Buffer): TransferHeader | null {
  let v: unknown;
  try {
    v = JSON.parse(json.toString('utf8'));
  } catch {
    return null;
  }
  if (!isRecord(v) || !isRecord(v.from) || !isRecord(v.to)) return null;
  const { from, to, created, salt, iv } = v;
  const ok =
    typeof from.node === 'string' &&
    NODE_ID.test(from.node) &&
    typeof from.name === 'string' &&
    typeof from.incarnation === 'string' &&
    INCARNATION.test(from.incarnation) &&
    typeof to.node === 'string' &&
    NODE_ID.test(to.node) &&
    typeof to.name === 'string' &&
    typeof created === 'string' &&
    !Number.isNaN(Date.parse(created)) &&
    typeof salt === 'string' &&
    Buffer.from(salt, 'base64').length === 16 &&
    typeof iv === 'string' &&
    Buffer.from(iv, 'base64').length === 12;
  if (!ok) return null;
  return {
    from: {
      node: from.node as string,
      name: from.name as string,
      incarnation: from.incarnation as string,
    },
    to: { node: to.node as string, name: to.name as string },
    created: created as string,
    salt: salt as string,
    iv: iv as string,
  };
}

function cutShort(name: string): SyncError {
  return new SyncError(
    'protocol',
    `${name} is incomplete: it was cut short, perhaps when the USB key was pulled out too early. Nothing was applied; copy it again, or write a new one.`,
  );
}

function damaged(name: string): SyncError {
  return new SyncError(
    'protocol',
    `${name} is damaged (its header cannot be read); nothing was applied. Write a new file.`,
  );
}

function unreadable(name: string): SyncError {
  return new SyncError(
    'protocol',
    `${name} opened but its contents cannot be read; nothing was applied. Write a new file.`,
  );
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A transfer file (or the files file beside it) read whole, with a plain sentence for a missing
 * one, a folder, or one larger than any ClinicSync writes (never read into memory).
 */
export async function readSealedFile(file: string): Promise<Buffer> {
  const fail = (e: unknown) => {
    const code = (e as { code?: unknown }).code;
    return new SyncError(
      code === 'ENOENT' || code === 'EISDIR' ? 'usage' : 'state',
      code === 'ENOENT'
        ? `There is no file ${file}; check the USB key is plugged in and the name is right.`
        : code === 'EISDIR'
          ? `${file} is a folder; give the transfer file inside it.`
          : `The file ${file} cannot be read (${e instanceof Error ? e.message : String(e)}).`,
      { cause: e },
    );
  };
  try {
    const info = await fs.stat(file);
    if (info.isDirectory()) throw Object.assign(new Error('a folder'), { code: 'EISDIR' });
    if (info.size > TRANSFER_MAX_BYTES) {
      throw new SyncError(
        'protocol',
        `The file ${path.basename(file)} is larger than ${TRANSFER_MAX_BYTES / 1024 / 1024} MB, more than any transfer file ClinicSync writes; nothing of it was taken.`,
      );
    }
    return await fs.readFile(file);
  } catch (e) {
    throw isSyncError(e) ? e : fail(e);
  }
}
