import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  randomInt,
  scrypt,
  timingSafeEqual,
} from 'node:crypto';
import type { Pool, PoolConnection } from '../db/pool.js';
import { execute, inTransaction, queryRows } from '../db/pool.js';
import { settingsSchema } from '../config/settings.js';
import { SyncError } from '../errors.js';
import { getMeta } from '../node/meta.js';
import { NODE_ID, newNodeSecret } from './auth.js';

/*
 * Registration (DESIGN §8). The parent shows a one-time code; a person types it on the child.
 * Both sides derive a key from it with scrypt, salted with the parent's node id (the child learns
 * it from GET /v1/hello). The parent keeps only that scrypt hash, never the code. The child proves
 * it knows the code with an HMAC of its request under the key; the parent answers with the
 * child's new node secret encrypted (AES-256-GCM) under the key, so even plain HTTP never shows
 * it, and an eavesdropper would have to search 2^60 codes through scrypt to read it.
 */

/** Crockford's base32: no I, L, O or U, so nothing a person reads is ambiguous. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** 12 characters of 5 bits: 60 bits. */
const CODE_CHARS = 12;

export const DEFAULT_PAIRING_TTL_MINUTES = 60;
export const MAX_PAIRING_TTL_MINUTES = 7 * 24 * 60;
/** Used and expired codes are kept this long so a late attempt hears why it fails. */
const KEEP_OLD_CODES_MS = 7 * 86_400_000;

// scrypt with N = 2^15, r = 8: 32 MiB and a few tens of milliseconds, once per side.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** A new code as shown to the person who gives it to the joining clinic. */
export interface PairingCode {
  /** e.g. "K7Q2-M9XD-4HRT" */
  code: string;
  /** ISO time the code stops working */
  expiresAt: string;
}

/** What a child sends to POST /v1/pair (JSON). */
export interface PairRequest {
  name: string;
  nodeId: string;
  incarnation: string;
}

export interface ParentIdentity {
  nodeId: string;
  name: string;
  incarnation: string;
}

/** What the parent answers to a good pairing (JSON). */
export interface PairAnswer {
  parent: ParentIdentity;
  /** the parent's clock (ms since the epoch) when it answered */
  time: string;
  /** the child's node secret, AES-256-GCM under the code's key; base64 parts */
  secret: { iv: string; data: string; tag: string };
}

/** A one-time code, e.g. "K7Q2-M9XD-4HRT". */
function newCode(): string {
  let s = '';
  for (let i = 0; i < CODE_CHARS; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
}

/**
 * A code as typed, made canonical: case, spaces and dashes ignored, and the letters people
 * confuse read as Crockford says (I and L as 1, O as 0). Null where it cannot be a code.
 */
export function normalizeCode(code: string): string | null {
  const s = code.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  if (s.length !== CODE_CHARS) return null;
  for (const c of s) if (!ALPHABET.includes(c)) return null;
  return s;
}

/** The scrypt hash of a code for one parent: what the parent stores and both sides key with. */
export async function pairingKey(code: string, parentNodeId: string): Promise<Buffer> {
  const canonical = normalizeCode(code);
  if (canonical === null) {
    throw new SyncError(
      'usage',
      'A pairing code is 12 letters and digits, like K7Q2-M9XD-4HRT; check what was typed.',
    );
  }
  return new Promise((resolve, reject) => {
    scrypt(canonical, `clinicsync-pair:${parentNodeId}`, 32, SCRYPT, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function subKey(key: Buffer, purpose: 'proof' | 'secret'): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `clinicsync pair ${purpose}`, 32));
}

/** The child's proof that it knows the code: HMAC of the request body. */
export function pairingProof(key: Buffer, body: Buffer): string {
  return createHmac('sha256', subKey(key, 'proof')).update(body).digest('hex');
}

function proofMatches(key: Buffer, body: Buffer, proof: Buffer): boolean {
  const expected = Buffer.from(pairingProof(key, body), 'hex');
  return proof.length === expected.length && timingSafeEqual(expected, proof);
}

/** Everything the secret's encryption vouches for besides the secret itself. */
function answerAad(parent: ParentIdentity, time: string, child: PairRequest): Buffer {
  return Buffer.from(
    JSON.stringify([
      'clinicsync-pair-v1',
      parent.nodeId,
      parent.name,
      parent.incarnation,
      time,
      child.nodeId,
      child.name,
      child.incarnation,
    ]),
    'utf8',
  );
}

function sealSecret(
  key: Buffer,
  secret: Buffer,
  parent: ParentIdentity,
  time: string,
  child: PairRequest,
): PairAnswer['secret'] {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', subKey(key, 'secret'), iv);
  cipher.setAAD(answerAad(parent, time, child));
  const data = Buffer.concat([cipher.update(secret), cipher.final()]);
  return {
    iv: iv.toString('base64'),
    data: data.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

/** What the child learns from a good pairing answer. */
export interface PairResult {
  parent: ParentIdentity;
  /** the parent's clock when it answered (ms since the epoch) */
  parentTime: number;
  /** the child's node secret, shared with the parent */
  secret: Buffer;
}

/**
 * The child's side: reads the node secret from the parent's answer. Throws SyncError('protocol')
 * where the answer was not made with this code for this request.
 */
export function openPairAnswer(key: Buffer, answer: unknown, child: PairRequest): PairResult {
  const unverifiable = new SyncError(
    'protocol',
    "The main server's answer to the pairing could not be verified; check its address and the code, and try again.",
  );
  if (!isPairAnswer(answer)) throw unverifiable;
  let secret: Buffer;
  try {
    const decipher = createDecipheriv(
      'aes-256-gcm',
      subKey(key, 'secret'),
      Buffer.from(answer.secret.iv, 'base64'),
    );
    decipher.setAAD(answerAad(answer.parent, answer.time, child));
    decipher.setAuthTag(Buffer.from(answer.secret.tag, 'base64'));
    secret = Buffer.concat([
      decipher.update(Buffer.from(answer.secret.data, 'base64')),
      decipher.final(),
    ]);
  } catch {
    throw unverifiable;
  }
  if (secret.length !== 32) throw unverifiable;
  const { nodeId, name, incarnation } = answer.parent;
  return { parent: { nodeId, name, incarnation }, parentTime: Number(answer.time), secret };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPairAnswer(v: unknown): v is PairAnswer {
  if (!isRecord(v) || !isRecord(v.parent) || !isRecord(v.secret)) return false;
  const p = v.parent;
  const s = v.secret;
  return (
    typeof p.nodeId === 'string' &&
    NODE_ID.test(p.nodeId) &&
    typeof p.name === 'string' &&
    typeof p.incarnation === 'string' &&
    typeof v.time === 'string' &&
    /^[0-9]{1,16}$/.test(v.time) &&
    typeof s.iv === 'string' &&
    typeof s.data === 'string' &&
    typeof s.tag === 'string'
  );
}

function sqlTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

function msOf(sql: unknown): number {
  return Date.parse(`${String(sql).replace(' ', 'T')}Z`);
}

/**
 * Makes a one-time pairing code valid for `ttlMinutes` and stores only its scrypt hash (salted
 * with this node's id). Needs no node lock: it only writes one row.
 */
export async function createPairingCode(
  pool: Pool,
  ttlMinutes = DEFAULT_PAIRING_TTL_MINUTES,
): Promise<PairingCode> {
  if (!Number.isInteger(ttlMinutes) || ttlMinutes < 1 || ttlMinutes > MAX_PAIRING_TTL_MINUTES) {
    throw new SyncError(
      'usage',
      `A pairing code lasts a whole number of minutes from 1 to ${MAX_PAIRING_TTL_MINUTES}, not ${ttlMinutes}.`,
    );
  }
  const nodeId = await getMeta(pool, 'node_id');
  if (!nodeId) throw new SyncError('state', 'This database is not a ClinicSync node.');
  const now = Date.now();
  await execute(pool, 'DELETE FROM clinicsync_pairing WHERE expires_at < ?', [
    sqlTime(now - KEEP_OLD_CODES_MS),
  ]);
  const expires = now + ttlMinutes * 60_000;
  for (;;) {
    const code = newCode();
    const key = await pairingKey(code, nodeId);
    try {
      await execute(pool, 'INSERT INTO clinicsync_pairing (code_hash, expires_at) VALUES (?, ?)', [
        key,
        sqlTime(expires),
      ]);
      // The column keeps whole seconds: the code stops at the second shown.
      return { code, expiresAt: new Date(Math.floor(expires / 1000) * 1000).toISOString() };
    } catch (e) {
      // A repeated code (one chance in 2^60 per code held): draw another.
      if ((e as { code?: string }).code !== 'ER_DUP_ENTRY') throw e;
    }
  }
}

/** The parent's verdict on one pairing request. */
export type PairingOutcome =
  | { ok: true; answer: PairAnswer; child: PairRequest }
  | { ok: false; status: 400 | 401 | 409; sentence: string };

const ASK_AGAIN = 'ask the main server for a new one with "clinic-sync pair"';

/** Checks the shape of a pairing request body; null where it is not one. */
export function parsePairRequest(body: Buffer): PairRequest | null {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (!isRecord(v)) return null;
  const { name, nodeId, incarnation } = v;
  if (typeof name !== 'string' || !settingsSchema.shape.name.safeParse(name).success) return null;
  if (typeof nodeId !== 'string' || !NODE_ID.test(nodeId)) return null;
  if (typeof incarnation !== 'string' || !/^[0-9a-f]{8}$/.test(incarnation)) return null;
  return { name, nodeId, incarnation };
}

/**
 * The parent's side of POST /v1/pair: checks the proof against every code it holds, and for an
 * unexpired unused one makes the child (relation 'child', a fresh secret) and marks the code used,
 * in one transaction. Wrong, expired and used codes change nothing.
 */
export async function acceptPairing(
  pool: Pool,
  parent: ParentIdentity,
  body: Buffer,
  proofHex: string | undefined,
  now = Date.now(),
): Promise<PairingOutcome> {
  const child = parsePairRequest(body);
  if (!child) {
    return {
      ok: false,
      status: 400,
      sentence:
        'The pairing request is not valid: it needs a clinic name (1 to 40 letters, digits, spaces, dots, dashes or underscores), a node id and an incarnation.',
    };
  }
  const proof = proofHex && /^[0-9a-f]{64}$/.test(proofHex) ? Buffer.from(proofHex, 'hex') : null;
  if (!proof) {
    return {
      ok: false,
      status: 401,
      sentence: `The pairing request carries no proof of a code; ${ASK_AGAIN}.`,
    };
  }
  return inTransaction(pool, async (conn) => {
    const rows = await queryRows(
      conn,
      'SELECT code_hash, expires_at, used_at, used_by FROM clinicsync_pairing FOR UPDATE',
    );
    const row = rows.find((r) => proofMatches(r.code_hash as Buffer, body, proof));
    if (!row) {
      return {
        ok: false,
        status: 401,
        sentence: `The pairing code is wrong; check it, or ${ASK_AGAIN}.`,
      } as const;
    }
    if (row.used_at != null) {
      return {
        ok: false,
        status: 401,
        sentence: `This pairing code has already been used; ${ASK_AGAIN}.`,
      } as const;
    }
    if (msOf(row.expires_at) <= now) {
      return {
        ok: false,
        status: 401,
        sentence: `This pairing code has expired; ${ASK_AGAIN}.`,
      } as const;
    }
    const conflict = await nameOrIdConflict(conn, parent, child);
    if (conflict) return { ok: false, status: 409, sentence: conflict } as const;

    const secret = newNodeSecret();
    await execute(
      conn,
      `INSERT INTO clinicsync_peer (node_id, name, relation, incarnation, url, secret)
       VALUES (?, ?, 'child', ?, NULL, ?)
       ON DUPLICATE KEY UPDATE name = VALUES(name), incarnation = VALUES(incarnation), secret = VALUES(secret)`,
      [child.nodeId, child.name, child.incarnation, secret],
    );
    await execute(
      conn,
      'UPDATE clinicsync_pairing SET used_at = ?, used_by = ? WHERE code_hash = ?',
      [sqlTime(now), child.nodeId, row.code_hash],
    );
    const time = String(now);
    const answer: PairAnswer = {
      parent,
      time,
      secret: sealSecret(row.code_hash as Buffer, secret, parent, time, child),
    };
    return { ok: true, answer, child } as const;
  });
}

/** A sentence where the name or the node id cannot be this child's under this parent. */
async function nameOrIdConflict(
  conn: PoolConnection,
  parent: ParentIdentity,
  child: PairRequest,
): Promise<string | null> {
  if (child.nodeId === parent.nodeId) {
    return 'The joining clinic has the same node id as the main server; make it again with "clinic-sync clone".';
  }
  const [named] = await queryRows(
    conn,
    "SELECT node_id FROM clinicsync_peer WHERE relation = 'child' AND name = ? AND node_id <> ?",
    [child.name, child.nodeId],
  );
  if (named) {
    return `The name "${child.name}" is already used by another clinic under this server; choose another name.`;
  }
  const [same] = await queryRows(conn, 'SELECT relation FROM clinicsync_peer WHERE node_id = ?', [
    child.nodeId,
  ]);
  if (same && same.relation !== 'child') {
    return 'The joining clinic has the node id of this server\'s own parent; make it again with "clinic-sync clone".';
  }
  return null;
}
