import { execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { NodeService } from '../../src/engine/node/service.js';
import { digestOf, LocalRows } from '../../src/engine/node/verify.js';
import { ParentClient, writeParentSecret } from '../../src/engine/transport/client.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb, SERVER } from './db.js';
import { cloneDatabase, pairChild } from './http.js';
import { tempHome } from './node.js';
import type { Tree } from './tree.js';

/** A folder standing for a USB key. */
export function usbKey(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cs-usb-'));
}

/**
 * A child of `parent` over real HTTP: cloned from its database, paired with a one-time code (so
 * both hold the node secret the transfer files are sealed with), and able to sync by network.
 */
export interface NetChild {
  node: SyncNode;
  sync(): Promise<{ sent: number; received: number }>;
  close(): Promise<void>;
}

export async function netChild(
  tree: Tree,
  parent: SyncNode,
  server: SyncServer,
  name: string,
): Promise<NetChild> {
  const { node } = await cloneDatabase(tree, parent, name, server.url);
  const pairing = await pairChild(node, parent, server.url);
  await pairing.close();
  const client = await ParentClient.forNode(node);
  const service = new NodeService(node, client);
  return {
    node,
    sync: () => service.syncNow(),
    close: () => client.close(),
  };
}

/** The HTTP endpoint of a parent, for its children's network exchanges. */
export function serve(node: SyncNode): Promise<SyncServer> {
  return startSyncServer({ node, host: '127.0.0.1', port: 0 });
}

/**
 * Gives a parent and a child made with Tree.clone (no pairing) a node secret, as pairing would:
 * the parent keeps it in its peer row, the child in its home.
 */
export async function shareSecret(parent: SyncNode, child: SyncNode): Promise<void> {
  const secret = randomBytes(32);
  await execute(parent.pool, 'UPDATE clinicsync_peer SET secret = ? WHERE node_id = ?', [
    secret,
    child.nodeId,
  ]);
  writeParentSecret(child.home, secret);
}

/**
 * Everything a refused or repeated file must leave as it was: each synced table's rows (by the
 * digests `verify` compares), and ClinicSync's bookkeeping.
 */
export async function nodeState(node: SyncNode): Promise<Record<string, unknown>> {
  const rows = await LocalRows.of(node);
  const tables: Record<string, unknown> = {};
  for (const t of rows.synced) tables[t] = digestOf(await rows.allRows(t));
  const read = async (sql: string) =>
    (await queryRows(node.pool, sql)).map((r) => Object.values(r).map(String).join(' '));
  return {
    tables,
    log: await read('SELECT origin, seq, hlc FROM clinicsync_log ORDER BY origin, seq'),
    vv: await read('SELECT origin, seq FROM clinicsync_vv ORDER BY origin'),
    peerVv: await read('SELECT peer, origin, seq FROM clinicsync_peer_vv ORDER BY peer, origin'),
    parked: await read('SELECT origin, seq FROM clinicsync_parked ORDER BY origin, seq'),
    conflicts: await read('SELECT COUNT(*) FROM clinicsync_conflict'),
  };
}

/** The synced tables' digests alone: equal on two nodes exactly when their rows agree. */
export async function digests(node: SyncNode): Promise<Record<string, unknown>> {
  return (await nodeState(node)).tables as Record<string, unknown>;
}

export async function addPerson(node: SyncNode, uuid: string, gender = 'F'): Promise<void> {
  await execute(
    node.pool,
    'INSERT INTO person (gender, creator, date_created, uuid) VALUES (?, 1, ?, ?)',
    [gender, '2026-01-01', uuid],
  );
}

export async function people(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(node.pool, 'SELECT uuid, gender FROM person ORDER BY uuid');
  return rows.map((r) => `${String(r.uuid)}:${String(r.gender)}`);
}

/** The transfer files in a folder, oldest name first. */
export function filesIn(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.csync'))
    .sort()
    .map((f) => path.join(dir, f));
}

/**
 * A backup of a node's database as it is now (one consistent dump into a new database), to be
 * opened later as the same node "restored from the backup".
 */
export async function backupOf(tree: Tree, node: SyncNode): Promise<{ open(): Promise<SyncNode> }> {
  await node.pickup();
  const db = await createTestDb('cs_backup');
  tree.dbs.push(db);
  const conn = `-h ${SERVER.host} -P ${SERVER.port} -u ${SERVER.user}`;
  execSync(
    `mariadb-dump ${conn} --single-transaction --routines --triggers --no-tablespaces --skip-comments ${node.db.database} | mariadb ${conn} ${db.name}`,
    { env: { ...process.env, MYSQL_PWD: SERVER.password }, stdio: 'pipe' },
  );
  return {
    async open() {
      const home = tempHome();
      const settings = { ...node.settings, db: dbUrlOf(db.target) };
      home.save(settings);
      const restored = await SyncNode.open({ db: db.target, settings, home, lock: 'try' });
      tree.nodes.push(restored);
      return restored;
    },
  };
}
