import type { PoolConnection } from '../db/pool.js';
import { queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { writeStates, type StateUpsert } from '../capture/rowState.js';
import { dataColumns, keySql } from '../capture/rowSql.js';
import type { Identities } from '../identity/identities.js';
import { imageIdent, type TablePlan } from '../identity/plan.js';
import { toWire, warmRefs } from '../identity/wire.js';
import type { ApplyContext } from './apply.js';

/**
 * After received changes touched a keyless table, its recorded multiset is read afresh so the next
 * pickup sees only what the application does. These tables are small mapping tables.
 */
export async function refreshWholeTable(
  conn: PoolConnection,
  ctx: ApplyContext,
  ids: Identities,
  plan: TablePlan,
): Promise<void> {
  const t = plan.table;
  const colset = await ctx.colsets.idFor(t);
  const rows = await queryRows(
    conn,
    `SELECT ${dataColumns(t)
      .map((c) => q(c.name))
      .join(', ')}, ${keySql(t)} AS __k FROM ${q(t.name)}`,
  );
  await warmRefs(ids, plan, rows);
  const images = new Map<string, StateUpsert>();
  for (const r of rows) {
    const k = String(r.__k);
    const seen = images.get(k);
    if (seen) {
      seen.n++;
      continue;
    }
    const wire = await toWire(ids, plan, r);
    const ident = imageIdent(plan, wire);
    images.set(k, {
      tbl: t.name,
      lkey: k,
      ident,
      colset,
      hashes: Buffer.alloc(0),
      n: 1,
      clocks: {},
    });
  }
  const recorded = await queryRows(conn, 'SELECT lkey FROM clinicsync_row WHERE tbl = ?', [t.name]);
  await writeStates(conn, {
    deletes: recorded
      .map((r) => String(r.lkey))
      .filter((k) => !images.has(k))
      .map((lkey) => ({ tbl: t.name, lkey })),
    upserts: [...images.values()],
  });
}
