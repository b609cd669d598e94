import type { Pool, PoolConnection } from '../db/pool.js';
import { execute, executePrepared, inTransaction, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { SyncError } from '../errors.js';
import { hlcMillis, hlcNext } from '../clock/hlc.js';
import type { Colsets } from '../capture/colsets.js';
import { changedColumns, currentRows } from '../capture/pickup.js';
import {
  clockText,
  isLater,
  readStates,
  reserveKey,
  stampOf,
  writeStates,
  CREATED,
  type Clocks,
  type Stamp,
} from '../capture/rowState.js';
import { raiseTombstone, readTombstone } from '../capture/tombstones.js';
import { dataColumns, hasKey, hashesSql, keySql, whereKey } from '../capture/rowSql.js';
import { fromDriver, toStored, type StoredValue } from '../capture/values.js';
import { Identities, ihash, rowId } from '../identity/identities.js';
import type { TablePlan } from '../identity/plan.js';
import { fromWire } from '../identity/wire.js';
import type { Basis, Envelope, WireChange } from '../protocol/types.js';
import { recordConflict } from './conflicts.js';
import {
  alive,
  choose,
  record,
  reservesOf,
  sameStamp,
  shownOf,
  type Candidate,
} from './resolve.js';
import { refreshWholeTable } from './whole.js';
import { keyFromIdent } from './keys.js';
import { applyNewRows, groupable } from './newRows.js';
import { PeerShapes } from './shapes.js';
import { settleUniqueKeys } from './uniqueKeys.js';
import { transactionLost } from '../node/dbRetry.js';

/**
 * Applying received changes (DESIGN §4–6). One batch is one transaction: each change enters this
 * node's log whatever happens to it, the version vector advances, and the change is applied,
 * parked, or (filtered out here) only kept to pass on. One change that cannot be applied never
 * holds back the ones behind it: it is parked, inside a savepoint, and retried when what it waits
 * for arrives.
 */

export interface ApplyContext {
  pool: Pool;
  plans: Map<string, TablePlan>;
  colsets: Colsets;
  nodeId: string;
  /** tables this node applies (the others are kept in the log and passed on) */
  selected: (table: string) => boolean;
  /**
   * The skew guard (DESIGN §6): a change from the node that sent it (this node is its origin's
   * parent) stamped more than `aheadMs` past `nowMs` is given an effective clock here, which every
   * later node sees: its stamp less how far the sender's clock runs ahead (`senderAheadMs`, from
   * the envelope's time), and never later than now, so a fast clock cannot win by being fast.
   */
  clock: { nowMs: number; aheadMs: number; senderAheadMs: number };
}

export interface ApplyResult {
  received: number;
  applied: number;
  /** already held: delivered before, by this or another route */
  duplicates: number;
  /** changes waiting here after this batch, from this batch and earlier ones */
  parked: number;
  filtered: number;
  conflicts: number;
  /** the highest clock seen in the batch */
  maxHlc: bigint;
  /** effective clocks given to the sender's own changes, by sequence, to tell it */
  fixes: Record<string, string>;
}

type Wait = { table: string; ident: string } | null;

type Outcome =
  | { kind: 'applied'; conflicts: number }
  | { kind: 'ignored' }
  /** nothing of it applied: it waits */
  | { kind: 'park'; reason: string; wait: Wait }
  /** applied but for references that are not here yet (a cycle): it waits to fill them in */
  | { kind: 'partial'; reason: string; wait: Wait };

const park = (reason: string, wait: Wait = null): Outcome => ({
  kind: 'park',
  reason,
  wait,
});

export async function applyEnvelope(
  ctx: ApplyContext,
  env: Envelope,
  fromPeer: string,
): Promise<ApplyResult> {
  return inTransaction(
    ctx.pool,
    async (conn) => {
      await conn.query('SET @clinicsync_applying = 1');
      try {
        return await applyIn(ctx, conn, env, fromPeer);
      } finally {
        await conn.query('SET @clinicsync_applying = NULL');
      }
    },
    { isolation: 'READ COMMITTED' },
  );
}

async function applyIn(
  ctx: ApplyContext,
  conn: PoolConnection,
  env: Envelope,
  fromPeer: string,
): Promise<ApplyResult> {
  const result: ApplyResult = {
    received: env.changes.length,
    applied: 0,
    duplicates: 0,
    parked: 0,
    filtered: 0,
    conflicts: 0,
    maxHlc: 0n,
    fixes: {},
  };
  const vv = new Map<string, bigint>();
  for (const r of await queryRows(conn, 'SELECT origin, seq FROM clinicsync_vv FOR UPDATE')) {
    vv.set(String(r.origin), BigInt(String(r.seq)));
  }
  const shapes = await PeerShapes.record(
    conn,
    (t) => ctx.plans.get(t)?.table.fingerprint,
    env,
    fromPeer,
  );
  const queued = new Set(
    (await queryRows(conn, 'SELECT tbl, ihash FROM clinicsync_parked')).map((r) =>
      rowId(String(r.tbl), r.ihash as Buffer),
    ),
  );
  const ids = new Identities(conn, ctx.plans, ctx.nodeId);
  const wholeTouched = new Set<string>();
  const advanced = new Set<string>();
  const logRows: (string | null)[][] = [];

  const applyChange = async (c: WireChange, plan: TablePlan): Promise<void> => {
    const outcome = shapes.differs(c.table, fromPeer)
      ? park(await shapes.reason([c.table], fromPeer))
      : queued.has(rowId(c.table, ihash(c.ident)))
        ? park('An earlier change to this row is still waiting.', {
            table: c.table,
            ident: c.ident,
          })
        : await attempt(ctx, conn, ids, plan, c);
    if (outcome.kind === 'park' || outcome.kind === 'partial') {
      await parkChange(conn, c, outcome);
      queued.add(rowId(c.table, ihash(c.ident)));
    } else if (outcome.kind === 'applied') {
      result.applied++;
      result.conflicts += outcome.conflicts;
      if (!hasKey(plan.table)) wholeTouched.add(c.table);
    }
  };
  let run: WireChange[] = [];
  const applyRun = async (): Promise<void> => {
    if (!run.length) return;
    const changes = run;
    run = [];
    // (read into a constant first: applyChange counts its own changes meanwhile)
    const grouped = await applyNewRows(ctx, conn, ids, changes, (c) =>
      applyChange(c, ctx.plans.get(c.table)!),
    );
    result.applied += grouped;
  };

  let effective = 0n;
  const { nowMs, aheadMs, senderAheadMs } = ctx.clock;
  for (const sent of env.changes) {
    let c = sent;
    const seq = BigInt(c.seq);
    const have = vv.get(c.origin) ?? 0n;
    const stampedMs = hlcMillis(BigInt(c.hlc));
    const ahead = c.origin === fromPeer && stampedMs > nowMs + aheadMs;
    if (seq <= have) {
      result.duplicates++;
      // a resent change judged before: the sender may not have heard the verdict
      if (ahead) await rememberFix(conn, c, result.fixes);
      continue;
    }
    // Each origin's changes arrive in order; a gap means a lost part, resent next time.
    if (seq !== have + 1n) continue;
    if (ahead) {
      const shift = senderAheadMs > aheadMs ? senderAheadMs : 0;
      effective = hlcNext(effective, Math.min(nowMs, stampedMs - shift));
      c = { ...c, hlc: effective.toString(), ...clampBasis(c, effective) };
      result.fixes[c.seq] = c.hlc;
    }
    vv.set(c.origin, seq);
    advanced.add(c.origin);
    const hlc = BigInt(c.hlc);
    if (hlc > result.maxHlc) result.maxHlc = hlc;
    logRows.push([
      c.origin,
      c.seq,
      c.hlc,
      c.table,
      c.op,
      c.ident || null,
      c.oldIdent ?? null,
      c.values ? JSON.stringify(c.values) : null,
      c.basis ? JSON.stringify(c.basis) : null,
      fromPeer,
    ]);
    if (c.op === 'S') continue;
    const plan = ctx.plans.get(c.table);
    if (!plan || !ctx.selected(c.table)) {
      result.filtered++;
      continue;
    }
    // New rows wait in a run, to go in together (newRows.ts) before whatever change comes next.
    if (
      c.op === 'I' &&
      groupable(plan) &&
      !shapes.differs(c.table, fromPeer) &&
      !queued.has(rowId(c.table, ihash(c.ident)))
    ) {
      run.push(c);
      continue;
    }
    await applyRun();
    await applyChange(c, plan);
  }
  await applyRun();
  // The log first: parked changes refer to their log rows.
  for (let i = 0; i < logRows.length; i += 200) {
    const part = logRows.slice(i, i + 200);
    await executePrepared(
      conn,
      `INSERT INTO clinicsync_log (origin, seq, hlc, tbl, op, ident, old_ident, payload, basis, src) VALUES ${part.map(() => '(?,?,?,?,?,?,?,?,?,?)').join(',')}`,
      part.flat(),
    );
  }
  // `queued` holds every parked row, from before and from this batch: none, nothing to retry.
  if (queued.size) {
    const retried = await retryParked(ctx, conn, ids, shapes);
    result.applied += retried.applied;
    result.parked = Number(
      (await queryRows(conn, 'SELECT COUNT(*) AS n FROM clinicsync_parked'))[0]!.n,
    );
    result.conflicts += retried.conflicts;
    for (const t of retried.whole) wholeTouched.add(t);
  }
  for (const t of wholeTouched) await refreshWholeTable(conn, ctx, ids, ctx.plans.get(t)!);
  for (const origin of advanced) {
    await execute(
      conn,
      'INSERT INTO clinicsync_vv (origin, seq) VALUES (?, ?) ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))',
      [origin, vv.get(origin)!.toString()],
    );
  }
  return result;
}

async function rememberFix(
  conn: PoolConnection,
  c: WireChange,
  fixes: Record<string, string>,
): Promise<void> {
  const [held] = await queryRows(
    conn,
    'SELECT hlc FROM clinicsync_log WHERE origin = ? AND seq = ?',
    [c.origin, c.seq],
  );
  if (held && String(held.hlc) !== c.hlc) fixes[c.seq] = String(held.hlc);
}

/**
 * A change judged ahead may rest on earlier changes of its origin that were judged ahead too: its
 * basis cannot be later than its own effective clock, so the same clamp holds on every node.
 */
function clampBasis(c: WireChange, effective: bigint): { basis?: Basis } {
  if (!c.basis) return {};
  const clamp = (s: string | undefined) => {
    if (s === undefined) return undefined;
    const st = stampOf(s);
    return st.origin === c.origin && st.hlc > effective
      ? clockText({ hlc: effective, origin: st.origin })
      : s;
  };
  const basis: Basis = {};
  const base = clamp(c.basis.base);
  if (base !== undefined) basis.base = base;
  if (c.basis.prior)
    basis.prior = Object.fromEntries(
      Object.entries(c.basis.prior).map(([col, s]) => [col, clamp(s)!]),
    );
  return { basis };
}

/** Applies one change inside a savepoint; a database error parks it with the reason. */
async function attempt(
  ctx: ApplyContext,
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  c: WireChange,
): Promise<Outcome> {
  await conn.query('SAVEPOINT clinicsync_change');
  try {
    const outcome = await applyOne(ctx, conn, ids, plan, c);
    if (outcome.kind === 'park') await conn.query('ROLLBACK TO SAVEPOINT clinicsync_change');
    if (outcome.kind === 'partial') ids.forget();
    return outcome;
  } catch (e) {
    // A deadlock or a lost connection took the whole transaction: the batch is tried again. So
    // does any error that left no savepoint to return to.
    if (transactionLost(e)) throw e;
    await conn.query('ROLLBACK TO SAVEPOINT clinicsync_change').catch(() => {
      throw e;
    });
    ids.forget();
    return park(explainApplyError(e, c.table));
  }
}

function explainApplyError(e: unknown, table: string): string {
  const err = e as { code?: string; sqlMessage?: string; message?: string };
  switch (err.code) {
    case 'ER_DUP_ENTRY':
      return `Another row of ${table} here already has the same value of a unique key (${(err.sqlMessage ?? '').slice(0, 120)}); a data manager must decide.`;
    case 'ER_NO_REFERENCED_ROW_2':
    case 'ER_NO_REFERENCED_ROW':
      return `A row of ${table} refers to a row that is not here yet; it waits for it.`;
    case 'ER_ROW_IS_REFERENCED_2':
    case 'ER_ROW_IS_REFERENCED':
      return `A row of ${table} cannot be deleted while other rows here still refer to it; it waits.`;
    default:
      if (e instanceof SyncError) return e.message;
      return `The database refused a change to ${table}: ${(err.sqlMessage ?? err.message ?? String(e)).slice(0, 200)}`;
  }
}

async function applyOne(
  ctx: ApplyContext,
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  c: WireChange,
): Promise<Outcome> {
  const t = plan.table;
  if (!hasKey(t)) return applyKeyless(conn, ids, plan, c);
  const stamp: Stamp = { hlc: BigInt(c.hlc), origin: c.origin };
  // What the change was made upon: an insert makes its own copy of the row; an update was made
  // upon the copy its basis names. A delete of that copy, here already, beats it (DESIGN §6).
  const base = c.op === 'I' ? stamp : stampOf(c.basis?.base);
  let tomb = await readTombstone(conn, t.name, c.ident);
  if (c.op !== 'D' && tomb && !isLater(base, tomb)) return { kind: 'ignored' };

  const located = await ids.locate(plan, c.oldIdent ?? c.ident);
  if (c.op === 'D') {
    if (!tomb || isLater(stamp, tomb)) tomb = stamp;
    await raiseTombstone(conn, t.name, c.ident, tomb);
    ids.forget();
    if (!located.lkey) return { kind: 'applied', conflicts: 0 };
    const state = (await readStates(conn, t.name, [located.lkey])).get(located.lkey);
    // made again after every delete known here: the row stays, but what the deletes ended goes
    if (state && isLater(stampOf(state.clocks[CREATED]), tomb))
      return settleColumns(ctx, conn, ids, plan, located.lkey, null, tomb);
    const w = whereKey(t, located.lkey);
    await execute(conn, `DELETE FROM ${q(t.name)} WHERE ${w.sql}`, w.params);
    await writeStates(conn, { deletes: [{ tbl: t.name, lkey: located.lkey }], upserts: [] });
    return { kind: 'applied', conflicts: 0 };
  }
  if (!located.lkey) {
    if (c.op === 'U')
      return park(
        `An update arrived for a row of ${t.name} this node has not received yet; it waits for it.`,
        { table: t.name, ident: c.oldIdent ?? c.ident },
      );
    return insertRow(ctx, conn, ids, plan, c, stamp);
  }
  return settleColumns(ctx, conn, ids, plan, located.lkey, { change: c, stamp, base }, tomb);
}

/**
 * Keyless tables: rows are whole images, and each table is compared whole after the batch
 * (whole.ts); a delete's tombstone keeps only an older insert of the same image out.
 */
async function applyKeyless(
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  c: WireChange,
): Promise<Outcome> {
  const stamp: Stamp = { hlc: BigInt(c.hlc), origin: c.origin };
  const tomb = await readTombstone(conn, plan.table.name, c.ident);
  if (tomb) {
    if (c.op !== 'I' || !isLater(stamp, tomb)) return { kind: 'ignored' };
    await execute(conn, 'DELETE FROM clinicsync_tombstone WHERE tbl = ? AND ihash = ?', [
      plan.table.name,
      ihash(c.ident),
    ]);
  }
  return applyToImage(conn, ids, plan, c);
}

async function insertRow(
  ctx: ApplyContext,
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  c: WireChange,
  stamp: Stamp,
): Promise<Outcome> {
  const t = plan.table;
  const local = await fromWire(ids, plan, c.values ?? {});
  // Rows that refer to each other (a new user and its person) cannot wait for each other: a
  // reference that may be empty is left empty for now and filled in when its row arrives.
  const nullable = (col: string) =>
    !t.primaryKey.includes(col) && t.columns.find((x) => x.name === col)?.nullable === true;
  if (local.missing.some((m) => !nullable(m.column)))
    return park(
      `A row of ${t.name} refers to a row of ${local.missing[0]!.table} that has not arrived yet; it waits for it.`,
      local.missing[0]!,
    );
  for (const m of local.missing) local.values[m.column] = null;
  const key = await keyFromIdent(ids, plan, c.ident);
  if ('missing' in key)
    return park(
      `A row of ${t.name} belongs to a row of ${key.missing.table} that has not arrived yet; it waits for it.`,
      key.missing,
    );
  const values = { ...local.values, ...key.values };
  // a unique value another row here holds already: one of the two is renamed (uniqueKeys.ts)
  const renames = await settleUniqueKeys(conn, plan, values, { ident: c.ident, stamp, lkey: null });
  const cols = Object.keys(values).filter((col) => t.columns.some((x) => x.name === col));
  const res = await execute(
    conn,
    `INSERT INTO ${q(t.name)} (${cols.map(q).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
    cols.map((col) => values[col]),
  );
  // Where the key is the server's to choose (a local surrogate id), read it back by what it chose.
  const where =
    plan.identity.kind === 'uuid' || plan.identity.kind === 'registry'
      ? t.primaryKey.length === 1 && res.insertId
        ? { sql: `${q(t.primaryKey[0]!)} = ?`, params: [String(res.insertId)] }
        : { sql: 'uuid = ?', params: [c.ident] }
      : {
          sql: t.primaryKey.map((k) => `${q(k)} = ?`).join(' AND '),
          params: t.primaryKey.map((k) => values[k]),
        };
  const colset = await ctx.colsets.idFor(t);
  const [row] = await queryRows(
    conn,
    `SELECT ${keySql(t)} AS k, ${hashesSql(dataColumns(t))} AS h FROM ${q(t.name)} WHERE ${where.sql}`,
    where.params,
  );
  const clocks: Clocks = {};
  const waiting = new Set(local.missing.map((m) => m.column));
  for (const col of Object.keys(c.values ?? {}))
    if (!waiting.has(col)) clocks[col] = clockText(stamp);
  clocks[CREATED] = clockText(stamp);
  await writeStates(conn, {
    deletes: [],
    upserts: [
      {
        tbl: t.name,
        lkey: String(row!.k),
        ident: c.ident,
        colset,
        hashes: row!.h as Buffer,
        n: 1,
        clocks,
      },
    ],
  });
  ids.forget();
  if (local.missing.length) {
    return {
      kind: 'partial',
      reason: `A row of ${t.name} arrived before the row of ${local.missing[0]!.table} it refers to; that reference is filled in when it arrives.`,
      wait: local.missing[0]!,
    };
  }
  return { kind: 'applied', conflicts: renames };
}

interface Incoming {
  change: WireChange;
  stamp: Stamp;
  /** the clock of the copy it was made upon (an insert's own) */
  base: Stamp;
}

/**
 * Brings one row's columns to what the rules choose (resolve.ts), with an incoming insert or
 * update merged in, or (incoming null) after a delete that the row outlived: values the delete
 * ended give way to live ones kept in reserve. Writes the row and its state; logs each value set
 * aside for a concurrent one.
 */
async function settleColumns(
  ctx: ApplyContext,
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  lkey: string,
  incoming: Incoming | null,
  tomb: Stamp | null,
): Promise<Outcome> {
  const t = plan.table;
  const c = incoming?.change;
  const w = whereKey(t, lkey);
  await queryRows(conn, `SELECT 1 FROM ${q(t.name)} WHERE ${w.sql} FOR UPDATE`, w.params);
  const cur = (await currentRows(conn, t, [lkey])).get(lkey)!;
  const state = (await readStates(conn, t.name, [lkey])).get(lkey);
  const curCols = dataColumns(t).map((col) => col.name);
  // Columns changed here that no pickup has logged yet: they are newer than anything received,
  // keep their value, and stay "changed" in the row state so the next pickup sends them.
  const pendingLocal = state
    ? changedColumns(
        curCols,
        cur.__h as Buffer,
        await ctx.colsets.columns(conn, state.colset),
        state.hashes,
      )
    : new Set<string>();
  const clocks: Clocks = { ...(state?.clocks ?? {}) };
  if (incoming && isLater(incoming.base, stampOf(clocks[CREATED])))
    clocks[CREATED] = clockText(incoming.base);
  const winners: Record<string, StoredValue> = {};
  const setAside: SetAside[] = [];
  const columns = incoming
    ? Object.keys(c!.values ?? {}).filter((col) => t.columns.some((x) => x.name === col))
    : plan.wireColumns.filter(
        (col) => clocks[col] !== undefined || clocks[reserveKey(col)] !== undefined,
      );
  for (const col of columns) {
    if (pendingLocal.has(col)) continue;
    const now = shownOf(clocks, col);
    const offered: Candidate | null = incoming
      ? { stamp: incoming.stamp, base: incoming.base, value: c!.values![col]! }
      : null;
    const { shown, reserves } = choose(
      [now, ...reservesOf(clocks, col), ...(offered ? [offered] : [])],
      tomb,
    );
    if (!shown) continue; // nothing live yet: the insert that made the row again is on its way
    // the value shown now is read only where it is kept in reserve or set aside
    const concurrent =
      offered !== null &&
      c!.op === 'U' &&
      alive(now, tomb) &&
      !sameStamp(now.stamp, offered.stamp) &&
      !sameStamp(priorOf(c!, col), now.stamp);
    if (concurrent || reserves.includes(now)) now.value = await localWire(ids, plan, cur, col);
    if (shown !== now) winners[col] = shown.value!;
    record(clocks, col, shown, reserves);
    // Two live values, the incoming one made without knowing the other: one is set aside.
    if (concurrent) {
      const [winner, loser] = shown === offered ? [offered, now] : [now, offered];
      if (JSON.stringify(winner.value) !== JSON.stringify(loser.value))
        setAside.push({ col, winner, loser });
    }
  }
  // A key made of references that changed (film_actor moved to another actor) travels only as
  // the new identity: its key values are worked out from it.
  const moves = c?.oldIdent !== undefined && c.oldIdent !== c.ident;
  const newKey = moves ? await keyFromIdent(ids, plan, c.ident) : { values: {} };
  if ('missing' in newKey)
    return park(
      `A row of ${t.name} moved to a row of ${newKey.missing.table} that has not arrived yet; it waits for it.`,
      newKey.missing,
    );
  let renames = 0;
  if (Object.keys(winners).length || Object.keys(newKey.values).length) {
    const local = await fromWire(ids, plan, winners, cur);
    if (local.missing.length)
      return park(
        `A row of ${t.name} refers to a row of ${local.missing[0]!.table} that has not arrived yet; it waits for it.`,
        local.missing[0]!,
      );
    Object.assign(local.values, newKey.values);
    if (incoming)
      renames = await settleUniqueKeys(conn, plan, local.values, {
        ident: incoming.change.ident,
        stamp: incoming.stamp,
        lkey,
      });
    const cols = Object.keys(local.values);
    await execute(
      conn,
      `UPDATE ${q(t.name)} SET ${cols.map((col) => `${q(col)} = ?`).join(', ')} WHERE ${w.sql}`,
      [...cols.map((col) => local.values[col]), ...w.params],
    );
  }
  const conflicts =
    renames + (await logSetAside(conn, t.name, c?.ident ?? state?.ident ?? '', setAside));
  // A key column among the winners moves the row: it is found again by its identity.
  ids.forget();
  const ident = c?.ident ?? state?.ident ?? null;
  const movedTo =
    c && (moves || cols(winners).some((col) => t.primaryKey.includes(col)))
      ? ((await ids.locate(plan, c.ident)).lkey ?? lkey)
      : lkey;
  const moved = (await currentRows(conn, t, [movedTo])).get(movedTo);
  if (!moved) return { kind: 'applied', conflicts };
  const colset = await ctx.colsets.idFor(t);
  const hashes = Buffer.from(moved.__h as Buffer);
  if (state && pendingLocal.size) {
    const prevCols = await ctx.colsets.columns(conn, state.colset);
    curCols.forEach((col, i) => {
      const j = prevCols.indexOf(col);
      if (pendingLocal.has(col) && j >= 0) state.hashes.copy(hashes, i * 4, j * 4, j * 4 + 4);
    });
  }
  await writeStates(conn, {
    deletes: movedTo !== lkey ? [{ tbl: t.name, lkey }] : [],
    upserts: [{ tbl: t.name, lkey: movedTo, ident, colset, hashes, n: 1, clocks }],
  });
  return { kind: 'applied', conflicts };
}

interface SetAside {
  col: string;
  winner: Candidate;
  loser: Candidate;
}

/** The clock of the value an update replaced at its origin, for one column. */
function priorOf(c: WireChange, col: string): Stamp {
  const priors = c.basis?.prior ?? {};
  return stampOf(Object.hasOwn(priors, col) ? priors[col] : undefined);
}

/** One conflict per pair of writes, naming every column where one set the other aside. */
async function logSetAside(
  conn: PoolConnection,
  table: string,
  ident: string,
  list: SetAside[],
): Promise<number> {
  const pairs = new Map<string, SetAside[]>();
  for (const a of list) {
    const k = `${clockText(a.winner.stamp)} ${clockText(a.loser.stamp)}`;
    pairs.set(k, [...(pairs.get(k) ?? []), a]);
  }
  for (const group of pairs.values()) {
    await recordConflict(conn, {
      table,
      ident,
      winner: Object.fromEntries(group.map((a) => [a.col, a.winner.value ?? null])),
      loser: Object.fromEntries(group.map((a) => [a.col, a.loser.value ?? null])),
      winnerStamp: group[0]!.winner.stamp,
      loserStamp: group[0]!.loser.stamp,
    });
  }
  return pairs.size;
}

const cols = (o: Record<string, unknown>) => Object.keys(o);

async function localWire(
  ids: Identities,
  plan: TablePlan,
  cur: Record<string, unknown>,
  col: string,
): Promise<StoredValue> {
  const v = fromDriver(cur[col]);
  const ref = plan.refs.get(col);
  if (ref && v !== null) return (await ids.globalIds(ref, [String(v)])).get(String(v)) ?? String(v);
  return toStored(v);
}

/** Keyless tables: an insert adds one copy of the image, a delete removes one. */
async function applyToImage(
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  c: WireChange,
): Promise<Outcome> {
  const t = plan.table;
  let wire: Record<string, StoredValue>;
  try {
    const list = JSON.parse(c.ident) as StoredValue[];
    wire = Object.fromEntries(plan.wireColumns.map((col, i) => [col, list[i] ?? null]));
  } catch {
    throw new SyncError('protocol', `A row of ${t.name} arrived without a readable identity.`);
  }
  const local = await fromWire(ids, plan, wire);
  if (local.missing.length)
    return park(
      `A row of ${t.name} refers to a row of ${local.missing[0]!.table} that has not arrived yet; it waits for it.`,
      local.missing[0]!,
    );
  const cols = Object.keys(local.values);
  if (c.op === 'D') {
    await execute(
      conn,
      `DELETE FROM ${q(t.name)} WHERE ${cols.map((col) => `${q(col)} <=> ?`).join(' AND ')} LIMIT 1`,
      cols.map((col) => local.values[col]),
    );
  } else {
    await execute(
      conn,
      `INSERT INTO ${q(t.name)} (${cols.map(q).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
      cols.map((col) => local.values[col]),
    );
  }
  return { kind: 'applied', conflicts: 0 };
}

async function parkChange(
  conn: PoolConnection,
  c: WireChange,
  o: Extract<Outcome, { kind: 'park' | 'partial' }>,
): Promise<void> {
  await execute(
    conn,
    `INSERT INTO clinicsync_parked (origin, seq, tbl, ihash, reason, wait_tbl, wait_ihash, since)
     VALUES (?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP())
     ON DUPLICATE KEY UPDATE reason = VALUES(reason), wait_tbl = VALUES(wait_tbl), wait_ihash = VALUES(wait_ihash)`,
    [
      c.origin,
      c.seq,
      c.table,
      ihash(c.ident),
      o.reason.slice(0, 500),
      o.wait?.table ?? null,
      o.wait ? ihash(o.wait.ident) : null,
    ],
  );
}

/**
 * Parked changes are tried again, oldest first, until a pass applies none; only the oldest parked
 * change of a row is tried, so a row's changes land in the order they arrived.
 */
async function retryParked(
  ctx: ApplyContext,
  conn: PoolConnection,
  ids: Identities,
  shapes: PeerShapes,
): Promise<{ applied: number; conflicts: number; whole: Set<string> }> {
  const out = { applied: 0, conflicts: 0, whole: new Set<string>() };
  for (;;) {
    const rows = await queryRows(
      conn,
      `SELECT p.pid, p.tbl, p.ihash, l.src, l.origin, l.seq, l.hlc, l.op, l.ident, l.old_ident, l.payload, l.basis
         FROM clinicsync_parked p JOIN clinicsync_log l ON l.origin = p.origin AND l.seq = p.seq ORDER BY p.pid`,
    );
    let progress = false;
    const blocked = new Set<string>();
    for (const r of rows) {
      const id = rowId(String(r.tbl), r.ihash as Buffer);
      if (blocked.has(id)) continue;
      blocked.add(id);
      const plan = ctx.plans.get(String(r.tbl));
      if (!plan) continue;
      // its sender's table still has other columns: it waits for an upgrade (shapes.ts)
      if (shapes.differs(plan.table.name, r.src == null ? null : String(r.src))) continue;
      const c: WireChange = {
        origin: String(r.origin),
        seq: String(r.seq),
        hlc: String(r.hlc),
        op: r.op as WireChange['op'],
        table: String(r.tbl),
        ident: r.ident == null ? '' : String(r.ident),
        ...(r.old_ident != null ? { oldIdent: String(r.old_ident) } : {}),
        ...(r.payload != null
          ? { values: JSON.parse(String(r.payload)) as Record<string, StoredValue> }
          : {}),
        ...(r.basis != null ? { basis: JSON.parse(String(r.basis)) as Basis } : {}),
      };
      const outcome = await attempt(ctx, conn, ids, plan, c);
      if (outcome.kind === 'park' || outcome.kind === 'partial') {
        await parkChange(conn, c, outcome);
        // a partial insert made the row exist: a later pass may fill in the rest
        if (outcome.kind === 'partial') progress = true;
        continue;
      }
      await execute(conn, 'DELETE FROM clinicsync_parked WHERE pid = ?', [r.pid]);
      blocked.delete(id);
      progress = true;
      if (outcome.kind === 'applied') {
        out.applied++;
        out.conflicts += outcome.conflicts;
        if (!hasKey(plan.table)) out.whole.add(plan.table.name);
      }
    }
    if (!progress) return out;
  }
}
