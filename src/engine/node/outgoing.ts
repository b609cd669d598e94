import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import type { StoredValue } from '../capture/values.js';
import type { TablePlan } from '../identity/plan.js';
import { PROTOCOL_VERSION } from '../protocol/xml.js';
import type { Basis, Envelope, WireChange } from '../protocol/types.js';
import { getMeta } from './meta.js';
import { readVv, vvToWire } from './peers.js';

export interface OutgoingContext {
  db: Queryable;
  nodeId: string;
  incarnation: string;
  name: string;
  plans: Map<string, TablePlan>;
  /** tables this node passes on; the others travel as skip markers */
  selected: (table: string) => boolean;
  /** this node's wall clock, ms */
  now: number;
}

export interface Limits {
  records: number;
  bytes: number;
}

/**
 * The next batch for a neighbour (DESIGN §5): every change held here that the neighbour has not
 * acknowledged and did not send, in this node's order of arrival (so each origin's changes stay
 * in sequence), bounded by records and bytes. The acknowledged prefix is remembered so later
 * batches start after it.
 */
export async function buildBatch(
  ctx: OutgoingContext,
  peer: string,
  limits: Limits,
  /** for a file of several batches (USB): where the batch before ended; moved to where this one ends */
  resume?: { lsn: bigint },
): Promise<Envelope> {
  const [p] = await queryRows(ctx.db, 'SELECT acked_lsn FROM clinicsync_peer WHERE node_id = ?', [
    peer,
  ]);
  let floor = BigInt(String(p?.acked_lsn ?? '0'));
  const theirs = await readVv(ctx.db, 'clinicsync_peer_vv', peer);
  const changes: WireChange[] = [];
  const tables = new Map<string, string>();
  let bytes = 0;
  let more = false;
  let prefixDone = true;
  let cursor = floor;
  if (resume && resume.lsn > floor) {
    cursor = resume.lsn;
    prefixDone = false;
  }
  while (!more) {
    const rows = await queryRows(
      ctx.db,
      // The peer's own changes are passed over: their values are not read.
      `SELECT lsn, origin, seq, hlc, tbl, op, ident, old_ident, src,
              IF(src <=> ?, NULL, payload) AS payload, IF(src <=> ?, NULL, basis) AS basis
         FROM clinicsync_log WHERE lsn > ? ORDER BY lsn LIMIT 2000`,
      [peer, peer, cursor.toString()],
    );
    if (!rows.length) break;
    for (const r of rows) {
      const lsn = BigInt(String(r.lsn));
      const origin = String(r.origin);
      const known = r.src === peer || BigInt(String(r.seq)) <= (theirs.get(origin) ?? 0n);
      if (known) {
        if (prefixDone) floor = lsn;
        cursor = lsn;
        continue;
      }
      prefixDone = false;
      if (changes.length >= limits.records || (bytes >= limits.bytes && changes.length)) {
        more = true;
        break;
      }
      cursor = lsn;
      const table = String(r.tbl);
      const payload = r.payload == null ? null : String(r.payload);
      bytes += 64 + (payload?.length ?? 0) + String(r.ident ?? '').length;
      if (r.op === 'S' || !ctx.selected(table) || !ctx.plans.has(table)) {
        changes.push({
          origin,
          seq: String(r.seq),
          hlc: String(r.hlc),
          op: 'S',
          table: '',
          ident: '',
        });
        continue;
      }
      tables.set(table, ctx.plans.get(table)!.table.fingerprint);
      changes.push({
        origin,
        seq: String(r.seq),
        hlc: String(r.hlc),
        op: r.op as WireChange['op'],
        table,
        ident: String(r.ident ?? ''),
        ...(r.old_ident != null ? { oldIdent: String(r.old_ident) } : {}),
        ...(payload !== null ? { values: JSON.parse(payload) as Record<string, StoredValue> } : {}),
        ...(r.basis != null ? { basis: JSON.parse(String(r.basis)) as Basis } : {}),
      });
    }
  }
  await execute(
    ctx.db,
    'UPDATE clinicsync_peer SET acked_lsn = GREATEST(acked_lsn, ?) WHERE node_id = ?',
    [floor.toString(), peer],
  );
  if (resume) resume.lsn = cursor;
  return {
    version: PROTOCOL_VERSION,
    from: { node: ctx.nodeId, incarnation: ctx.incarnation, name: ctx.name },
    to: peer,
    time: String(ctx.now),
    hlc: (await getMeta(ctx.db, 'hlc')) ?? '0',
    vv: vvToWire(await readVv(ctx.db, 'clinicsync_vv')),
    tables: [...tables].map(([name, fingerprint]) => ({ name, fingerprint })),
    changes,
    more,
  };
}
