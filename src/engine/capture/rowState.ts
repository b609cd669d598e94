import type { Queryable } from '../db/pool.js';
import { execute, executePrepared, queryRows } from '../db/pool.js';
import { ihash } from '../identity/identities.js';
import { khash } from './rowSql.js';

/**
 * What the engine last recorded of a row (DESIGN §3, §6): its local key, global identity, a hash
 * per column to tell what changed, and per column the clock and origin of the value it holds
 * (absent: the shared starting value, older than any change).
 */
export interface RowState {
  khash: Buffer;
  lkey: string;
  ident: string | null;
  colset: number;
  hashes: Buffer;
  n: number;
  clocks: Clocks;
}

/** column → "hlc:origin" */
export type Clocks = Record<string, string>;

/**
 * Not a column name: the clock of the latest insert that made this copy of the row (raised also by
 * an update made upon a later copy). With the row's tombstone it decides whether the row exists.
 */
export const CREATED = '@created';

/**
 * Also not column names. `^col`: the clock of the copy the column's value was written upon (its
 * base); absent, the value came with the insert of that clock itself; '' for the starting copy.
 * `~col`: rare, values of the column kept in reserve (JSON of Reserve[]): written upon a later copy
 * than the value shown but with an earlier clock, they take over if a delete ends the shown value's
 * copy (DESIGN §6).
 */
export const baseKey = (col: string): string => `^${col}`;
export const reserveKey = (col: string): string => `~${col}`;

/** The base of a column's value: the clock of the copy of the row it was written upon. */
export function columnBase(clocks: Clocks, col: string): Stamp {
  const b = clocks[baseKey(col)];
  return stampOf(b === undefined ? clocks[col] : b);
}

export interface Stamp {
  hlc: bigint;
  origin: string;
}

export function stampOf(clock: string | undefined): Stamp {
  if (!clock) return { hlc: 0n, origin: '' };
  const [h, o] = clock.split(':');
  return { hlc: BigInt(h!), origin: o ?? '' };
}

export function clockText(s: Stamp): string {
  return `${s.hlc}:${s.origin}`;
}

/** Last writer wins: the later clock, ties broken by node id, the same on every node. */
export function isLater(a: Stamp, b: Stamp): boolean {
  return a.hlc !== b.hlc ? a.hlc > b.hlc : a.origin > b.origin;
}

/**
 * Not a column name either, and only in the stored text: the stamps the row's clocks share. An
 * insert stamps every column alike, so an obs row's clocks held the same 36-character stamp 28
 * times (1.5 KB a row); stored, each stamp is written once and columns give its position.
 */
const STAMPS = '@stamps';

/** The clocks as stored in clinicsync_row (null for none); parseClocks reads them back. */
export function clocksText(clocks: Clocks): string | null {
  const entries = Object.entries(clocks);
  if (!entries.length) return null;
  // The usual case, a row as an insert made it: one stamp throughout (written without a map).
  const first = entries[0]![1];
  if (entries.length > 1 && entries.every(([, v]) => v === first)) {
    let text = `{${JSON.stringify(STAMPS)}:[${JSON.stringify(first)}]`;
    for (const [k] of entries) text += `,${JSON.stringify(k)}:0`;
    return `${text}}`;
  }
  const uses = new Map<string, number>();
  for (const [, v] of entries) uses.set(v, (uses.get(v) ?? 0) + 1);
  const shared = [...uses].filter(([, n]) => n > 1).map(([v]) => v);
  if (!shared.length) return JSON.stringify(clocks);
  const at = new Map(shared.map((v, i) => [v, i]));
  const out: Record<string, string | number | string[]> = { [STAMPS]: shared };
  for (const [k, v] of entries) out[k] = at.get(v) ?? v;
  return JSON.stringify(out);
}

/**
 * The stored clocks of a row whose named columns and creation all carry one stamp, as the text
 * around that stamp's JSON string, so the server can write many such rows with their own stamps:
 * `before + JSON.stringify(stamp) + after` equals clocksText of those clocks.
 */
export function oneStampClocks(columns: string[]): { before: string; after: string } {
  const marker = '\u0001';
  const clocks: Clocks = {};
  for (const col of columns) clocks[col] = marker;
  clocks[CREATED] = marker;
  const text = clocksText(clocks)!;
  const at = text.indexOf(JSON.stringify(marker));
  return { before: text.slice(0, at), after: text.slice(at + JSON.stringify(marker).length) };
}

/** Clocks from their stored text, either form (rows stored before stamps were shared have none). */
export function parseClocks(text: string | null): Clocks {
  if (text === null) return {};
  const raw = JSON.parse(text) as Record<string, string | number | string[]>;
  const shared = Array.isArray(raw[STAMPS]) ? raw[STAMPS] : [];
  const out: Clocks = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === STAMPS) continue;
    out[k] = typeof v === 'number' ? shared[v]! : String(v);
  }
  return out;
}

export async function readStates(
  db: Queryable,
  table: string,
  lkeys: string[],
): Promise<Map<string, RowState>> {
  const out = new Map<string, RowState>();
  const unique = [...new Set(lkeys)];
  for (let i = 0; i < unique.length; i += 500) {
    const part = unique.slice(i, i + 500);
    const rows = await queryRows(
      db,
      `SELECT khash, lkey, ident, colset, hashes, n, clocks FROM clinicsync_row
        WHERE tbl = ? AND khash IN (${part.map(() => '?').join(',')})`,
      [table, ...part.map(khash)],
    );
    for (const r of rows) {
      out.set(String(r.lkey), {
        khash: r.khash as Buffer,
        lkey: String(r.lkey),
        ident: r.ident == null ? null : String(r.ident),
        colset: Number(r.colset),
        hashes: r.hashes as Buffer,
        n: Number(r.n),
        clocks: parseClocks(r.clocks == null ? null : String(r.clocks)),
      });
    }
  }
  return out;
}

export interface StateUpsert {
  tbl: string;
  lkey: string;
  ident: string | null;
  colset: number;
  hashes: Buffer;
  n: number;
  clocks: Clocks;
}

export interface StateWrites {
  deletes: { tbl: string; lkey: string }[];
  upserts: StateUpsert[];
}

/**
 * Forgets first, then records: within one step a key can be forgotten (a row moved away or was
 * deleted) and then taken by another row, never the other way round.
 */
export async function writeStates(db: Queryable, w: StateWrites): Promise<void> {
  for (let i = 0; i < w.deletes.length; i += 500) {
    const part = w.deletes.slice(i, i + 500);
    await execute(
      db,
      `DELETE FROM clinicsync_row WHERE ${part.map(() => '(tbl = ? AND khash = ?)').join(' OR ')}`,
      part.flatMap((d) => [d.tbl, khash(d.lkey)]),
    );
  }
  for (let i = 0; i < w.upserts.length; i += 500) {
    const part = w.upserts.slice(i, i + 500);
    await executePrepared(
      db,
      `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, ihash, colset, hashes, n, clocks)
       VALUES ${part.map(() => '(?,?,?,?,?,?,?,?,?)').join(',')}
       ON DUPLICATE KEY UPDATE lkey = VALUES(lkey), ident = VALUES(ident), ihash = VALUES(ihash),
         colset = VALUES(colset), hashes = VALUES(hashes), n = VALUES(n), clocks = VALUES(clocks)`,
      part.flatMap((u) => [
        u.tbl,
        khash(u.lkey),
        u.lkey,
        u.ident,
        u.ident === null ? null : ihash(u.ident),
        u.colset,
        u.hashes,
        u.n,
        clocksText(u.clocks),
      ]),
    );
  }
}
