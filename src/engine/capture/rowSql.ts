import { createHash } from 'node:crypto';
import { q } from '../db/ident.js';
import type { Column, Table } from '../db/schema.js';

/**
 * SQL fragments that describe a row the same way in triggers, in the initial baseline and at
 * pickup, so the three always agree byte for byte.
 *
 * A local key is the hex of each key column's value as the server renders it, joined by commas:
 * hex keeps separators out of the data and works for every type on MySQL 5.6 (no JSON functions).
 */

/** Columns the engine reads and writes: generated columns are derived, never synced. */
export function dataColumns(t: Table): Column[] {
  return t.columns.filter((c) => !c.generated);
}

/** True when rows are located by primary key; otherwise by their whole image. */
export function hasKey(t: Table): boolean {
  return t.primaryKey.length > 0;
}

function ref(prefix: string, col: string): string {
  return prefix ? `${prefix}.${q(col)}` : q(col);
}

export function keySql(t: Table, prefix = ''): string {
  const cols = hasKey(t) ? t.primaryKey : dataColumns(t).map((c) => c.name);
  // A keyless table's image must tell NULL from '' and from the text "NULL".
  const parts = cols.map((c) =>
    hasKey(t)
      ? `HEX(CAST(${ref(prefix, c)} AS BINARY))`
      : `IFNULL(HEX(CAST(${ref(prefix, c)} AS BINARY)), '-')`,
  );
  return `CONCAT_WS(',', ${parts.join(', ')})`;
}

/** 4 bytes of CRC32 per column, in the order of `cols`. */
export function hashesSql(cols: Column[], prefix = ''): string {
  if (!cols.length) return "''";
  const parts = cols.map(
    (c) =>
      `LPAD(HEX(CRC32(IF(${ref(prefix, c.name)} IS NULL, '', CONCAT('=', CAST(${ref(prefix, c.name)} AS BINARY))))), 8, '0')`,
  );
  return `UNHEX(CONCAT(${parts.join(', ')}))`;
}

export function khash(lkey: string): Buffer {
  return createHash('md5').update(lkey, 'latin1').digest();
}

const CHARSET = /^[a-z0-9_]+$/;

/**
 * A text expression in a column's character set and collation, so it compares as the column's
 * own values do (and by its index); null for a column without them, or with names not plain.
 */
export function inColumnCollation(col: Column, expr: string): string | null {
  if (!col.charset || !col.collation || !CHARSET.test(col.charset) || !CHARSET.test(col.collation))
    return null;
  return `CONVERT(${expr} USING ${col.charset}) COLLATE ${col.collation}`;
}

/**
 * A WHERE clause matching one row by its encoded key, with its parameters. Text keys are turned
 * back into text on the server, in the column's own character set and collation, so the primary
 * key index is used and no character set is guessed in JavaScript.
 */
export function whereKey(t: Table, lkey: string): { sql: string; params: string[] } {
  const hex = lkey.split(',');
  const conds: string[] = [];
  const params: string[] = [];
  t.primaryKey.forEach((name, i) => {
    const col = t.columns.find((c) => c.name === name)!;
    const h = hex[i] ?? '';
    const converted = inColumnCollation(col, 'UNHEX(?)');
    if (col.binary) {
      conds.push(`${q(name)} = UNHEX(?)`);
      params.push(h);
    } else if (converted !== null) {
      conds.push(`${q(name)} = ${converted}`);
      params.push(h);
    } else {
      // numbers, dates and times render as ASCII
      conds.push(`${q(name)} = ?`);
      params.push(Buffer.from(h, 'hex').toString('latin1'));
    }
  });
  return { sql: conds.join(' AND '), params };
}
