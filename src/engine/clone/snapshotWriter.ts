import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execute, inTransaction, queryRows, type Queryable } from '../db/pool.js';
import { SyncError } from '../errors.js';
import { getMeta } from '../node/meta.js';
import type { SyncNode } from '../node/node.js';
import { newNodeSecret } from '../transport/auth.js';
import { writeSnapshot, type SnapshotSummary } from './snapshot.js';
import { SealStream, newSealing, registrationPart, type FileRegistration } from './snapshotFile.js';

/*
 * `clinic-sync snapshot --out FILE` on the parent (issue 6, "Offline clone"). Pairing for a file
 * clone: the file itself carries the pairing. The parent makes the child-to-be's node id,
 * incarnation and node secret, writes them encrypted with the snapshot, and once the file is
 * complete registers that child as its own (as pairing over the network does), known by a
 * placeholder name ("file:" and the start of its node id) until its first exchange tells its real
 * one. The one-time code is the only way into the file; a file makes one child.
 *
 * The child is registered with a used pairing row dated now, so a file never used is treated as
 * a child silent since the snapshot (storage.childSilentDays), and the parent's log is not held
 * for it for ever.
 */

/** Names of children registered by a snapshot file, until they name themselves. */
export const FILE_CHILD_PREFIX = 'file:';

export interface SnapshotFileResult extends SnapshotSummary {
  /** the one-time code, like "K7Q2-M9XD-4HRT-B3WN-PZ6F" */
  code: string;
  file: string;
  /** the name the child is known by until its first exchange */
  placeholder: string;
}

export async function writeSnapshotFile(
  node: SyncNode,
  file: string,
  opts: { url: string | null; pickup?: () => Promise<unknown> },
): Promise<SnapshotFileResult> {
  const out = path.resolve(file);
  if (!fs.existsSync(path.dirname(out))) {
    throw new SyncError('usage', `The folder ${path.dirname(out)} does not exist; check --out.`);
  }
  const sealing = await newSealing();
  const registration: FileRegistration = {
    child: {
      nodeId: randomBytes(8).toString('hex'),
      incarnation: randomBytes(4).toString('hex'),
      secret: newNodeSecret().toString('hex'),
    },
    parent: {
      nodeId: node.nodeId,
      name: (await getMeta(node.pool, 'name')) ?? node.settings.name,
      incarnation: node.incarnation,
      url: opts.url,
    },
    madeAt: new Date().toISOString(),
  };
  const temp = `${out}.${randomBytes(4).toString('hex')}.part`;
  let summary: SnapshotSummary;
  try {
    const sink = fs.createWriteStream(temp, { flags: 'wx', mode: 0o600 });
    sink.write(sealing.head);
    const seal = new SealStream(sealing.key, sealing.head);
    seal.write(registrationPart(registration));
    const written = pipeline(seal, sink);
    [summary] = await Promise.all([
      writeSnapshot(node, seal, opts.pickup ? { pickup: opts.pickup } : {}),
      written,
    ]);
    const fd = await fs.promises.open(temp, 'r');
    await fd.sync();
    await fd.close();
    await fs.promises.rename(temp, out);
  } catch (e) {
    await fs.promises.rm(temp, { force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new SyncError('state', `There is no room left for the snapshot at ${out}.`, {
        cause: e,
      });
    }
    throw e;
  }
  const placeholder = `${FILE_CHILD_PREFIX}${registration.child.nodeId.slice(0, 8)}`;
  try {
    await registerFileChild(node.pool, registration, placeholder);
  } catch (e) {
    await fs.promises.rm(out, { force: true });
    throw e;
  }
  return { ...summary, code: sealing.code, file: out, placeholder };
}

async function registerFileChild(
  pool: SyncNode['pool'],
  r: FileRegistration,
  placeholder: string,
): Promise<void> {
  await inTransaction(pool, async (conn) => {
    await execute(
      conn,
      `INSERT INTO clinicsync_peer (node_id, name, relation, incarnation, url, secret)
       VALUES (?, ?, 'child', ?, NULL, ?)`,
      [r.child.nodeId, placeholder, r.child.incarnation, Buffer.from(r.child.secret, 'hex')],
    );
    // Its pairing, done by the file: used at once, so it can never pair anything over the network.
    const now = new Date().toISOString().slice(0, 19).replace('T', ' ');
    await execute(
      conn,
      'INSERT INTO clinicsync_pairing (code_hash, expires_at, used_at, used_by) VALUES (?, ?, ?, ?)',
      [
        createHash('sha256').update(`file:${r.child.nodeId}:${r.child.secret}`).digest(),
        now,
        now,
        r.child.nodeId,
      ],
    );
  });
}

/**
 * On a parent, at a child's exchange: a child registered by a snapshot file takes the name it
 * gave itself (where no other child of this parent has it).
 */
export async function nameFileChild(db: Queryable, nodeId: string, name: string): Promise<void> {
  const [peer] = await queryRows(
    db,
    "SELECT name FROM clinicsync_peer WHERE node_id = ? AND relation = 'child'",
    [nodeId],
  );
  if (!peer || !String(peer.name).startsWith(FILE_CHILD_PREFIX) || name === '') return;
  try {
    await execute(
      db,
      "UPDATE clinicsync_peer SET name = ? WHERE node_id = ? AND relation = 'child' AND name LIKE 'file:%'",
      [name.slice(0, 64), nodeId],
    );
  } catch (e) {
    // Another child has that name: this one keeps its placeholder.
    if ((e as { code?: string }).code !== 'ER_DUP_ENTRY') throw e;
  }
}
