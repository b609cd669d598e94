import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import type { VersionVector } from '../protocol/types.js';

/** A neighbour: the parent, or a child. */
export interface Peer {
  nodeId: string;
  name: string;
  relation: 'parent' | 'child';
  incarnation: string | null;
  url: string | null;
  ackedLsn: bigint;
  lastContactAt: string | null;
}

export async function listPeers(db: Queryable): Promise<Peer[]> {
  const rows = await queryRows(
    db,
    'SELECT node_id, name, relation, incarnation, url, acked_lsn, last_contact_at FROM clinicsync_peer ORDER BY name',
  );
  return rows.map((r) => ({
    nodeId: String(r.node_id),
    name: String(r.name),
    relation: r.relation === 'parent' ? 'parent' : 'child',
    incarnation: r.incarnation == null ? null : String(r.incarnation),
    url: r.url == null ? null : String(r.url),
    ackedLsn: BigInt(String(r.acked_lsn)),
    lastContactAt:
      r.last_contact_at == null
        ? null
        : new Date(String(r.last_contact_at).replace(' ', 'T') + 'Z').toISOString(),
  }));
}

export async function addPeer(
  db: Queryable,
  p: {
    nodeId: string;
    name: string;
    relation: Peer['relation'];
    incarnation?: string | null;
    url?: string | null;
  },
): Promise<void> {
  await execute(
    db,
    `INSERT INTO clinicsync_peer (node_id, name, relation, incarnation, url) VALUES (?, ?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE name = VALUES(name), relation = VALUES(relation), incarnation = VALUES(incarnation), url = VALUES(url)`,
    [p.nodeId, p.name, p.relation, p.incarnation ?? null, p.url ?? null],
  );
}

export async function readVv(
  db: Queryable,
  table: 'clinicsync_vv' | 'clinicsync_peer_vv',
  peer?: string,
): Promise<Map<string, bigint>> {
  const rows =
    table === 'clinicsync_vv'
      ? await queryRows(db, 'SELECT origin, seq FROM clinicsync_vv')
      : await queryRows(db, 'SELECT origin, seq FROM clinicsync_peer_vv WHERE peer = ?', [peer]);
  return new Map(rows.map((r) => [String(r.origin), BigInt(String(r.seq))]));
}

export function vvToWire(vv: Map<string, bigint>): VersionVector {
  return Object.fromEntries([...vv].map(([o, s]) => [o, s.toString()]));
}

/** What the neighbour says it holds: its acknowledgement. Never goes backwards. */
export async function recordPeerVv(db: Queryable, peer: string, vv: VersionVector): Promise<void> {
  for (const [origin, seq] of Object.entries(vv)) {
    await execute(
      db,
      'INSERT INTO clinicsync_peer_vv (peer, origin, seq) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))',
      [peer, origin, seq],
    );
  }
  await execute(
    db,
    'UPDATE clinicsync_peer SET last_contact_at = UTC_TIMESTAMP(3) WHERE node_id = ?',
    [peer],
  );
}
