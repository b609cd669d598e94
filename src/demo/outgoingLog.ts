import type { Queryable } from '../engine/db/pool.js';
import { queryRows } from '../engine/db/pool.js';

/** One entry of a node's outgoing log (clinicsync_log) as the demo shows it: no values. */
export interface OutgoingEntry {
  seq: number;
  table: string;
  op: 'I' | 'U' | 'D';
  /** the row's local key, decoded from the log's hex form (e.g. "7" for obs_id 7) */
  key: string;
  /** the row's uuid where the table has one */
  uuid: string | null;
  /** the columns the entry carries: every column of an insert, the changed ones of an update */
  columns: string[];
}

export async function readOutgoingLog(db: Queryable): Promise<OutgoingEntry[]> {
  const rows = await queryRows(
    db,
    'SELECT seq, tbl, op, lkey, ident, payload FROM clinicsync_log ORDER BY origin, seq',
  );
  return rows.map((r) => ({
    seq: Number(r.seq),
    table: String(r.tbl),
    op: String(r.op) as OutgoingEntry['op'],
    key: decodeKey(r.lkey == null ? '' : String(r.lkey)),
    uuid: r.ident == null ? null : String(r.ident),
    columns:
      r.payload == null
        ? []
        : Object.keys(JSON.parse(String(r.payload)) as Record<string, unknown>),
  }));
}

/** The capture triggers write each key column's text as hex, comma-separated. */
export function decodeKey(lkey: string): string {
  if (lkey === '') return '';
  return lkey
    .split(',')
    .map((part) => Buffer.from(part, 'hex').toString('utf8'))
    .join(',');
}

const OPS = { I: 'insert', U: 'update', D: 'delete' } as const;

/** A small table: seq, table, op, identity, columns (listed for updates, counted for inserts). */
export function formatLog(entries: OutgoingEntry[]): string[] {
  const cells = entries.map((e) => [
    String(e.seq),
    e.table,
    OPS[e.op],
    e.uuid ?? `key ${e.key}`,
    e.op === 'U' ? e.columns.join(', ') : e.op === 'I' ? `all ${e.columns.length} columns` : '',
  ]);
  const header = ['seq', 'table', 'op', 'identity', 'columns'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === 0 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...cells.map(line)].map((l) => `  ${l}`);
}
