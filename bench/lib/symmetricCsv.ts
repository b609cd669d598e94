import { gzipSync } from 'node:zlib';
import { q } from '../../src/engine/db/ident.js';
import { queryRows, type Queryable } from '../../src/engine/db/pool.js';
import { KEY, type MixEvent, type MixTable } from './mix.js';

/*
 * The wire baseline: the same rows as a SymmetricDS batch in its documented CSV protocol
 * ("Data Format" in the SymmetricDS user guide): a batch header (nodeid, channel, binary, batch),
 * then per table a `table` line, its `keys` and `columns` (once per batch), and one line per
 * event: `insert` with every column, `update` with every column followed by the old key, then
 * `commit`. Values are double-quoted with backslash escapes; a null is an empty, unquoted field.
 * The whole batch is gzipped, as SymmetricDS compresses its HTTP transport.
 */

export interface CsvBaseline {
  csvBytes: number;
  gzipBytes: number;
}

export async function symmetricCsv(db: Queryable, events: MixEvent[]): Promise<CsvBaseline> {
  const columns = new Map<MixTable, string[]>();
  const rows = new Map<string, Record<string, unknown>>();
  const byTable = new Map<MixTable, Set<number>>();
  for (const e of events) {
    let s = byTable.get(e.table);
    if (!s) byTable.set(e.table, (s = new Set()));
    s.add(e.id);
  }
  for (const [table, ids] of byTable) {
    const all = [...ids];
    for (let i = 0; i < all.length; i += 1000) {
      const part = all.slice(i, i + 1000);
      const got = await queryRows(
        db,
        `SELECT * FROM ${q(table)} WHERE ${q(KEY[table])} IN (${part.map(() => '?').join(', ')})`,
        part,
      );
      for (const r of got) {
        if (!columns.has(table)) columns.set(table, Object.keys(r));
        rows.set(`${table}:${String(r[KEY[table]])}`, r);
      }
    }
  }
  const lines = ['nodeid,centre', 'channel,default', 'binary,BASE64', 'batch,1001'];
  const declared = new Set<MixTable>();
  let current: MixTable | null = null;
  for (const e of events) {
    const row = rows.get(`${e.table}:${e.id}`);
    if (!row) throw new Error(`${e.table} ${e.id} is not in the database`);
    const cols = columns.get(e.table)!;
    if (current !== e.table) {
      current = e.table;
      lines.push(`table,${e.table}`);
      if (!declared.has(e.table)) {
        declared.add(e.table);
        lines.push(`keys,${KEY[e.table]}`, `columns,${cols.join(',')}`);
      }
    }
    const values = cols.map((c) => field(row[c]));
    if (e.op === 'insert') lines.push(`insert,${values.join(',')}`);
    else lines.push(`update,${values.join(',')},${field(row[KEY[e.table]])}`);
  }
  lines.push('commit,1001');
  const csv = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
  return { csvBytes: csv.length, gzipBytes: gzipSync(csv).length };
}

function field(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s: string;
  if (v instanceof Date) s = v.toISOString().replace('T', ' ').replace('Z', '');
  else if (Buffer.isBuffer(v)) s = v.toString('base64');
  else s = String(v);
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
