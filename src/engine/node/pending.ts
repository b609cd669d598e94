import type { Queryable } from '../db/pool.js';
import { queryRows } from '../db/pool.js';

/** Changes captured here (this node is the origin): what "pending" means before any neighbour. */
export async function ownChanges(db: Queryable, nodeId: string): Promise<number> {
  const [r] = await queryRows(db, 'SELECT COUNT(*) AS n FROM clinicsync_log WHERE origin = ?', [
    nodeId,
  ]);
  return Number(r!.n);
}

/** Changes held here that this neighbour has not acknowledged and did not send. */
export async function pendingFor(db: Queryable, peer: string): Promise<number> {
  const [r] = await queryRows(
    db,
    `SELECT COUNT(*) AS n FROM clinicsync_log l
       LEFT JOIN clinicsync_peer_vv v ON v.peer = ? AND v.origin = l.origin
      WHERE l.lsn > (SELECT acked_lsn FROM clinicsync_peer WHERE node_id = ?)
        AND (l.src IS NULL OR l.src <> ?) AND l.seq > COALESCE(v.seq, 0)`,
    [peer, peer, peer],
  );
  return Number(r!.n);
}

/** Changes held here that at least one child has not acknowledged. */
export async function pendingForAnyChild(db: Queryable): Promise<number> {
  const [r] = await queryRows(
    db,
    `SELECT COUNT(*) AS n FROM clinicsync_log l
      WHERE l.lsn > (SELECT COALESCE(MIN(acked_lsn), 0) FROM clinicsync_peer WHERE relation = 'child')
        AND EXISTS (
          SELECT 1 FROM clinicsync_peer p
            LEFT JOIN clinicsync_peer_vv v ON v.peer = p.node_id AND v.origin = l.origin
           WHERE p.relation = 'child' AND l.lsn > p.acked_lsn
             AND (l.src IS NULL OR l.src <> p.node_id) AND l.seq > COALESCE(v.seq, 0))`,
  );
  return Number(r!.n);
}

/** What the neighbour held at last contact beyond what is here, origin by origin. */
export async function heldByPeerNotHere(db: Queryable, peer: string): Promise<number> {
  const [r] = await queryRows(
    db,
    `SELECT COALESCE(SUM(GREATEST(CAST(pv.seq AS SIGNED) - CAST(COALESCE(v.seq, 0) AS SIGNED), 0)), 0) AS n
       FROM clinicsync_peer_vv pv LEFT JOIN clinicsync_vv v ON v.origin = pv.origin
      WHERE pv.peer = ?`,
    [peer],
  );
  return Number(r!.n);
}
