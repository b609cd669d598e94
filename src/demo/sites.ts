import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { cloneFromParent, type CloneResult } from '../engine/clone/clone.js';
import { Home } from '../engine/config/home.js';
import { defaultSettings } from '../engine/config/settings.js';
import { openPool, type Pool } from '../engine/db/pool.js';
import { dbUrlOf, parseDbUrl, type DbTarget } from '../engine/db/url.js';
import { SyncNode } from '../engine/node/node.js';
import type { Cleanup } from './cleanup.js';
import type { DemoServer } from './server.js';

/**
 * One clinic in the demo: its own throwaway database (what OpenMRS would use), the clinic's
 * application connection to it, and the ClinicSync node on it with a temporary home. The parent
 * is made with `initRoot`, each child with `cloneChild`; all live on the same database server.
 */
export interface DemoSite {
  /** the node's name, e.g. "Amani Hospital" */
  name: string;
  database: string;
  target: DbTarget;
  /** the clinic application's own connections (OpenMRS's pool) */
  app: Pool;
  home: Home;
  node: SyncNode | null;
}

/**
 * Creates an empty database `clinicsync_demo_<random>` (utf8mb3, like OpenMRS's) and registers
 * its removal, with the site's home folder, on `cleanup`.
 */
export async function createSiteDatabase(
  server: DemoServer,
  name: string,
  cleanup: Cleanup,
): Promise<DemoSite> {
  const database = `clinicsync_demo_${randomBytes(4).toString('hex')}`;
  await onServer(server, (conn) =>
    conn.query(
      `CREATE DATABASE \`${database}\` DEFAULT CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci`,
    ),
  );
  cleanup.add(`drop database ${database}`, async () => {
    await onServer(server, (conn) => conn.query(`DROP DATABASE IF EXISTS \`${database}\``));
  });

  const home = new Home(fs.mkdtempSync(path.join(os.tmpdir(), 'cs-demo-home-')));
  cleanup.add(`remove ${home.dir}`, () => fs.rmSync(home.dir, { recursive: true, force: true }));

  const target = parseDbUrl(server.url(database));
  const app = openPool(target, { connectionLimit: 2 });
  const site: DemoSite = { name, database, target, app, home, node: null };
  cleanup.add(`close ${name}`, async () => {
    await site.node?.close();
    await app.end();
  });
  return site;
}

/** Makes the site's database the root of a tree, as `clinic-sync init` would. */
export async function initRoot(site: DemoSite): Promise<SyncNode> {
  const settings = defaultSettings({ db: dbUrlOf(site.target), name: site.name, role: 'root' });
  settings.tables.preset = 'openmrs';
  site.home.save(settings);
  site.node = await SyncNode.init({ db: site.target, name: site.name, settings, home: site.home });
  return site.node;
}

/**
 * Makes a child as `clinic-sync clone` would: a new empty database and home, paired with the
 * parent's one-time code, filled from the parent's snapshot over HTTP, then one exchange.
 */
export async function cloneChild(
  server: DemoServer,
  name: string,
  parentUrl: string,
  code: string,
  cleanup: Cleanup,
): Promise<{ site: DemoSite; clone: CloneResult }> {
  const site = await createSiteDatabase(server, name, cleanup);
  const clone = await cloneFromParent({
    parentUrl,
    code,
    db: site.target,
    name,
    home: site.home,
  });
  site.node = clone.node;
  return { site, clone };
}

async function onServer<T>(
  server: DemoServer,
  fn: (conn: mysql.Connection) => Promise<T>,
): Promise<T> {
  const a = server.address;
  const conn = await mysql.createConnection({
    host: a.host,
    port: a.port,
    user: a.user,
    password: a.password ?? '',
  });
  try {
    return await fn(conn);
  } finally {
    await conn.end().catch(() => undefined);
  }
}
