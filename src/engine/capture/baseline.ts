import type { Queryable } from '../db/pool.js';
import { execute } from '../db/pool.js';
import { q } from '../db/ident.js';
import type { Table } from '../db/schema.js';
import type { Colsets } from './colsets.js';
import { dataColumns, hasKey, hashesSql, keySql } from './rowSql.js';

/**
 * Records the current state of every row of a table without logging anything: the common starting
 * point that a root and all its clones share. Runs on the server in one statement per table.
 */
export async function baselineTable(db: Queryable, t: Table, colsets: Colsets): Promise<void> {
  const colset = await colsets.idFor(db, t);
  await execute(db, 'DELETE FROM clinicsync_row WHERE tbl = ?', [t.name]);
  if (hasKey(t)) {
    const uuid = t.columns.some((c) => c.name === 'uuid') ? 'CAST(`uuid` AS CHAR)' : 'NULL';
    await execute(
      db,
      `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, colset, hashes, n)
       SELECT ?, UNHEX(MD5(x.k)), x.k, x.u, ?, x.h, 1
         FROM (SELECT ${keySql(t)} AS k, ${uuid} AS u, ${hashesSql(dataColumns(t))} AS h FROM ${q(t.name)}) x`,
      [t.name, colset],
    );
  } else {
    await execute(
      db,
      `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, colset, hashes, n)
       SELECT ?, UNHEX(MD5(x.k)), x.k, NULL, ?, '', COUNT(*)
         FROM (SELECT ${keySql(t)} AS k FROM ${q(t.name)}) x GROUP BY x.k`,
      [t.name, colset],
    );
  }
}
