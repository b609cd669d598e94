import type { Pool, PoolConnection, RowDataPacket } from '../db/pool.js';
import { execute, inTransaction, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import type { Schema, Table } from '../db/schema.js';
import { hlcNext, millisFromSqlTime, type Hlc } from '../clock/hlc.js';
import { getMetaForUpdate, setMeta } from '../node/meta.js';
import type { Colsets } from './colsets.js';
import { dataColumns, hasKey, hashesSql, keySql, khash, whereKey } from './rowSql.js';
import { fromDriver, toStored, type StoredValue } from './values.js';

/**
 * Pickup (DESIGN §3): turns committed capture rows into entries of the outgoing log. One step is
 * one transaction: capture rows are read, the rows they name are read as they are now, the changed
 * columns are worked out against the recorded row state, the log gets one entry per changed row
 * with the next dense sequence numbers and clock stamps, and the capture rows are deleted. A kill
 * at any point leaves either all of a step or none of it.
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
  table: string;
  origKey: string;
  finalKey: string;
  inserted: boolean;
  deleted: boolean;
  atMs: number;
  oldUuid: string | null;
}

export interface LogEntry {
  tbl: string;
  op: 'I' | 'U' | 'D';
  lkey: string;
  oldLkey: string | null;
  ident: string | null;
  payload: Record<string, StoredValue> | null;
  atMs: number;
}

interface RowState {
  khash: Buffer;
  lkey: string;
  ident: string | null;
  colset: number;
  hashes: Buffer;
  n: number;
}

export interface PickupContext {
  pool: Pool;
  schema: Schema;
  colsets: Colsets;
  nodeId: string;
  /** tables whose changes are captured */
  captured: (table: string) => boolean;
}

export function chainsOf(rows: CaptureRow[]): {
  chains: Chain[];
  wholeTables: Map<string, number>;
} {
  const chains: Chain[] = [];
  const open = new Map<string, Chain>();
  const wholeTables = new Map<string, number>();
  const id = (t: string, k: string) => `${t}\u0000${k}`;
  for (const r of rows) {
    const at = millisFromSqlTime(r.at);
    if (r.op === 'T' || r.lkey === null) {
      wholeTables.set(r.tbl, Math.max(at, wholeTables.get(r.tbl) ?? 0));
      continue;
    }
    if (r.op === 'I') {
      const c: Chain = {
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

function uuidOf(t: Table, row: RowDataPacket | undefined): string | null {
  if (!row || !t.columns.some((c) => c.name === 'uuid')) return null;
  const v = row['uuid'] as unknown;
  return v == null ? null : String(v);
}

function payloadOf(t: Table, row: RowDataPacket, only?: Set<string>): Record<string, StoredValue> {
  const out: Record<string, StoredValue> = {};
  for (const c of dataColumns(t)) {
    if (only && !only.has(c.name)) continue;
    out[c.name] = toStored(fromDriver(row[c.name]));
  }
  return out;
}

async function currentRows(
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

async function rowStates(
  conn: PoolConnection,
  table: string,
  keys: string[],
): Promise<Map<string, RowState>> {
  const out = new Map<string, RowState>();
  for (let i = 0; i < keys.length; i += 500) {
    const part = keys.slice(i, i + 500);
    const rows = await queryRows(
      conn,
      `SELECT khash, lkey, ident, colset, hashes, n FROM clinicsync_row WHERE tbl = ? AND khash IN (${part.map(() => '?').join(',')})`,
      [table, ...part.map(khash)],
    );
    for (const r of rows) {
      out.set(String(r.lkey), {
        khash: r.khash as Buffer,
        lkey: String(r.lkey),
        ident: r.ident == null ? null : String(r.ident),
        colset: Number(r.colset),
        hashes: r.hashes as Buffer,
        n: Number(r.n),
      });
    }
  }
  return out;
}

/** Names of columns whose hash differs from the recorded one (or that the record did not have). */
function changedColumns(
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

interface StateWrite {
  /** [table, khash] of row states to forget */
  deletes: [string, Buffer][];
  upserts: unknown[][];
}

async function diffKeyed(
  ctx: PickupContext,
  conn: PoolConnection,
  t: Table,
  chains: Chain[],
  out: LogEntry[],
  writes: StateWrite,
): Promise<void> {
  const colset = await ctx.colsets.idFor(conn, t);
  const curCols = dataColumns(t).map((c) => c.name);
  const live = chains.filter((c) => !c.deleted).map((c) => c.finalKey);
  const current = await currentRows(conn, t, [...new Set(live)]);
  const states = await rowStates(conn, t.name, [...new Set(chains.map((c) => c.origKey))]);
  for (const c of chains) {
    let state = states.get(c.origKey);
    const cur = c.deleted ? undefined : current.get(c.finalKey);
    if (c.inserted && state) {
      // Recorded for a row that left without a trigger (a foreign-key cascade): the receiver's
      // own cascade removes it there too, so it is forgotten here without a log entry.
      writes.deletes.push([t.name, state.khash]);
      state = undefined;
    }
    if (!state && !cur) continue;
    if (!state && cur) {
      const ident = uuidOf(t, cur);
      out.push({
        tbl: t.name,
        op: 'I',
        lkey: c.finalKey,
        oldLkey: null,
        ident,
        payload: payloadOf(t, cur),
        atMs: c.atMs,
      });
      writes.upserts.push([t.name, khash(c.finalKey), c.finalKey, ident, colset, cur.__h, 1]);
      continue;
    }
    if (state && !cur) {
      out.push({
        tbl: t.name,
        op: 'D',
        lkey: c.origKey,
        oldLkey: null,
        ident: state.ident ?? c.oldUuid,
        payload: null,
        atMs: c.atMs,
      });
      writes.deletes.push([t.name, state.khash]);
      continue;
    }
    const prevCols = await ctx.colsets.columns(conn, state!.colset);
    const changed = changedColumns(curCols, cur!.__h as Buffer, prevCols, state!.hashes);
    const moved = c.origKey !== c.finalKey;
    if (!changed.size && !moved && state!.colset === colset) continue;
    const ident = uuidOf(t, cur) ?? state!.ident;
    if (changed.size || moved) {
      out.push({
        tbl: t.name,
        op: 'U',
        lkey: c.finalKey,
        oldLkey: moved ? c.origKey : null,
        ident,
        payload: payloadOf(t, cur!, changed),
        atMs: c.atMs,
      });
    }
    if (moved) writes.deletes.push([t.name, state!.khash]);
    writes.upserts.push([t.name, khash(c.finalKey), c.finalKey, ident, colset, cur!.__h, 1]);
  }
}

/** Keyless tables: the table's rows as a multiset of images against the recorded multiset. */
async function diffWhole(
  ctx: PickupContext,
  conn: PoolConnection,
  t: Table,
  atMs: number,
  out: LogEntry[],
  writes: StateWrite,
): Promise<void> {
  const colset = await ctx.colsets.idFor(conn, t);
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
    'SELECT khash, lkey, n FROM clinicsync_row WHERE tbl = ?',
    [t.name],
  );
  const before = new Map<string, number>(recorded.map((r) => [String(r.lkey), Number(r.n)]));
  for (const [k, { row, n }] of now) {
    const was = before.get(k) ?? 0;
    for (let i = was; i < n; i++) {
      out.push({
        tbl: t.name,
        op: 'I',
        lkey: k,
        oldLkey: null,
        ident: null,
        payload: payloadOf(t, row),
        atMs,
      });
    }
    if (n !== was) writes.upserts.push([t.name, khash(k), k, null, colset, Buffer.alloc(0), n]);
  }
  for (const [k, was] of before) {
    const n = now.get(k)?.n ?? 0;
    for (let i = n; i < was; i++) {
      out.push({ tbl: t.name, op: 'D', lkey: k, oldLkey: null, ident: null, payload: null, atMs });
    }
    if (n === 0) writes.deletes.push([t.name, khash(k)]);
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

      const { chains, wholeTables } = chainsOf(rows);
      const entries: LogEntry[] = [];
      const writes: StateWrite = { deletes: [], upserts: [] };
      const byTable = new Map<string, Chain[]>();
      for (const c of chains) byTable.set(c.table, [...(byTable.get(c.table) ?? []), c]);
      for (const [name, list] of byTable) {
        const t = ctx.schema.tables.get(name);
        if (!t || !ctx.captured(name)) continue;
        if (hasKey(t)) await diffKeyed(ctx, conn, t, list, entries, writes);
        else wholeTables.set(name, Math.max(...list.map((c) => c.atMs)));
      }
      for (const [name, atMs] of wholeTables) {
        const t = ctx.schema.tables.get(name);
        if (t && ctx.captured(name)) await diffWhole(ctx, conn, t, atMs, entries, writes);
      }

      for (let i = 0; i < writes.deletes.length; i += 500) {
        const part = writes.deletes.slice(i, i + 500);
        await execute(
          conn,
          `DELETE FROM clinicsync_row WHERE ${part.map(() => '(tbl = ? AND khash = ?)').join(' OR ')}`,
          part.flat(),
        );
      }
      for (let i = 0; i < writes.upserts.length; i += 500) {
        const part = writes.upserts.slice(i, i + 500);
        await execute(
          conn,
          `INSERT INTO clinicsync_row (tbl, khash, lkey, ident, colset, hashes, n) VALUES ${part.map(() => '(?,?,?,?,?,?,?)').join(',')}
           ON DUPLICATE KEY UPDATE lkey = VALUES(lkey), ident = VALUES(ident), colset = VALUES(colset), hashes = VALUES(hashes), n = VALUES(n)`,
          part.flat(),
        );
      }
      if (entries.length) await appendLocal(ctx, conn, entries);
      const ids = rows.map((r) => r.id);
      for (let i = 0; i < ids.length; i += 1000) {
        const part = ids.slice(i, i + 1000);
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

/** Appends this node's own changes with the next dense sequence numbers and clock stamps. */
async function appendLocal(
  ctx: PickupContext,
  conn: PoolConnection,
  entries: LogEntry[],
): Promise<void> {
  let seq = BigInt((await getMetaForUpdate(conn, 'seq')) ?? '0');
  let hlc: Hlc = BigInt((await getMetaForUpdate(conn, 'hlc')) ?? '0');
  const values: unknown[][] = [];
  for (const e of entries) {
    seq += 1n;
    hlc = hlcNext(hlc, e.atMs);
    values.push([
      ctx.nodeId,
      seq.toString(),
      hlc.toString(),
      e.tbl,
      e.op,
      e.lkey,
      e.oldLkey,
      e.ident,
      e.payload === null ? null : JSON.stringify(e.payload),
    ]);
  }
  for (let i = 0; i < values.length; i += 500) {
    const part = values.slice(i, i + 500);
    await execute(
      conn,
      `INSERT INTO clinicsync_log (origin, seq, hlc, tbl, op, lkey, old_lkey, ident, payload) VALUES ${part.map(() => '(?,?,?,?,?,?,?,?,?)').join(',')}`,
      part.flat(),
    );
  }
  await setMeta(conn, 'seq', seq.toString());
  await setMeta(conn, 'hlc', hlc.toString());
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
