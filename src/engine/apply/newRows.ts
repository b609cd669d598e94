import type { PoolConnection } from '../db/pool.js';
import { chunks, executePrepared, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { clockText, writeStates, CREATED, type Clocks } from '../capture/rowState.js';
import { dataColumns, hashesSql, keySql } from '../capture/rowSql.js';
import type { Value } from '../capture/values.js';
import { ihash, rowId, type Identities } from '../identity/identities.js';
import { splitParts, type TablePlan } from '../identity/plan.js';
import { fromWire } from '../identity/wire.js';
import type { WireChange } from '../protocol/types.js';
import type { ApplyContext } from './apply.js';
import { keyFromIdent } from './keys.js';
import { mayCollide } from './uniqueKeys.js';

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
        if (await insertGroup(ctx, conn, ids, plan, group)) applied += group.length;
        else for (const r of group) await one(r.change);
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
): Promise<{ plain: NewRow[]; waiting: WireChange[]; others: WireChange[] }> {
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
  // Rows already here take the ordinary path, which merges column by column. The match is made
  // loose (letter case) so that any doubt sends a change that way.
  const here = new Set<string>();
  for (const part of chunks(candidates, IN_LIST)) {
    const rows =
      id.kind === 'uuid'
        ? await queryRows(
            conn,
            `SELECT uuid AS m FROM ${q(t.name)} WHERE uuid IN (${part.map(() => '?').join(',')})`,
            part.map((r) => r.change.ident),
          )
        : await queryRows(
            conn,
            `SELECT ${matchSql(plan)} AS m FROM ${q(t.name)} WHERE ${keyInSql(plan, part.length)}`,
            part.flatMap((r) => r.key),
          );
    for (const r of rows) here.add(String(r.m).toLowerCase());
  }
  const fresh: NewRow[] = [];
  for (const r of candidates) {
    if (here.has(matchOf(plan, r).toLowerCase())) others.push(r.change);
    else fresh.push(r);
  }
  const colliding = await mayCollide(
    conn,
    plan,
    fresh.map((r) => r.values),
  );
  const plain: NewRow[] = [];
  fresh.forEach((r, i) => (colliding.has(i) ? others.push(r.change) : plain.push(r)));
  return { plain, waiting, others };
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
  const cols = Object.keys(group[0]!.values);
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
    // What the server made of each row: its local key, column hashes, and key value.
    const made = new Map<string, { k: string; h: Buffer; v: string }>();
    const pk = t.primaryKey[0]!;
    for (const part of chunks(group, IN_LIST)) {
      const where =
        plan.identity.kind === 'uuid'
          ? {
              sql: `uuid IN (${part.map(() => '?').join(',')})`,
              params: part.map((r) => r.change.ident),
            }
          : { sql: keyInSql(plan, part.length), params: part.flatMap((r) => r.key) };
      const rows = await queryRows(
        conn,
        `SELECT ${keySql(t)} AS k, ${hashesSql(dataColumns(t))} AS h, CAST(${q(pk)} AS CHAR) AS v,
                ${plan.identity.kind === 'uuid' ? 'uuid' : matchSql(plan)} AS m
           FROM ${q(t.name)} WHERE ${where.sql}`,
        where.params,
      );
      for (const r of rows)
        made.set(String(r.m), { k: String(r.k), h: r.h as Buffer, v: String(r.v) });
    }
    const colset = await ctx.colsets.idFor(conn, t);
    const upserts = group.map((r) => {
      const row = made.get(matchOf(plan, r));
      if (!row) throw new Error(`a new row of ${t.name} was not found again`);
      const stamp = clockText({ hlc: BigInt(r.change.hlc), origin: r.change.origin });
      const clocks: Clocks = {};
      for (const col of Object.keys(r.change.values ?? {})) clocks[col] = stamp;
      clocks[CREATED] = stamp;
      return {
        tbl: t.name,
        lkey: row.k,
        ident: r.change.ident,
        colset,
        hashes: row.h,
        n: 1,
        clocks,
      };
    });
    await writeStates(conn, { deletes: [], upserts });
    if (t.primaryKey.length === 1)
      for (const r of group) ids.learn(t.name, r.change.ident, made.get(matchOf(plan, r))!.v);
    return true;
  } catch {
    // The database refused some row (a unique key, a value too long...): none of the group stays.
    await conn.query('ROLLBACK TO SAVEPOINT clinicsync_rows');
    return false;
  }
}

/** Rows with the same columns, which one INSERT can carry. */
function byColumns(rows: NewRow[]): NewRow[][] {
  const groups = new Map<string, NewRow[]>();
  for (const r of rows) {
    const k = Object.keys(r.values).join('\u0000');
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

function keyInSql(plan: TablePlan, rows: number): string {
  const cols = plan.table.primaryKey;
  const one = `(${cols.map(() => '?').join(', ')})`;
  return `(${cols.map(q).join(', ')}) IN (${Array.from({ length: rows }, () => one).join(', ')})`;
}
