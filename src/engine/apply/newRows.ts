import type { PoolConnection } from '../db/pool.js';
import { chunks, executePrepared, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { clockText, oneStampClocks } from '../capture/rowState.js';
import { dataColumns, hashesSql, keySql } from '../capture/rowSql.js';
import type { Value } from '../capture/values.js';
import { ihash, lkeyOf, rowId, type Identities } from '../identity/identities.js';
import { splitParts, type TablePlan } from '../identity/plan.js';
import { fromWire } from '../identity/wire.js';
import type { WireChange } from '../protocol/types.js';
import type { ApplyContext } from './apply.js';
import { keyFromIdent } from './keys.js';
import { mayCollide } from './uniqueKeys.js';
import { transactionLost } from '../node/dbRetry.js';

/**
 * New rows applied together (issue 11): a run of incoming inserts is sorted out with a few
 * queries per table instead of a dozen per change, and the rows that are plainly new (no row and
 * no tombstone here for their identity, every reference already here) go in with multi-row
 * INSERTs, one savepoint per group. Everything else takes the one-change-at-a-time path, which
 * also catches a group the database refuses: its rows are tried again one by one, so one bad row
 * is parked with its own reason and never holds back the others.
 *
 * Order: tables are taken in the order they first appear in the run, so a batch's parents go in
 * before the children that refer to them. A change left to the one-at-a-time path waits for the
 * end of the run; no plain row can need it, because a reference to a row not yet here would have
 * made that row one to leave too. An identity that comes twice in a run is always left, so a
 * row's changes keep their order; so is a new row that may collide with another on a unique key
 * besides its identity (uniqueKeys.ts settles such a case one row at a time, the same way on every
 * node).
 */

/** Tables whose new rows can be grouped: found by uuid or by a natural key. */
export function groupable(plan: TablePlan): boolean {
  return (
    plan.table.primaryKey.length > 0 &&
    (plan.identity.kind === 'uuid' || plan.identity.kind === 'natural')
  );
}

interface NewRow {
  change: WireChange;
  values: Record<string, Value>;
  /** the primary key values, as text, for a natural identity */
  key: string[];
}

const IN_LIST = 500;
/** MariaDB takes at most 65,535 placeholders in one statement. */
const PLACEHOLDERS = 60_000;

/**
 * Applies a run of inserts (each to a groupable table, none waiting behind a parked change).
 * `one` applies a change the ordinary way; the count of rows applied in groups is returned.
 */
export async function applyNewRows(
  ctx: ApplyContext,
  conn: PoolConnection,
  ids: Identities,
  run: WireChange[],
  one: (c: WireChange) => Promise<void>,
): Promise<number> {
  const seen = new Map<string, number>();
  const rowOf = (c: WireChange) => `${c.table}\u0000${c.ident}`;
  for (const c of run) seen.set(rowOf(c), (seen.get(rowOf(c)) ?? 0) + 1);
  const left = new Set<WireChange>();
  const byTable = new Map<string, WireChange[]>();
  for (const c of run) {
    if (seen.get(rowOf(c))! > 1) left.add(c);
    else {
      const list = byTable.get(c.table);
      if (list) list.push(c);
      else byTable.set(c.table, [c]);
    }
  }
  let pending = new Map(
    parentsFirst(ctx.plans, [...byTable.keys()]).map((t) => [t, byTable.get(t)!]),
  );
  const dead = await tombstoned(conn, run);
  let applied = 0;
  // Rows whose references are in the run wait for a later pass (a cycle of tables needs one).
  for (let progress = true; progress && pending.size;) {
    progress = false;
    const waiting = new Map<string, WireChange[]>();
    for (const [table, changes] of pending) {
      const plan = ctx.plans.get(table)!;
      const sorted = await sortOut(conn, ids, plan, changes, dead);
      for (const c of sorted.others) left.add(c);
      if (sorted.waiting.length) waiting.set(table, sorted.waiting);
      for (const group of byColumns(sorted.plain)) {
        progress = true;
        if (await insertGroup(ctx, conn, ids, plan, group)) {
          applied += group.length;
          continue;
        }
        // Refused. Where nothing was looked up first, rows already here are the likely cause:
        // they take the ordinary path, and the others go in together again.
        const { fresh, here } = sorted.looked
          ? { fresh: [], here: group }
          : await split(conn, plan, group);
        if (fresh.length && here.length && (await insertGroup(ctx, conn, ids, plan, fresh)))
          applied += fresh.length;
        else here.push(...fresh);
        for (const r of here) await one(r.change);
      }
    }
    pending = waiting;
  }
  for (const changes of pending.values()) for (const c of changes) left.add(c);
  for (const c of run) if (left.has(c)) await one(c);
  return applied;
}

/** The changes of a run whose rows were deleted here (a tombstone): few queries for the run. */
async function tombstoned(conn: PoolConnection, run: WireChange[]): Promise<Set<WireChange>> {
  const out = new Set<WireChange>();
  for (const part of chunks(run, IN_LIST)) {
    const byRow = new Map<string, WireChange>();
    for (const c of part) byRow.set(rowId(c.table, ihash(c.ident)), c);
    const tables = [...new Set(part.map((c) => c.table))];
    const rows = await queryRows(
      conn,
      `SELECT tbl, ihash FROM clinicsync_tombstone
        WHERE tbl IN (${tables.map(() => '?').join(',')}) AND ihash IN (${part.map(() => '?').join(',')})`,
      [...tables, ...part.map((c) => ihash(c.ident))],
    );
    for (const r of rows) {
      const c = byRow.get(rowId(String(r.tbl), r.ihash as Buffer));
      if (c) out.add(c);
    }
  }
  return out;
}

/** The tables in an order where a table comes after those it refers to (cycles cut anywhere). */
function parentsFirst(plans: Map<string, TablePlan>, tables: string[]): string[] {
  const among = new Set(tables);
  const out: string[] = [];
  const visited = new Set<string>();
  const visit = (table: string) => {
    if (visited.has(table)) return;
    visited.add(table);
    const plan = plans.get(table)!;
    const parents = [...plan.refs.values()];
    if (plan.identity.kind === 'natural')
      for (const p of plan.identity.parts) if (p.ref !== null) parents.push(p.ref);
    for (const p of parents) if (among.has(p)) visit(p);
    out.push(table);
  };
  for (const t of tables) visit(t);
  return out;
}

/**
 * Splits a table's inserts into rows plainly new, rows that refer to a row not here (yet), and the
 * others, with few queries.
 */
async function sortOut(
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  changes: WireChange[],
  dead: Set<WireChange>,
): Promise<{ plain: NewRow[]; waiting: WireChange[]; others: WireChange[]; looked: boolean }> {
  const t = plan.table;
  const others: WireChange[] = [];
  const waiting: WireChange[] = [];
  // Every reference looked up once per referenced table; the answers are kept for what follows.
  const wanted = new Map<string, Set<string>>();
  const want = (table: string, ident: string) =>
    wanted.set(table, (wanted.get(table) ?? new Set()).add(ident));
  const id = plan.identity;
  for (const c of changes) {
    for (const [col, ref] of plan.refs) {
      const v = c.values?.[col];
      if (typeof v === 'string') want(ref, v);
    }
    if (id.kind === 'natural') {
      const parts = splitParts(c.ident, id.parts.length) ?? [];
      id.parts.forEach((p, i) => {
        if (p.ref !== null && parts[i] !== undefined) want(p.ref, parts[i]);
      });
    }
  }
  for (const [table, idents] of wanted) await ids.localIds(table, [...idents]);

  const candidates: NewRow[] = [];
  for (const c of changes) {
    if (dead.has(c) || splitIdent(plan, c.ident) === null) {
      others.push(c);
      continue;
    }
    const local = await fromWire(ids, plan, c.values ?? {});
    const key = await keyFromIdent(ids, plan, c.ident);
    // a reference not here yet: it may come in this run, else the ordinary path parks it
    if (local.missing.length || 'missing' in key) {
      waiting.push(c);
      continue;
    }
    const values: Record<string, Value> = {};
    for (const [col, v] of Object.entries({ ...local.values, ...key.values }))
      if (t.columns.some((x) => x.name === col)) values[col] = v;
    const keyText = id.kind === 'natural' ? t.primaryKey.map((k) => values[k]) : [];
    if (!keyText.every((v) => typeof v === 'string')) {
      others.push(c);
      continue;
    }
    candidates.push({ change: c, values, key: keyText as string[] });
  }
  // Rows already here take the ordinary path, which merges column by column. Where a unique index
  // holds the identity, the database itself refuses such a row, so nothing is looked up first.
  const looked = !identityIndexed(plan);
  const { fresh, here } = looked
    ? await split(conn, plan, candidates)
    : { fresh: candidates, here: [] };
  for (const r of here) others.push(r.change);
  const colliding = await mayCollide(
    conn,
    plan,
    fresh.map((r) => r.values),
  );
  const plain: NewRow[] = [];
  fresh.forEach((r, i) => (colliding.has(i) ? others.push(r.change) : plain.push(r)));
  return { plain, waiting, others, looked };
}

/** True when a unique index of the table holds exactly the columns that identify its rows. */
function identityIndexed(plan: TablePlan): boolean {
  const t = plan.table;
  if (plan.identity.kind === 'natural') return true; // the primary key itself
  return (
    t.uniqueKeys.some((k) => k.columns.length === 1 && k.columns[0] === 'uuid') ||
    (t.primaryKey.length === 1 && t.primaryKey[0] === 'uuid')
  );
}

/**
 * New rows split into those not here and those already here. The match is made loose (letter
 * case) so that any doubt sends a change the ordinary way, which merges column by column.
 */
async function split(
  conn: PoolConnection,
  plan: TablePlan,
  candidates: NewRow[],
): Promise<{ fresh: NewRow[]; here: NewRow[] }> {
  const here = new Set<string>();
  for (const part of chunks(candidates, IN_LIST)) {
    const where = whereRows(plan, part);
    const rows = await queryRows(
      conn,
      `SELECT ${plan.identity.kind === 'uuid' ? 'uuid' : matchSql(plan)} AS m
         FROM ${q(plan.table.name)} WHERE ${where.sql}`,
      where.params,
    );
    for (const r of rows) here.add(String(r.m).toLowerCase());
  }
  const out = { fresh: [] as NewRow[], here: [] as NewRow[] };
  for (const r of candidates)
    (here.has(matchOf(plan, r).toLowerCase()) ? out.here : out.fresh).push(r);
  return out;
}

/** Inserts one group in one savepoint and records its rows; false (nothing kept) if refused. */
async function insertGroup(
  ctx: ApplyContext,
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  group: NewRow[],
): Promise<boolean> {
  const t = plan.table;
  const cols = Object.keys(group[0]!.values).sort();
  await conn.query('SAVEPOINT clinicsync_rows');
  try {
    const one = `(${cols.map(() => '?').join(', ')})`;
    for (const part of chunks(group, Math.floor(PLACEHOLDERS / Math.max(cols.length, 1)))) {
      await executePrepared(
        conn,
        `INSERT INTO ${q(t.name)} (${cols.map(q).join(', ')}) VALUES ${part.map(() => one).join(', ')}`,
        part.flatMap((r) => cols.map((col) => r.values[col] ?? null)),
      );
    }
    await recordNewRows(ctx, conn, plan, group);
    // References to these rows, looked up before they were here, are looked up again.
    if (plan.identity.kind === 'natural' && t.primaryKey.length === 1)
      for (const r of group) ids.learn(t.name, r.change.ident, r.key[0]!);
    else
      ids.unlearn(
        t.name,
        group.map((r) => r.change.ident),
      );
    return true;
  } catch (e) {
    // A deadlock or a lost connection took the whole transaction: the batch is tried again. So
    // does any error that left no savepoint to return to.
    if (transactionLost(e)) throw e;
    // The database refused some row (a unique key, a value too long...): none of the group stays.
    await conn.query('ROLLBACK TO SAVEPOINT clinicsync_rows').catch(() => {
      throw e;
    });
    return false;
  }
}

/**
 * The row state of rows just inserted, written by the server from the rows themselves: their
 * local keys and column hashes are computed where the values are, never read back, and each
 * row's clocks are its change's stamp throughout (the group's rows name the same columns).
 */
async function recordNewRows(
  ctx: ApplyContext,
  conn: PoolConnection,
  plan: TablePlan,
  group: NewRow[],
): Promise<void> {
  const t = plan.table;
  const colset = await ctx.colsets.idFor(t);
  const clocks = oneStampClocks(Object.keys(group[0]!.change.values ?? {}));
  for (const part of chunks(group, IN_LIST)) {
    const list = part.map(() => '?').join(',');
    const where = whereRows(plan, part);
    const res = await executePrepared(
      conn,
      `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, ihash, colset, hashes, n, clocks)
       SELECT ?, UNHEX(MD5(x.k)), x.k, ELT(x.i, ${list}), UNHEX(MD5(ELT(x.i, ${list}))), ?, x.h, 1,
              CONCAT(?, ELT(x.i, ${list}), ?)
         FROM (SELECT ${keySql(t)} AS k, ${hashesSql(dataColumns(t))} AS h,
                      FIELD(${plan.identity.kind === 'uuid' ? 'CAST(uuid AS BINARY)' : keySql(t)}, ${list}) AS i
                 FROM ${q(t.name)} WHERE ${where.sql}) x
        WHERE x.i > 0
       ON DUPLICATE KEY UPDATE lkey = VALUES(lkey), ident = VALUES(ident), ihash = VALUES(ihash),
         colset = VALUES(colset), hashes = VALUES(hashes), n = VALUES(n), clocks = VALUES(clocks)`,
      [
        t.name,
        ...part.map((r) => r.change.ident),
        ...part.map((r) => r.change.ident),
        colset,
        clocks.before,
        ...part.map((r) =>
          JSON.stringify(clockText({ hlc: BigInt(r.change.hlc), origin: r.change.origin })),
        ),
        clocks.after,
        ...part.map((r) =>
          plan.identity.kind === 'uuid' ? r.change.ident : r.key.map(lkeyOf).join(','),
        ),
        ...where.params,
      ],
    );
    // "Records: n" is how many rows the SELECT found: each inserted row, once, matched exactly to
    // its change by its uuid or its local key (column by column, so no two keys read alike); a key
    // the server renders otherwise is missing, and the group goes one by one.
    const found = /Records:\s*(\d+)/.exec(res.info)?.[1];
    if (Number(found) !== part.length)
      throw new Error(`${found ?? '?'} of ${part.length} new rows of ${t.name} were found again`);
  }
}

/**
 * Rows with the same columns, in whatever order they came, which one INSERT can carry and whose
 * clocks name the same columns (those sent, which a value not kept here may add to).
 */
function byColumns(rows: NewRow[]): NewRow[][] {
  const groups = new Map<string, NewRow[]>();
  const names = (o: object) => Object.keys(o).sort().join('\u0000');
  for (const r of rows) {
    const k = `${names(r.values)}\u0001${names(r.change.values ?? {})}`;
    const group = groups.get(k);
    if (group) group.push(r);
    else groups.set(k, [r]);
  }
  return [...groups.values()];
}

function splitIdent(plan: TablePlan, ident: string): string[] | null {
  return plan.identity.kind === 'natural' ? splitParts(ident, plan.identity.parts.length) : [];
}

/** The primary key as one text, the same way in SQL (matchSql) and here (matchOf). */
function matchSql(plan: TablePlan): string {
  const cols = plan.table.primaryKey.map((k) => `CAST(${q(k)} AS CHAR)`);
  return cols.length === 1 ? cols[0]! : `CONCAT_WS('\\n', ${cols.join(', ')})`;
}

function matchOf(plan: TablePlan, r: NewRow): string {
  return plan.identity.kind === 'uuid' ? r.change.ident : r.key.join('\n');
}

/** A WHERE clause finding these rows by their identity: uuid, or primary key for a natural one. */
function whereRows(plan: TablePlan, rows: NewRow[]): { sql: string; params: string[] } {
  if (plan.identity.kind === 'uuid')
    return {
      sql: `uuid IN (${rows.map(() => '?').join(',')})`,
      params: rows.map((r) => r.change.ident),
    };
  const cols = plan.table.primaryKey;
  const one = `(${cols.map(() => '?').join(', ')})`;
  return {
    sql: `(${cols.map(q).join(', ')}) IN (${rows.map(() => one).join(', ')})`,
    params: rows.flatMap((r) => r.key),
  };
}
