import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SNAPSHOT_PATH, snapshotRoute } from '../../src/engine/clone/snapshot.js';
import { execute, openPool, queryRows, type Queryable } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createPairingCode } from '../../src/engine/transport/pairing.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb, SERVER, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { initRoot, tempHome } from '../helpers/node.js';
import { runMain } from '../helpers/cli.js';

// Whole databases are cloned here (some by the command line in a process of its own): minutes
// on a loaded machine, not the default minute.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

/*
 * Issue 6, "Before overwriting": a clone refuses a database that holds anything and says what;
 * with --replace it refuses while another application is connected to it ("Stop OpenMRS
 * first"), and otherwise saves the old contents to a dump in the node's home (which the standard
 * client loads back whole) before it makes the child.
 */

/** Every table's checksum, and the names of the other objects. */
async function contents(db: Queryable, database: string) {
  const tables = await queryRows(
    db,
    "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
    [database],
  );
  const sums: Record<string, string> = {};
  for (const { t } of tables) {
    const [r] = await queryRows(db, `CHECKSUM TABLE \`${database}\`.\`${String(t)}\``);
    sums[String(t)] = String(r!.Checksum);
  }
  const names = async (sql: string) =>
    (await queryRows(db, sql, [database])).map((r) => String(r.n));
  return {
    sums,
    views: await names(
      'SELECT TABLE_NAME AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?',
    ),
    routines: await names(
      'SELECT ROUTINE_NAME AS n FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?',
    ),
    triggers: await names(
      'SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?',
    ),
  };
}

describe('clone into a database that holds something', () => {
  let parentDb: TestDb;
  let parent: SyncNode;
  let server: SyncServer;
  let target: TestDb;
  let before: Awaited<ReturnType<typeof contents>>;
  const restored: TestDb[] = [];
  /** the first test's code: the database is checked before a code is spent */
  let unspent = '';

  beforeAll(async () => {
    parentDb = await createTestDb('cs_parent');
    await createClinicSchema(parentDb.pool);
    parent = await initRoot(parentDb, 'district');
    server = await startSyncServer({
      node: parent,
      host: '127.0.0.1',
      port: 0,
      extraRoutes: { [SNAPSHOT_PATH]: snapshotRoute() },
    });
    // An old OpenMRS of its own: tables with rows (text, bytes, a zero date), a view, a trigger,
    // a routine.
    target = await createTestDb('cs_old');
    await execute(
      target.pool,
      'CREATE TABLE patient (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET latin1, seen DATETIME, photo BLOB)',
    );
    await execute(
      target.pool,
      'CREATE TABLE visit (id INT AUTO_INCREMENT PRIMARY KEY, patient INT)',
    );
    await execute(target.pool, 'CREATE TABLE audit (what VARCHAR(20))');
    await execute(target.pool, 'CREATE VIEW named AS SELECT id, name FROM patient');
    await execute(
      target.pool,
      "CREATE TRIGGER visit_audit AFTER INSERT ON visit FOR EACH ROW INSERT INTO audit VALUES ('visit')",
    );
    await execute(
      target.pool,
      'CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2',
    );
    const conn = await target.pool.getConnection();
    await execute(conn, "SET SESSION sql_mode = ''");
    await execute(
      conn,
      "INSERT INTO patient VALUES (1, 'Zoë', '0000-00-00 00:00:00', X'00FF0A27'), (2, 'Amani', '2024-03-01 10:00:00', NULL)",
    );
    conn.release();
    await execute(target.pool, 'INSERT INTO visit (patient) VALUES (1), (1), (2)');
    before = await contents(target.pool, target.name);
    // The test's own connections to it would count as another application's.
    await target.pool.end();
  });
  afterAll(async () => {
    await server?.close();
    await parent?.close();
    await parentDb?.drop();
    await target?.drop();
    for (const d of restored) await d.drop();
  });

  it('refuses it, saying what it holds, and leaves it as it was', async () => {
    const { code } = await createPairingCode(parent.pool, 60);
    const home = tempHome();
    const args = ['--home', home.dir, 'clone', '--parent', server.url, '--code', code];
    const refused = await runMain([...args, '--db', target.url, '--name', 'north']);
    expect(refused.code).toBe(1);
    expect(refused.err.at(-1)).toBe(
      `The database ${target.name} already holds 3 tables with 8 rows, 1 view and 1 stored routine; clone needs an empty database. To replace them, add --replace: what it holds is first saved to a dump file in this clinic's ClinicSync folder.`,
    );
    const pool = openPool(target.target);
    try {
      expect(await contents(pool, target.name)).toEqual(before);
    } finally {
      await pool.end();
    }
    unspent = code;
  });

  it('with --replace, refuses while another application is connected to it', async () => {
    const { code } = await createPairingCode(parent.pool, 60);
    const app = await mysql.createConnection({ ...SERVER, database: target.name });
    try {
      await app.query('SELECT 1');
      const refused = await runMain([
        '--home',
        tempHome().dir,
        'clone',
        '--parent',
        server.url,
        '--code',
        code,
        '--db',
        target.url,
        '--name',
        'north',
        '--replace',
      ]);
      expect(refused.code).toBe(1);
      expect(refused.err.at(-1)).toMatch(
        new RegExp(
          `^Stop OpenMRS first: 1 other connection \\(${SERVER.user}@[^)]+\\) is using the database ${target.name}, and replacing it under them would break them\\.`,
        ),
      );
    } finally {
      await app.end();
    }
  });

  it('with --replace, saves the old contents to a dump in the home first, then clones', async () => {
    const code = unspent;
    const home = tempHome();
    const made = await runMain([
      '--home',
      home.dir,
      'clone',
      '--parent',
      server.url,
      '--code',
      code,
      '--db',
      target.url,
      '--name',
      'north',
      '--replace',
    ]);
    expect(made.code, made.err.join('\n')).toBe(0);
    const backups = fs.readdirSync(path.join(home.dir, 'backups'));
    expect(backups).toEqual([
      expect.stringMatching(new RegExp(`^${target.name}-before-clone-.*\\.sql\\.gz$`)),
    ]);
    const file = path.join(home.dir, 'backups', backups[0]!);
    expect(made.err).toContain(`The database's old contents are saved in ${file}.`);
    expect(made.err.join('\n')).toContain(`gunzip < ${file} | mariadb ${target.name}`);

    // The database is now the child.
    const pool = openPool(target.target);
    try {
      const tables = (await contents(pool, target.name)).sums;
      expect(Object.keys(tables)).toContain('encounter');
      expect(Object.keys(tables)).not.toContain('audit');
    } finally {
      await pool.end();
    }

    // The dump gives the old database back, whole.
    const back = await createTestDb('cs_back');
    restored.push(back);
    execSync(
      `gunzip < '${file}' | mariadb -h ${SERVER.host} -P ${SERVER.port} -u ${SERVER.user} ${back.name}`,
      { env: { ...process.env, MYSQL_PWD: SERVER.password }, stdio: 'pipe' },
    );
    expect(await contents(back.pool, back.name)).toEqual(before);
    const [zero] = await queryRows(
      back.pool,
      'SELECT seen, HEX(photo) AS p FROM patient WHERE id = 1',
    );
    expect(zero).toEqual({ seen: '0000-00-00 00:00:00', p: '00FF0A27' });
  });
});
