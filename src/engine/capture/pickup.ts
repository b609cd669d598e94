import type { Pool, PoolConnection, RowDataPacket } from '../db/pool.js';
import { execute, inTransaction, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import type { Schema, Table } from '../db/schema.js';
import { hlcNext, millisFromSqlTime, type Hlc } from '../clock/hlc.js';
import { getMetaForUpdate, setMeta } from '../node/meta.js';
import { Identities, ihash } from '../identity/identities.js';
import { imageIdent, type TablePlan } from '../identity/plan.js';
import { toWire, warmRefs } from '../identity/wire.js';
import type { Colsets } from './colsets.js';
import { expandGroups } from './groups.js';
import {
  CREATED,
  baseKey,
  clockText,
  readStates,
  reserveKey,
  writeStates,
  type Clocks,
  type StateUpsert,
  type StateWrites,
} from './rowState.js';
import { dataColumns, hasKey, hashesSql, keySql, whereKey } from './rowSql.js';
import type { StoredValue } from './values.js';
import { LATER_TOMBSTONE } from './tombstones.js';
import type { Basis } from '../protocol/types.js';

/**
 * Pickup (DESIGN §3): turns committed capture rows into entries of the outgoing log. One step is
 * one transaction: capture rows are read, the rows they name are read as they are now, the changed
 * columns are worked out against the recorded row state, the log gets one entry per changed row
 * (in wire form: global identity, foreign keys as identities) with the next dense sequence numbers
 * and clock stamps, and the capture rows are deleted. A kill at any point leaves all of a step or
 * none of it.
 *
 * Capture rows are taken as "whatever is still there", never "above the last id seen": a long
 * transaction commits its capture rows after later ones, and a rollback leaves a gap in the ids.
 */

export interface CaptureRow {
  id: string;
  tbl: string;
  op: 'I' | 'U' | 'D' | 'T';
  lkey: string | null;
  old_lkey: string | null;
  old_uuid: string | null;
  at: string;
}

/** All the capture rows that touched one row, in order: where it started and where it ended. */
interface Chain {
  /** position of its first capture row: the log follows the order the clinic wrote in */
  order: number;
  table: string;
  origKey: string;
  finalKey: string;
  inserted: boolean;
  deleted: boolean;
  atMs: number;
  oldUuid: string | null;
}

export interface LogEntry {
  order: number;
  tbl: string;
  op: 'I' | 'U' | 'D';
  lkey: string;
  oldLkey: string | null;
  ident: string;
  oldIdent: string | null;
  payload: Record<string, StoredValue> | null;
  atMs: number;
  /** the row-state record to stamp with this change's clock, and which of its columns */
  state: StateUpsert | null;
  stamped: string[];
  /** a delete that leaves a tombstone here, so a concurrent update arriving later loses */
  tombstone?: true;
}

export interface PickupContext {
  pool: Pool;
  schema: Schema;
  plans: Map<string, TablePlan>;
  colsets: Colsets;
  nodeId: string;
  /** tables whose changes are captured */
  captured: (table: string) => boolean;
}

/** A keyless table touched in a step: diffed whole, logged where it was first touched. */
export interface WholeTable {
  order: number;
  atMs: number;
}

export function chainsOf(rows: CaptureRow[]): {
  chains: Chain[];
  wholeTables: Map<string, WholeTable>;
} {
  const chains: Chain[] = [];
  const open = new Map<string, Chain>();
  const wholeTables = new Map<string, WholeTable>();
  const id = (t: string, k: string) => `${t}\u0000${k}`;
  for (const [order, r] of rows.entries()) {
    const at = millisFromSqlTime(r.at);
    if (r.op === 'T' || r.lkey === null) {
      const w = wholeTables.get(r.tbl);
      wholeTables.set(r.tbl, { order: w?.order ?? order, atMs: Math.max(at, w?.atMs ?? 0) });
      continue;
    }
    if (r.op === 'I') {
      const c: Chain = {
        order,
        table: r.tbl,
        origKey: r.lkey,
        finalKey: r.lkey,
        inserted: true,
        deleted: false,
        atMs: at,
        oldUuid: null,
      };
      chains.push(c);
      open.set(id(r.tbl, r.lkey), c);
      continue;
    }
    const from = r.op === 'U' && r.old_lkey !== null ? r.old_lkey : r.lkey;
    let c = open.get(id(r.tbl, from));
    if (!c) {
      c = {
        order,
        table: r.tbl,
        origKey: from,
        finalKey: from,
        inserted: false,
        deleted: false,
        atMs: at,
        oldUuid: null,
      };
      chains.push(c);
    }
    c.atMs = Math.max(c.atMs, at);
    open.delete(id(r.tbl, from));
    if (r.op === 'D') {
      c.deleted = true;
      c.oldUuid = r.old_uuid;
    } else {
      c.finalKey = r.lkey;
      open.set(id(r.tbl, r.lkey), c);
    }
  }
  return { chains, wholeTables };
}

/** The rows of `t` at these local keys, with their key and column hashes as the server renders them. */
export async function currentRows(
  conn: PoolConnection,
  t: Table,
  keys: string[],
): Promise<Map<string, RowDataPacket>> {
  const out = new Map<string, RowDataPacket>();
  const select = `SELECT ${dataColumns(t)
    .map((c) => q(c.name))
    .join(', ')}, ${keySql(t)} AS __k, ${hashesSql(dataColumns(t))} AS __h FROM ${q(t.name)}`;
  for (let i = 0; i < keys.length; i += 200) {
    const part = keys.slice(i, i + 200);
    const conds = part.map((k) => whereKey(t, k));
    const rows = await queryRows(
      conn,
      `${select} WHERE ${conds.map((c) => `(${c.sql})`).join(' OR ')}`,
      conds.flatMap((c) => c.params),
    );
    for (const r of rows) out.set(String(r.__k), r);
  }
  return out;
}

/** Names of columns whose hash differs from the recorded one (or that the record did not have). */
export function changedColumns(
  curCols: string[],
  curHashes: Buffer,
  prevCols: string[],
  prevHashes: Buffer,
): Set<string> {
  const prev = new Map<string, string>();
  prevCols.forEach((c, i) => prev.set(c, prevHashes.subarray(i * 4, i * 4 + 4).toString('hex')));
  const changed = new Set<string>();
  curCols.forEach((c, i) => {
    if (prev.get(c) !== curHashes.subarray(i * 4, i * 4 + 4).toString('hex')) changed.add(c);
  });
  return changed;
}

async function diffKeyed(
  ctx: PickupContext,
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  chains: Chain[],
  out: LogEntry[],
  writes: StateWrites,
): Promise<void> {
  const t = plan.table;
  const colset = await ctx.colsets.idFor(t);
  const curCols = dataColumns(t).map((c) => c.name);
  const live = chains.filter((c) => !c.deleted).map((c) => c.finalKey);
  const current = await currentRows(conn, t, [...new Set(live)]);
  await warmRefs(ids, plan, [...current.values()]);
  const states = await readStates(
    conn,
    t.name,
    chains.map((c) => c.origKey),
  );
  for (const c of chains) {
    let state = states.get(c.origKey);
    const cur = c.deleted ? undefined : current.get(c.finalKey);
    if (c.inserted && state) {
      // Recorded for a row that left without a trigger (a foreign-key cascade): the receiver's
      // own cascade removes it there too, so it is forgotten here without a log entry.
      writes.deletes.push({ tbl: t.name, lkey: state.lkey });
      state = undefined;
    }
    if (!state && !cur) continue;
    if (!state && cur) {
      const ident = await ids.identOf(plan, cur, null);
      const upsert: StateUpsert = {
        tbl: t.name,
        lkey: c.finalKey,
        ident,
        colset,
        hashes: cur.__h as Buffer,
        n: 1,
        clocks: {},
      };
      writes.upserts.push(upsert);
      out.push({
        order: c.order,
        tbl: t.name,
        op: 'I',
        lkey: c.finalKey,
        oldLkey: null,
        ident,
        oldIdent: null,
        payload: await toWire(ids, plan, cur),
        atMs: c.atMs,
        state: upsert,
        stamped: plan.wireColumns,
      });
      continue;
    }
    if (state && !cur) {
      const ident = state.ident ?? c.oldUuid ?? '';
      out.push({
        order: c.order,
        tbl: t.name,
        op: 'D',
        lkey: c.origKey,
        oldLkey: null,
        ident,
        oldIdent: null,
        payload: null,
        atMs: c.atMs,
        state: null,
        stamped: [],
        tombstone: true,
      });
      writes.deletes.push({ tbl: t.name, lkey: state.lkey });
      continue;
    }
    const prevCols = await ctx.colsets.columns(conn, state!.colset);
    const changed = changedColumns(curCols, cur!.__h as Buffer, prevCols, state!.hashes);
    const moved = c.origKey !== c.finalKey;
    const ident = await ids.identOf(
      plan,
      cur!,
      plan.identity.kind === 'registry' ? state!.ident : null,
    );
    const upsert: StateUpsert = {
      tbl: t.name,
      lkey: c.finalKey,
      ident,
      colset,
      hashes: cur!.__h as Buffer,
      n: 1,
      clocks: state!.clocks,
    };
    const sent = expandGroups(changed, plan.wireColumns);
    const wire = [...sent].filter((col) => plan.wireColumns.includes(col));
    const same = !changed.size && !moved && ident === state!.ident && colset === state!.colset;
    if (same) continue;
    if (moved) writes.deletes.push({ tbl: t.name, lkey: state!.lkey });
    writes.upserts.push(upsert);
    if (!wire.length && !moved && ident === state!.ident) continue;
    out.push({
      order: c.order,
      tbl: t.name,
      op: 'U',
      lkey: c.finalKey,
      oldLkey: moved ? c.origKey : null,
      ident,
      oldIdent: ident !== state!.ident ? state!.ident : null,
      payload: await toWire(ids, plan, cur!, new Set(wire)),
      atMs: c.atMs,
      state: upsert,
      stamped: wire,
    });
  }
}

/** Keyless tables: the table's rows as a multiset of images against the recorded multiset. */
async function diffWhole(
  ctx: PickupContext,
  conn: PoolConnection,
  ids: Identities,
  plan: TablePlan,
  { order, atMs }: WholeTable,
  out: LogEntry[],
  writes: StateWrites,
): Promise<void> {
  const t = plan.table;
  const colset = await ctx.colsets.idFor(t);
  const rows = await queryRows(
    conn,
    `SELECT ${dataColumns(t)
      .map((c) => q(c.name))
      .join(', ')}, ${keySql(t)} AS __k FROM ${q(t.name)}`,
  );
  const now = new Map<string, { row: RowDataPacket; n: number }>();
  for (const r of rows) {
    const k = String(r.__k);
    const e = now.get(k);
    if (e) e.n++;
    else now.set(k, { row: r, n: 1 });
  }
  const recorded = await queryRows(
    conn,
    'SELECT lkey, ident, n FROM clinicsync_row WHERE tbl = ?',
    [t.name],
  );
  const before = new Map(
    recorded.map((r) => [
      String(r.lkey),
      { n: Number(r.n), ident: r.ident == null ? '' : String(r.ident) },
    ]),
  );
  await warmRefs(
    ids,
    plan,
    [...now.values()].map((e) => e.row),
  );
  for (const [k, { row, n }] of now) {
    const was = before.get(k)?.n ?? 0;
    if (n === was) continue;
    const payload = await toWire(ids, plan, row);
    const ident = imageIdent(plan, payload);
    for (let i = was; i < n; i++) {
      out.push({
        order,
        tbl: t.name,
        op: 'I',
        lkey: k,
        oldLkey: null,
        ident,
        oldIdent: null,
        payload,
        atMs,
        state: null,
        stamped: [],
      });
    }
    writes.upserts.push({
      tbl: t.name,
      lkey: k,
      ident,
      colset,
      hashes: Buffer.alloc(0),
      n,
      clocks: {},
    });
  }
  for (const [k, { n: was, ident }] of before) {
    const n = now.get(k)?.n ?? 0;
    for (let i = n; i < was; i++) {
      out.push({
        order,
        tbl: t.name,
        op: 'D',
        lkey: k,
        oldLkey: null,
        ident,
        oldIdent: null,
        payload: null,
        atMs,
        state: null,
        stamped: [],
      });
    }
    if (n === 0) writes.deletes.push({ tbl: t.name, lkey: k });
  }
}

const STEP_ROWS = 1000;

export interface PickupResult {
  captureRows: number;
  logged: number;
}

/**
 * One pickup step of at most `limit` capture rows. Capture rows of tables that are no longer
 * captured (dropped, or filtered out) are discarded.
 */
export async function pickupStep(ctx: PickupContext, limit = STEP_ROWS): Promise<PickupResult> {
  // Every exchange picks up first, usually to find nothing: one read says so, with no transaction.
  // A capture row committed after it is found by the next pickup, as after the step's own read.
  if (!(await queryRows(ctx.pool, 'SELECT 1 AS x FROM clinicsync_capture LIMIT 1')).length)
    return { captureRows: 0, logged: 0 };
  return inTransaction(
    ctx.pool,
    async (conn) => {
      // A plain consistent read: it neither waits for nor blocks the application's transactions.
      const rows = (await queryRows(
        conn,
        'SELECT id, tbl, op, lkey, old_lkey, old_uuid, at FROM clinicsync_capture ORDER BY id LIMIT ?',
        [limit],
      )) as unknown as CaptureRow[];
      if (!rows.length) return { captureRows: 0, logged: 0 };

      const ids = new Identities(conn, ctx.plans, ctx.nodeId);
      const { chains, wholeTables } = chainsOf(rows);
      const entries: LogEntry[] = [];
      const writes: StateWrites = { deletes: [], upserts: [] };
      const byTable = new Map<string, Chain[]>();
      for (const c of chains) byTable.set(c.table, [...(byTable.get(c.table) ?? []), c]);
      for (const [name, list] of byTable) {
        const plan = ctx.plans.get(name);
        if (!plan || !ctx.captured(name)) continue;
        if (hasKey(plan.table)) await diffKeyed(ctx, conn, ids, plan, list, entries, writes);
        else {
          const atMs = Math.max(...list.map((c) => c.atMs));
          wholeTables.set(name, { order: list[0]!.order, atMs });
        }
      }
      for (const [name, whole] of wholeTables) {
        const plan = ctx.plans.get(name);
        if (plan && ctx.captured(name))
          await diffWhole(ctx, conn, ids, plan, whole, entries, writes);
      }

      // The log follows the order the clinic wrote in, so a row's references come before it.
      entries.sort((a, b) => a.order - b.order);
      if (entries.length) await appendLocal(ctx, conn, entries);
      await writeStates(conn, writes);
      const captureIds = rows.map((r) => r.id);
      for (let i = 0; i < captureIds.length; i += 1000) {
        const part = captureIds.slice(i, i + 1000);
        await execute(
          conn,
          `DELETE FROM clinicsync_capture WHERE id IN (${part.map(() => '?').join(',')})`,
          part,
        );
      }
      return { captureRows: rows.length, logged: entries.length };
    },
    { isolation: 'READ COMMITTED' },
  );
}

/**
 * Appends this node's own changes with the next dense sequence numbers and clock stamps, and
 * stamps the changed columns' clocks in the row state to be written.
 */
async function appendLocal(
  ctx: PickupContext,
  conn: PoolConnection,
  entries: LogEntry[],
): Promise<void> {
  let seq = BigInt((await getMetaForUpdate(conn, 'seq')) ?? '0');
  let hlc: Hlc = BigInt((await getMetaForUpdate(conn, 'hlc')) ?? '0');
  const values: unknown[][] = [];
  const stamps = new Map<LogEntry, bigint>();
  for (const e of entries) {
    seq += 1n;
    hlc = hlcNext(hlc, e.atMs);
    stamps.set(e, hlc);
    let basis: Basis | null = null;
    if (e.state) {
      const before = e.state.clocks;
      const clocks: Clocks = { ...before };
      const stamp = clockText({ hlc, origin: ctx.nodeId });
      // An update is made upon this copy of the row, replacing the values it shows: it says so, so
      // that a delete of this copy beats it and concurrent values it replaces get logged.
      if (e.op === 'U') {
        basis = {};
        if (before[CREATED] !== undefined) basis.base = before[CREATED];
        const prior = Object.fromEntries(
          e.stamped.flatMap((c) => (before[c] === undefined ? [] : [[c, before[c]]])),
        );
        if (Object.keys(prior).length) basis.prior = prior;
        if (!Object.keys(basis).length) basis = null;
      }
      for (const c of e.stamped) {
        clocks[c] = stamp;
        delete clocks[reserveKey(c)];
        if (e.op === 'I') delete clocks[baseKey(c)];
        else clocks[baseKey(c)] = before[CREATED] ?? '';
      }
      if (e.op === 'I') clocks[CREATED] = stamp;
      e.state.clocks = clocks;
    }
    values.push([
      ctx.nodeId,
      seq.toString(),
      hlc.toString(),
      e.tbl,
      e.op,
      e.lkey,
      e.oldLkey,
      e.ident,
      e.oldIdent,
      e.payload === null ? null : JSON.stringify(e.payload),
      basis === null ? null : JSON.stringify(basis),
    ]);
  }
  for (let i = 0; i < values.length; i += 500) {
    const part = values.slice(i, i + 500);
    await execute(
      conn,
      `INSERT INTO clinicsync_log (origin, seq, hlc, tbl, op, lkey, old_lkey, ident, old_ident, payload, basis)
       VALUES ${part.map(() => '(?,?,?,?,?,?,?,?,?,?,?)').join(',')}`,
      part.flat(),
    );
  }
  // A row made here again after a delete keeps its tombstone: the insert's later clock makes it
  // exist, and the tombstone still beats updates made upon the deleted copy (apply.ts).
  const tombstones = entries.filter((e) => e.tombstone && e.ident);
  for (let i = 0; i < tombstones.length; i += 200) {
    const part = tombstones.slice(i, i + 200);
    await execute(
      conn,
      `INSERT INTO clinicsync_tombstone (tbl, ihash, ident, hlc, origin, at)
       VALUES ${part.map(() => '(?, ?, ?, ?, ?, UTC_TIMESTAMP())').join(',')}
       ON DUPLICATE KEY UPDATE ${LATER_TOMBSTONE}`,
      part.flatMap((e) => [e.tbl, ihash(e.ident), e.ident, stamps.get(e)!.toString(), ctx.nodeId]),
    );
  }
  await setMeta(conn, 'seq', seq.toString());
  await setMeta(conn, 'hlc', hlc.toString());
  await execute(
    conn,
    'INSERT INTO clinicsync_vv (origin, seq) VALUES (?, ?) ON DUPLICATE KEY UPDATE seq = VALUES(seq)',
    [ctx.nodeId, seq.toString()],
  );
}

/**
 * Picks up everything committed before the call; returns how many log entries were written. Stops
 * at the first short step, so an application that never stops writing cannot keep it looping.
 */
export async function pickupAll(ctx: PickupContext): Promise<number> {
  let logged = 0;
  for (;;) {
    const r = await pickupStep(ctx);
    logged += r.logged;
    if (r.captureRows < STEP_ROWS) return logged;
  }
}
