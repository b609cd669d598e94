import { queryRows } from '../db/pool.js';
import { SyncError } from '../errors.js';
import type { SyncNode } from '../node/node.js';
import type { Peer } from '../node/peers.js';
import { readParentSecret } from '../transport/client.js';

/**
 * The node secret this node shares with a neighbour since registration: for its parent, the copy
 * in its home (secrets/parent-secret); for a child, the one the pairing stored in the database.
 * Only those two nodes hold it, so only they can read the files they write each other.
 */
export async function sharedSecret(node: SyncNode, peer: Peer): Promise<Buffer> {
  let secret: Buffer | null = null;
  if (peer.relation === 'parent') {
    secret = readParentSecret(node.home);
  } else {
    const [row] = await queryRows(
      node.pool,
      'SELECT secret FROM clinicsync_peer WHERE node_id = ? AND secret IS NOT NULL',
      [peer.nodeId],
    );
    if (row) secret = Buffer.from(row.secret as Buffer);
  }
  if (!secret || secret.length !== 32) {
    throw new SyncError(
      'state',
      peer.relation === 'parent'
        ? `This computer holds no key shared with its main server (${peer.name}), so it cannot seal or open files for it; pair it again (clinic-sync clone).`
        : `This computer holds no key shared with ${peer.name}, so it cannot seal or open files for it; ${peer.name} must pair with this computer again.`,
    );
  }
  return secret;
}
