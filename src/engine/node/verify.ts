import { createHash } from 'node:crypto';
import type { Queryable } from '../db/pool.js';
import { queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { dataColumns, keySql } from '../capture/rowSql.js';
import { Identities } from '../identity/identities.js';
import type { TablePlan } from '../identity/plan.js';
import { toWire, warmRefs } from '../identity/wire.js';

/**
 * What `verify` compares (DESIGN §10): every synced row by global identity, its values in wire
 * form (foreign keys as identities, local ids left out), so two nodes agree exactly when their
 * digests do, whatever their local ids.
 */
export interface TableDigest {
  rows: number;
  /** order-independent: the sum of the rows' hashes, modulo 2^128 */
  digest: string;
}

const MOD = 1n << 128n;

function rowHash(ident: string, wire: Record<string, unknown>, columns: string[]): bigint {
  const h = createHash('sha256');
  h.update(ident).update('\u0000');
  for (const c of columns) h.update(JSON.stringify(wire[c] ?? null)).update('\u0001');
  return BigInt('0x' + h.digest('hex').slice(0, 32));
}

/** Each row of a table by identity, with its hash. */
export async function rowDigests(
  db: Queryable,
  plan: TablePlan,
  plans: Map<string, TablePlan>,
  nodeId: string,
): Promise<Map<string, string>> {
  const t = plan.table;
  const ids = new Identities(db, plans, nodeId);
  const rows = await queryRows(
    db,
    `SELECT ${dataColumns(t)
      .map((c) => q(c.name))
      .join(', ')}, ${keySql(t)} AS __k FROM ${q(t.name)}`,
  );
  await warmRefs(ids, plan, rows);
  const recorded = new Map<string, string>();
  if (plan.identity.kind === 'registry') {
    for (const r of await queryRows(db, 'SELECT lkey, ident FROM clinicsync_row WHERE tbl = ?', [
      t.name,
    ])) {
      if (r.ident != null) recorded.set(String(r.lkey), String(r.ident));
    }
  }
  const columns = [...plan.wireColumns].sort();
  const sums = new Map<string, bigint>();
  for (const r of rows) {
    const wire = await toWire(ids, plan, r);
    const ident =
      plan.identity.kind === 'image'
        ? JSON.stringify(plan.wireColumns.map((c) => wire[c] ?? null))
        : await ids.identOf(plan, r, recorded.get(String(r.__k)) ?? null);
    // a keyless table may hold the same image twice: the copies add up
    sums.set(ident, ((sums.get(ident) ?? 0n) + rowHash(ident, wire, columns)) % MOD);
  }
  return new Map([...sums].map(([ident, h]) => [ident, h.toString(16)]));
}

export function digestOf(rows: Map<string, string>): TableDigest {
  let sum = 0n;
  for (const h of rows.values()) sum = (sum + BigInt('0x' + h)) % MOD;
  return { rows: rows.size, digest: sum.toString(16) };
}
