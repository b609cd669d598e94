import { fromStored, type StoredValue, type Value } from '../capture/values.js';
import { q } from '../db/ident.js';

/*
 * A range of a table's primary key, (after, upTo], as SQL: the part of a table one chunk of a
 * snapshot covers. Both sides of a resumed clone use it: the parent to read a chunk again and
 * see whether it changed, the child to delete a chunk it is about to replace.
 */

export interface KeyColumn {
  name: string;
  /** information_schema DATA_TYPE, lower case */
  dataType: string;
  unsigned: boolean;
}

const INTEGER = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'year']);

/**
 * A placeholder that compares as the column does: key values travel as text, and an integer
 * column compared with text would be compared as a double (wrong beyond 2^53).
 */
function placeholder(c: KeyColumn): string {
  if (INTEGER.has(c.dataType)) return c.unsigned ? 'CAST(? AS UNSIGNED)' : 'CAST(? AS SIGNED)';
  if (c.dataType === 'decimal') return 'CAST(? AS DECIMAL(65,30))';
  return '?';
}

/** `key > values`, lexicographically over the key's columns. */
function after(cols: KeyColumn[], values: Value[]): { sql: string; params: Value[] } {
  const ors: string[] = [];
  const params: Value[] = [];
  for (let i = 0; i < cols.length; i++) {
    const ands = cols.slice(0, i).map((c) => `${q(c.name)} = ${placeholder(c)}`);
    ands.push(`${q(cols[i]!.name)} > ${placeholder(cols[i]!)}`);
    ors.push(`(${ands.join(' AND ')})`);
    params.push(...values.slice(0, i + 1));
  }
  return { sql: `(${ors.join(' OR ')})`, params };
}

/** `key <= values`: not (key > values). */
function upTo(cols: KeyColumn[], values: Value[]): { sql: string; params: Value[] } {
  const gt = after(cols, values);
  return { sql: `NOT ${gt.sql}`, params: gt.params };
}

/**
 * The WHERE condition for keys in (afterKey, upToKey]; either end may be open (null). Values are
 * as a snapshot carries them (text, or bytes as base64).
 */
export function keyRangeSql(
  cols: KeyColumn[],
  afterKey: StoredValue[] | null,
  upToKey: StoredValue[] | null,
): { sql: string; params: Value[] } {
  const parts: string[] = [];
  const params: Value[] = [];
  for (const [key, make] of [
    [afterKey, after],
    [upToKey, upTo],
  ] as const) {
    if (!key) continue;
    const p = make(cols, key.map(fromStored));
    parts.push(p.sql);
    params.push(...p.params);
  }
  return { sql: parts.length ? parts.join(' AND ') : '1 = 1', params };
}

/** The same key, compared value by value (a chunk's end as recorded and as sent again). */
export function sameKey(a: StoredValue[] | null, b: StoredValue[] | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
