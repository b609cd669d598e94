import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
  randomInt,
  scrypt,
} from 'node:crypto';
import fs from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { SyncError } from '../errors.js';

/*
 * A snapshot on a USB key (issue 6, "Offline clone"): the snapshot stream (snapshot.ts) behind
 * the registration of the child it makes, encrypted and authenticated with a key derived from a
 * one-time code of 100 bits that `clinic-sync snapshot` prints and a person types on the child.
 *
 *   CLINICSYNC-SNAPSHOT-FILE 1\n      magic
 *   {"kdf":{…},"segmentBytes":…}\n     header (JSON, in the clear, bound to every segment)
 *   segment*                           [length u32 BE][ciphertext][16-byte GCM tag]
 *
 * The plaintext is cut into segments of `segmentBytes`, each sealed with AES-256-GCM under its
 * own nonce (a random prefix, the segment's number, and a last-segment flag), so each is checked
 * before anything of it is used, and a file cut short or reordered is refused. The plaintext is
 * the registration (u32 BE length, then JSON) followed by the gzip'd snapshot.
 */

const MAGIC = Buffer.from('CLINICSYNC-SNAPSHOT-FILE 1\n', 'ascii');
const FORMAT = 'clinicsync-snapshot-file';
const SEGMENT_BYTES = 64 * 1024;
const TAG_BYTES = 16;
const MAX_HEADER_BYTES = 4096;
/** Crockford's base32: no I, L, O or U. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** 20 characters of 5 bits: 100 bits. */
const CODE_CHARS = 20;
// 32 MiB and a fraction of a second, once per file and side.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

interface FileHeader {
  format: typeof FORMAT;
  version: 1;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  segmentBytes: number;
  noncePrefix: string;
}

/** What a snapshot file registers: the child it makes, and the parent it belongs to. */
export interface FileRegistration {
  child: { nodeId: string; incarnation: string; secret: string };
  parent: { nodeId: string; name: string; incarnation: string; url: string | null };
  /** ISO time the snapshot was taken */
  madeAt: string;
}

/** A new one-time code, like "K7Q2-M9XD-4HRT-B3WN-PZ6F". */
export function newFileCode(): string {
  let s = '';
  for (let i = 0; i < CODE_CHARS; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s.match(/.{4}/g)!.join('-');
}

/** A code as typed, made canonical (case, spaces and dashes ignored; I, L as 1 and O as 0). */
export function normalizeFileCode(code: string): string | null {
  const s = code.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  if (s.length !== CODE_CHARS) return null;
  for (const c of s) if (!ALPHABET.includes(c)) return null;
  return s;
}

function deriveKey(code: string, salt: Buffer): Promise<Buffer> {
  const canonical = normalizeFileCode(code);
  if (canonical === null) {
    return Promise.reject(
      new SyncError(
        'usage',
        'A snapshot code is 20 letters and digits in groups of four, like K7Q2-M9XD-4HRT-B3WN-PZ6F; check what was typed.',
      ),
    );
  }
  return new Promise((resolve, reject) => {
    scrypt(canonical, salt, 32, SCRYPT, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** The sealing side: a new code, its key, and the header to write first. */
export async function newSealing(): Promise<{ code: string; key: Buffer; head: Buffer }> {
  const code = newFileCode();
  const salt = randomBytes(16);
  const header: FileHeader = {
    format: FORMAT,
    version: 1,
    kdf: { name: 'scrypt', N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('base64') },
    cipher: 'aes-256-gcm',
    segmentBytes: SEGMENT_BYTES,
    noncePrefix: randomBytes(7).toString('base64'),
  };
  const head = Buffer.concat([MAGIC, Buffer.from(`${JSON.stringify(header)}\n`, 'utf8')]);
  return { code, key: await deriveKey(code, salt), head };
}

function nonce(prefix: Buffer, counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 7);
  n.writeUInt32BE(counter, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** Encrypts what is written to it into segments; the header must already be written. */
export class SealStream extends Transform {
  private pending: Buffer[] = [];
  private size = 0;
  private counter = 0;
  private readonly prefix: Buffer;
  private readonly aad: Buffer;

  constructor(
    private readonly key: Buffer,
    head: Buffer,
  ) {
    super();
    const header = parseHeader(head);
    this.prefix = Buffer.from(header.noncePrefix, 'base64');
    this.aad = createHash('sha256').update(head).digest();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.pending.push(chunk);
    this.size += chunk.length;
    while (this.size > SEGMENT_BYTES) {
      const all = Buffer.concat(this.pending);
      this.push(this.seal(all.subarray(0, SEGMENT_BYTES), false));
      this.pending = [all.subarray(SEGMENT_BYTES)];
      this.size = all.length - SEGMENT_BYTES;
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.push(this.seal(Buffer.concat(this.pending), true));
    cb();
  }

  private seal(plain: Buffer, last: boolean): Buffer {
    const cipher = createCipheriv(
      'aes-256-gcm',
      this.key,
      nonce(this.prefix, this.counter++, last),
    );
    cipher.setAAD(this.aad);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(plain.length);
    return Buffer.concat([length, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  }
}

function parseHeader(head: Buffer): FileHeader {
  const bad = notASnapshotFile();
  if (!head.subarray(0, MAGIC.length).equals(MAGIC)) throw bad;
  let h: unknown;
  try {
    h = JSON.parse(head.subarray(MAGIC.length).toString('utf8'));
  } catch {
    throw bad;
  }
  const v = h as Partial<FileHeader> | null;
  if (
    v?.format !== FORMAT ||
    v.cipher !== 'aes-256-gcm' ||
    v.kdf?.name !== 'scrypt' ||
    v.segmentBytes !== SEGMENT_BYTES ||
    typeof v.noncePrefix !== 'string' ||
    typeof v.kdf.salt !== 'string'
  ) {
    throw bad;
  }
  if (v.version !== 1) {
    throw new SyncError(
      'protocol',
      'This snapshot file was written by a newer ClinicSync; install the newer version here first.',
    );
  }
  return v as FileHeader;
}

function notASnapshotFile(): SyncError {
  return new SyncError(
    'usage',
    'This file is not a ClinicSync snapshot (made by "clinic-sync snapshot"); check which file was given.',
  );
}

/** Reads a file's header: its bytes (bound into every segment) and where the segments start. */
export async function readFileHead(file: string): Promise<{ head: Buffer; salt: string }> {
  let fd: fs.promises.FileHandle;
  try {
    fd = await fs.promises.open(file, 'r');
  } catch (e) {
    throw new SyncError('usage', `The snapshot file ${file} cannot be read; check its name.`, {
      cause: e,
    });
  }
  try {
    const buf = Buffer.alloc(MAX_HEADER_BYTES);
    const { bytesRead } = await fd.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(10, MAGIC.length);
    if (nl < 0) throw notASnapshotFile();
    const head = Buffer.from(buf.subarray(0, nl + 1));
    return { head, salt: parseHeader(head).kdf.salt };
  } finally {
    await fd.close();
  }
}

/** The key a code gives for a file (the code is checked when the first segment is opened). */
export async function keyFor(code: string, head: Buffer): Promise<Buffer> {
  return deriveKey(code, Buffer.from(parseHeader(head).kdf.salt, 'base64'));
}

/** Decrypts the segments read from after the header; refuses a wrong code, damage and cuts. */
export class OpenStream extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  private counter = 0;
  private ended = false;
  private readonly prefix: Buffer;
  private readonly aad: Buffer;

  constructor(
    private readonly key: Buffer,
    head: Buffer,
  ) {
    super();
    this.prefix = Buffer.from(parseHeader(head).noncePrefix, 'base64');
    this.aad = createHash('sha256').update(head).digest();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      for (;;) {
        if (this.buf.length < 4) break;
        const length = this.buf.readUInt32BE(0);
        if (length > SEGMENT_BYTES) throw damaged();
        const whole = 4 + length + TAG_BYTES;
        if (this.buf.length < whole) break;
        if (this.ended) throw damaged();
        const plain = this.open(
          this.buf.subarray(4, 4 + length),
          this.buf.subarray(4 + length, whole),
        );
        this.buf = this.buf.subarray(whole);
        if (plain.length) this.push(plain);
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    cb(this.ended && !this.buf.length ? null : cutShort());
  }

  private open(data: Buffer, tag: Buffer): Buffer {
    // A segment is the last one exactly when its flag says so; try "not last" first.
    for (const last of [false, true]) {
      try {
        const d = createDecipheriv('aes-256-gcm', this.key, nonce(this.prefix, this.counter, last));
        d.setAAD(this.aad);
        d.setAuthTag(tag);
        const plain = Buffer.concat([d.update(data), d.final()]);
        this.counter++;
        this.ended = last;
        return plain;
      } catch {
        // not this flag
      }
    }
    throw this.counter === 0 ? wrongCode() : damaged();
  }
}

function wrongCode(): SyncError {
  return new SyncError(
    'usage',
    'The code does not open this snapshot file; check the code printed with it (20 letters and digits).',
  );
}

function damaged(): SyncError {
  return new SyncError(
    'protocol',
    'The snapshot file is damaged (it fails its check); copy it from the main server again.',
  );
}

function cutShort(): SyncError {
  return new SyncError(
    'protocol',
    'The snapshot file is incomplete (it was cut short while copying); copy it from the main server again.',
  );
}

/** The plaintext's first part: the registration, length first. */
export function registrationPart(r: FileRegistration): Buffer {
  const json = Buffer.from(JSON.stringify(r), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([length, json]);
}

/**
 * Splits the decrypted plaintext: the registration (resolved as soon as it is read) and the
 * snapshot bytes after it.
 */
export async function* splitPlaintext(
  plain: AsyncIterable<Buffer>,
  onRegistration: (r: FileRegistration) => void,
): AsyncGenerator<Buffer> {
  let head = Buffer.alloc(0);
  let need: number | null = null;
  for await (const chunk of plain) {
    if (need === -1) {
      yield chunk;
      continue;
    }
    head = Buffer.concat([head, chunk]);
    if (need === null && head.length >= 4) {
      need = head.readUInt32BE(0);
      if (need > 1_000_000) throw damaged();
    }
    if (need !== null && head.length >= 4 + need) {
      onRegistration(parseRegistration(head.subarray(4, 4 + need)));
      const rest = head.subarray(4 + need);
      need = -1;
      if (rest.length) yield rest;
    }
  }
  if (need !== -1) throw cutShort();
}

function parseRegistration(b: Buffer): FileRegistration {
  let v: unknown;
  try {
    v = JSON.parse(b.toString('utf8'));
  } catch {
    throw damaged();
  }
  const r = v as FileRegistration | null;
  const hex = (s: unknown, n: number) =>
    typeof s === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(s);
  if (
    !r ||
    !hex(r.child?.nodeId, 16) ||
    !hex(r.child?.incarnation, 8) ||
    !hex(r.child?.secret, 64) ||
    !hex(r.parent?.nodeId, 16) ||
    typeof r.parent?.name !== 'string' ||
    typeof r.parent?.incarnation !== 'string' ||
    !(r.parent.url === null || typeof r.parent.url === 'string') ||
    typeof r.madeAt !== 'string'
  ) {
    throw damaged();
  }
  return r;
}
