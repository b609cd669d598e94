import type { Queryable } from '../../src/engine/db/pool.js';
import { queryRows } from '../../src/engine/db/pool.js';
import type { StoredValue } from '../../src/engine/capture/values.js';

export interface LoggedChange {
  seq: number;
  tbl: string;
  op: 'I' | 'U' | 'D';
  lkey: string | null;
  oldLkey: string | null;
  ident: string | null;
  payload: Record<string, StoredValue> | null;
}

/** The outgoing log in sequence order, optionally only past `afterSeq`. */
export async function readLog(db: Queryable, afterSeq = 0): Promise<LoggedChange[]> {
  const rows = await queryRows(
    db,
    'SELECT seq, tbl, op, lkey, old_lkey, ident, payload FROM clinicsync_log WHERE seq > ? ORDER BY seq',
    [afterSeq],
  );
  return rows.map((r) => ({
    seq: Number(r.seq),
    tbl: String(r.tbl),
    op: r.op as LoggedChange['op'],
    lkey: r.lkey == null ? null : String(r.lkey),
    oldLkey: r.old_lkey == null ? null : String(r.old_lkey),
    ident: r.ident == null ? null : String(r.ident),
    payload:
      r.payload == null ? null : (JSON.parse(String(r.payload)) as Record<string, StoredValue>),
  }));
}

export async function lastSeq(db: Queryable): Promise<number> {
  const [r] = await queryRows(db, 'SELECT COALESCE(MAX(seq), 0) AS s FROM clinicsync_log');
  return Number(r!.s);
}

/** Hex of text as a trigger encodes one key column. */
export function hexKey(...parts: (string | number)[]): string {
  return parts.map((p) => Buffer.from(String(p), 'utf8').toString('hex').toUpperCase()).join(',');
}
