import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { Identities } from '../identity/identities.js';
import { imageIdent, type TablePlan } from '../identity/plan.js';
import { toWire, warmRefs } from '../identity/wire.js';
import type { Colsets } from './colsets.js';
import { dataColumns, hasKey, hashesSql, keySql } from './rowSql.js';

/**
 * Records the current state of every row of a table without logging anything: the common starting
 * point that a root and all its clones share (at init), or the new starting point after an upgrade
 * (at `capture resume`). Keys and hashes are computed on the server in one statement; identities
 * too where SQL can say them (uuid, a single surrogate key), else here. Rows already recorded keep
 * their identity and clocks; rows no longer there are forgotten. `rootId` names the node that
 * rows first seen here are attributed to (registry identities).
 */
export async function baselineTable(
  db: Queryable,
  plan: TablePlan,
  plans: Map<string, TablePlan>,
  colsets: Colsets,
  rootId: string,
): Promise<void> {
  const t = plan.table;
  const colset = await colsets.idFor(t);
  // n = 0 marks "not seen"; every row still there sets it again, the rest is forgotten below.
  await execute(db, 'UPDATE clinicsync_row SET n = 0 WHERE tbl = ?', [t.name]);
  const id = plan.identity;
  let identSql = 'NULL';
  if (id.kind === 'uuid') identSql = 'CAST(`uuid` AS CHAR CHARACTER SET utf8mb4)';
  else if (id.kind === 'registry' && id.key.length === 1) {
    identSql = `CONCAT(${db.escape(rootId + ':')}, CAST(${q(id.key[0]!)} AS CHAR CHARACTER SET utf8mb4))`;
  }
  if (hasKey(t)) {
    await execute(
      db,
      `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, ihash, colset, hashes, n)
       SELECT ?, UNHEX(MD5(x.k)), x.k, x.u, IF(x.u IS NULL, NULL, UNHEX(MD5(x.u))), ?, x.h, 1
         FROM (SELECT ${keySql(t)} AS k, ${identSql} AS u, ${hashesSql(dataColumns(t))} AS h FROM ${q(t.name)}) x
       ON DUPLICATE KEY UPDATE colset = VALUES(colset), hashes = VALUES(hashes), n = 1,
         ident = COALESCE(clinicsync_row.ident, VALUES(ident)), ihash = COALESCE(clinicsync_row.ihash, VALUES(ihash))`,
      [t.name, colset],
    );
  } else {
    await execute(
      db,
      `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, colset, hashes, n)
       SELECT ?, UNHEX(MD5(x.k)), x.k, NULL, ?, '', COUNT(*)
         FROM (SELECT ${keySql(t)} AS k FROM ${q(t.name)}) x GROUP BY x.k
       ON DUPLICATE KEY UPDATE colset = VALUES(colset), n = VALUES(n)`,
      [t.name, colset],
    );
  }
  await execute(db, 'DELETE FROM clinicsync_row WHERE tbl = ? AND n = 0', [t.name]);
  await fillIdents(db, plan, plans, rootId);
}

/** Identities SQL could not say (natural keys, whole rows) are worked out row by row. */
async function fillIdents(
  db: Queryable,
  plan: TablePlan,
  plans: Map<string, TablePlan>,
  rootId: string,
): Promise<void> {
  const t = plan.table;
  const [missing] = await queryRows(
    db,
    'SELECT COUNT(*) AS n FROM clinicsync_row WHERE tbl = ? AND ident IS NULL',
    [t.name],
  );
  if (!Number(missing!.n)) return;
  const ids = new Identities(db, plans, rootId);
  const rows = await queryRows(
    db,
    `SELECT ${dataColumns(t)
      .map((c) => q(c.name))
      .join(', ')}, ${keySql(t)} AS __k FROM ${q(t.name)}`,
  );
  await warmRefs(ids, plan, rows);
  const updates: unknown[][] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    const lkey = String(r.__k);
    if (seen.has(lkey)) continue;
    seen.add(lkey);
    let ident: string;
    if (plan.identity.kind === 'image') {
      const wire = await toWire(ids, plan, r);
      ident = imageIdent(plan, wire);
    } else ident = await ids.identOf(plan, r, null);
    updates.push([t.name, lkey, ident, ident]);
  }
  for (let i = 0; i < updates.length; i += 500) {
    const part = updates.slice(i, i + 500);
    // Every row was recorded above; this only sets identities (the insert half never runs).
    await execute(
      db,
      `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, ihash, colset, hashes)
       VALUES ${part.map(() => "(?, UNHEX(MD5(?)), '', ?, UNHEX(MD5(?)), 0, '')").join(',')}
       ON DUPLICATE KEY UPDATE ident = COALESCE(clinicsync_row.ident, VALUES(ident)),
         ihash = COALESCE(clinicsync_row.ihash, VALUES(ihash))`,
      part.flat(),
    );
  }
}
