import { randomBytes } from 'node:crypto';
import type { Pool } from '../db/pool.js';
import { execute, inTransaction } from '../db/pool.js';
import { setMeta } from '../node/meta.js';
import { addPeer } from '../node/peers.js';
import { encodeIdSources, readIdSources, rememberIdSources } from '../openmrs/idgen.js';
import { PROGRESS_TABLE } from './progress.js';

export interface ParentInfo {
  nodeId: string;
  name: string;
  incarnation: string;
  url?: string;
}

/**
 * Turns a consistent copy of the parent's database (data and ClinicSync's state from one
 * snapshot) into a new child (DESIGN §5): a node id and incarnation of its own, its own sequence
 * from zero, no capture left over from the parent, and everything it holds marked as come from
 * the parent, which already has it. The parent's identity, neighbours and secrets are not kept.
 */
export async function adoptAsChild(
  pool: Pool,
  name: string,
  parent: ParentInfo,
  identity?: { nodeId: string; incarnation: string },
): Promise<{ nodeId: string; incarnation: string }> {
  // Given when the parent already knows the child by them (pairing over the network).
  const nodeId = identity?.nodeId ?? randomBytes(8).toString('hex');
  const incarnation = identity?.incarnation ?? randomBytes(4).toString('hex');
  await inTransaction(pool, async (conn) => {
    // A loaded clone becomes usable in this same transaction (see restore.ts).
    await execute(conn, "DELETE FROM clinicsync_meta WHERE k = 'clone_incomplete'");
    await setMeta(conn, 'node_id', nodeId);
    await setMeta(conn, 'incarnation', incarnation);
    await setMeta(conn, 'name', name);
    await setMeta(conn, 'role', 'child');
    await setMeta(conn, 'seq', '0');
    await setMeta(conn, 'capture_paused', '0');
    await execute(conn, 'DELETE FROM clinicsync_capture');
    // The parent's OpenMRS refreshes are its own; this one's start from the copy.
    await execute(conn, 'DELETE FROM clinicsync_openmrs_refresh');
    await execute(
      conn,
      "UPDATE clinicsync_meta SET v = (SELECT COALESCE(MAX(lsn), 0) FROM clinicsync_log) WHERE k = 'openmrs_refresh_lsn'",
    );
    await execute(conn, 'UPDATE clinicsync_log SET src = ?', [parent.nodeId]);
    for (const table of [
      'clinicsync_peer_vv',
      'clinicsync_peer',
      'clinicsync_pairing',
      'clinicsync_nonce',
      'clinicsync_exchange',
      'clinicsync_file_hash',
      'clinicsync_file_out',
      'clinicsync_file_in',
      'clinicsync_peer_table',
      'clinicsync_peer_software',
      'clinicsync_peer_idgen',
    ]) {
      await execute(conn, `DELETE FROM ${table}`);
    }
    await addPeer(conn, {
      nodeId: parent.nodeId,
      name: parent.name,
      relation: 'parent',
      incarnation: parent.incarnation,
      url: parent.url ?? null,
    });
    // The copy's identifier counters are the parent's: until an exchange says otherwise, the
    // parent hands out what this clinic would, so status (and the wizard) warn from the start.
    const sources = await readIdSources(conn);
    if (sources.length) await rememberIdSources(conn, parent.nodeId, encodeIdSources(sources));
    // The parent holds everything the copy holds.
    await execute(
      conn,
      'INSERT INTO clinicsync_peer_vv (peer, origin, seq) SELECT ?, origin, seq FROM clinicsync_vv',
      [parent.nodeId],
    );
    await execute(
      conn,
      'UPDATE clinicsync_peer SET acked_lsn = (SELECT COALESCE(MAX(lsn), 0) FROM clinicsync_log) WHERE node_id = ?',
      [parent.nodeId],
    );
  });
  // The clone's own bookkeeping goes once it is a child (a statement of its own: DDL commits).
  await execute(pool, `DROP TABLE IF EXISTS ${PROGRESS_TABLE}`);
  return { nodeId, incarnation };
}
