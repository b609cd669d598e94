import { createHash } from 'node:crypto';
import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { hasTables, type KnownTables } from '../db/schema.js';

/**
 * Identifier generators two nodes share (issue 12 point 4). OpenMRS's idgen module hands out
 * patient identifiers from a counter per sequential source (`idgen_seq_id_gen`: prefix, next
 * value). A clone copies that counter, and the OpenMRS preset keeps it per server from then on,
 * so a clinic cloned from its main server, or two clinics given the same prefix, hand out the
 * same identifiers to different patients. Each node tells its neighbours a digest of what its
 * sequential sources issue (identifier type and prefix), never the prefixes themselves; a node
 * that finds one of its own digests among a neighbour's warns in status.
 */

export interface IdSource {
  name: string;
  typeName: string;
  prefix: string;
  /** 12 hex digits of SHA-256 over the identifier type's uuid and the prefix */
  digest: string;
}

/** This database's sequential identifier sources that are in use. */
export async function readIdSources(db: Queryable, known?: KnownTables): Promise<IdSource[]> {
  if (
    !(await hasTables(
      db,
      ['idgen_seq_id_gen', 'idgen_identifier_source', 'patient_identifier_type'],
      known,
    ))
  )
    return [];
  const rows = await queryRows(
    db,
    `SELECT s.name, t.name AS type_name, t.uuid AS type_uuid, g.prefix
       FROM idgen_seq_id_gen g
       JOIN idgen_identifier_source s ON s.id = g.id
       JOIN patient_identifier_type t ON t.patient_identifier_type_id = s.identifier_type
      WHERE s.retired = 0
      ORDER BY s.id`,
  );
  return rows.map((r) => {
    const prefix = r.prefix == null ? '' : String(r.prefix);
    return {
      name: String(r.name),
      typeName: String(r.type_name),
      prefix,
      digest: createHash('sha256')
        .update(`${String(r.type_uuid)}\u0000${prefix}`)
        .digest('hex')
        .slice(0, 12),
    };
  });
}

/** The envelope's `ids` attribute: the digests, space-separated. */
export function encodeIdSources(list: IdSource[]): string {
  return [...new Set(list.map((s) => s.digest))].join(' ');
}

/** Keeps what a neighbour's envelope said of its identifier sources. */
export async function rememberIdSources(db: Queryable, peer: string, ids: string): Promise<void> {
  await execute(
    db,
    'INSERT INTO clinicsync_peer_idgen (peer, digests) VALUES (?, ?) ON DUPLICATE KEY UPDATE digests = VALUES(digests)',
    [peer, ids],
  );
}

/** A sentence per neighbour that hands out the same identifiers as this node, or null. */
export async function identifierWarning(
  db: Queryable,
  peers: { nodeId: string; name: string; relation: 'parent' | 'child' }[],
): Promise<string | null> {
  const rows = await queryRows(
    db,
    // a neighbour with no sources cannot share one: this node's are not read for it
    "SELECT peer, digests FROM clinicsync_peer_idgen WHERE digests <> ''",
  );
  if (!rows.length) return null;
  const mine = await readIdSources(db);
  const sentences: string[] = [];
  for (const r of rows) {
    const theirs = new Set(String(r.digests).split(' '));
    const shared = mine.filter((s) => theirs.has(s.digest));
    const peer = peers.find((p) => p.nodeId === String(r.peer));
    if (!shared.length || !peer) continue;
    const s = shared[0]!;
    const other = peer.relation === 'parent' ? `the main server (${peer.name})` : peer.name;
    const me = peer.relation === 'parent' ? 'This clinic' : 'This server';
    const prefix = s.prefix ? `with the prefix "${s.prefix}"` : 'with no prefix';
    sentences.push(
      `${me} and ${other} both hand out ${s.typeName} identifiers ${prefix} from their own counters ("${s.name}"), so they will give the same identifier to different patients. In OpenMRS, give one of them its own prefix or identifier source before registering more patients.`,
    );
  }
  return sentences.length ? sentences.join(' ') : null;
}
