import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSampleDb, SERVER, type TestDb } from '../helpers/db.js';
import { execute, queryRows, type Pool } from '../../src/engine/db/pool.js';
import { introspect } from '../../src/engine/db/schema.js';
import { q } from '../../src/engine/db/ident.js';
import { acquireNodeLock } from '../../src/engine/node/lock.js';
import { uninstall } from '../../src/engine/node/uninstall.js';
import { SyncError } from '../../src/engine/errors.js';
import { initRoot } from '../helpers/node.js';

/** Everything about the application's own triggers, including when they were created. */
async function appTriggers(pool: Pool, db: string) {
  return queryRows(
    pool,
    `SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, ACTION_STATEMENT,
            ACTION_TIMING, CREATED, SQL_MODE, DEFINER
       FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME`,
    [db],
  );
}

/** The server's own description of every application table, AUTO_INCREMENT counter included. */
async function createStatements(pool: Pool, db: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const rows = await queryRows(
    pool,
    `SELECT TABLE_NAME FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = ? AND LOWER(TABLE_NAME) NOT LIKE 'clinicsync\\_%' ORDER BY TABLE_NAME`,
    [db],
  );
  for (const r of rows) {
    const [c] = await queryRows(pool, `SHOW CREATE TABLE ${q(String(r.TABLE_NAME))}`);
    out.set(String(r.TABLE_NAME), String(c?.['Create Table'] ?? c?.['Create View']));
  }
  return out;
}

/** Anything named clinicsync_ (any case) left in the database. */
async function leftovers(pool: Pool, db: string): Promise<string[]> {
  const rows = await queryRows(
    pool,
    `SELECT CONCAT('table ', TABLE_NAME) AS x FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = ? AND LOWER(TABLE_NAME) LIKE 'clinicsync\\_%'
     UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS
      WHERE TRIGGER_SCHEMA = ? AND LOWER(TRIGGER_NAME) LIKE 'clinicsync\\_%'
     UNION ALL SELECT CONCAT('routine ', ROUTINE_NAME) FROM information_schema.ROUTINES
      WHERE ROUTINE_SCHEMA = ? AND LOWER(ROUTINE_NAME) LIKE 'clinicsync\\_%'
     UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS
      WHERE EVENT_SCHEMA = ? AND LOWER(EVENT_NAME) LIKE 'clinicsync\\_%'`,
    [db, db, db, db],
  );
  return rows.map((r) => String(r.x));
}

/**
 * What an install leaves behind, as far as uninstall is concerned: tables that reference one
 * another, a table in mixed case, the lock holder table, a view, a routine, an event, and capture
 * triggers on a real application table (one of them AFTER INSERT next to the application's own).
 */
async function simulateInstall(db: TestDb, table: string, keyColumn: string): Promise<void> {
  const p = db.pool;
  await execute(
    p,
    `CREATE TABLE clinicsync_capture (
       id BIGINT AUTO_INCREMENT PRIMARY KEY, tbl VARCHAR(64) NOT NULL, pk VARCHAR(255) NOT NULL,
       op CHAR(1) NOT NULL, at DATETIME(6) NOT NULL) ENGINE=InnoDB`,
  );
  await execute(
    p,
    `CREATE TABLE clinicsync_outlog (
       seq BIGINT PRIMARY KEY, capture_id BIGINT NOT NULL,
       CONSTRAINT clinicsync_outlog_capture FOREIGN KEY (capture_id) REFERENCES clinicsync_capture (id)
     ) ENGINE=InnoDB`,
  );
  await execute(p, 'CREATE TABLE ClinicSync_Mixed (k VARCHAR(32) PRIMARY KEY, v TEXT)');
  await execute(p, 'CREATE VIEW clinicsync_pending AS SELECT id, tbl FROM clinicsync_capture');
  await execute(p, 'CREATE PROCEDURE clinicsync_noop() BEGIN END');
  await execute(
    p,
    'CREATE EVENT clinicsync_prune ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM clinicsync_capture',
  );
  await execute(
    p,
    `CREATE TRIGGER clinicsync_x_ai AFTER INSERT ON ${q(table)} FOR EACH ROW
       IF @clinicsync_applying IS NULL THEN
         INSERT INTO clinicsync_capture (tbl, pk, op, at) VALUES ('${table}', NEW.${q(keyColumn)}, 'I', NOW(6));
       END IF`,
  );
  await execute(
    p,
    `CREATE TRIGGER ClinicSync_X_AU AFTER UPDATE ON ${q(table)} FOR EACH ROW
       INSERT INTO clinicsync_capture (tbl, pk, op, at) VALUES ('${table}', NEW.${q(keyColumn)}, 'U', NOW(6))`,
  );
  const lock = await acquireNodeLock(p, db.name, { wait: false, holderInfo: 'install test' });
  await lock.release();
}

describe('uninstall leaves the application schema exactly as before', () => {
  const dbs: TestDb[] = [];
  afterAll(async () => {
    for (const d of dbs) await d.drop();
  });

  for (const sample of [
    { kind: 'openmrs' as const, table: 'person', key: 'person_id', appTriggers: 0 },
    { kind: 'sakila' as const, table: 'film', key: 'film_id', appTriggers: 6 },
  ]) {
    it(`on ${sample.kind}`, async () => {
      const db = await loadSampleDb(sample.kind);
      dbs.push(db);
      const before = await introspect(db.pool, db.name);
      const triggersBefore = await appTriggers(db.pool, db.name);
      const createBefore = await createStatements(db.pool, db.name);
      expect(triggersBefore).toHaveLength(sample.appTriggers);
      expect(before.tables.size).toBeGreaterThan(10);

      await simulateInstall(db, sample.table, sample.key);
      const during = await leftovers(db.pool, db.name);
      expect(during.sort()).toEqual(
        [
          'event clinicsync_prune',
          'routine clinicsync_noop',
          'table ClinicSync_Mixed',
          'table clinicsync_capture',
          'table clinicsync_lock_holder',
          'table clinicsync_outlog',
          'table clinicsync_pending',
          'trigger ClinicSync_X_AU',
          'trigger clinicsync_x_ai',
        ].sort(),
      );
      expect((await appTriggers(db.pool, db.name)).length).toBe(sample.appTriggers + 2);

      expect(await uninstall(db.target)).toEqual({ triggers: 2, tables: 5 });

      expect(await leftovers(db.pool, db.name)).toEqual([]);
      const after = await introspect(db.pool, db.name);
      // Every table entry (columns, keys, foreign keys, auto-increment, fingerprint), the views,
      // the application's triggers and routines: nothing was written to application tables, so
      // nothing legitimately differs.
      expect(after).toEqual(before);
      expect([...after.tables.keys()]).toEqual([...before.tables.keys()]);
      expect(await appTriggers(db.pool, db.name)).toEqual(triggersBefore);
      expect(await createStatements(db.pool, db.name)).toEqual(createBefore);

      // The application's writes work and nothing captures them any more.
      await execute(db.pool, `UPDATE ${q(sample.table)} SET ${q(sample.key)} = ${q(sample.key)}`);

      expect(await uninstall(db.target)).toEqual({ triggers: 0, tables: 0 });
    });
  }

  for (const sample of [
    { kind: 'openmrs' as const, update: "UPDATE location SET city_village = 'Rwinkwavu'" },
    {
      kind: 'sakila' as const,
      update: "UPDATE film SET title = CONCAT(title, '!') WHERE film_id < 5",
    },
  ]) {
    it(`after a real init and captured work on ${sample.kind}`, async () => {
      const db = await loadSampleDb(sample.kind);
      dbs.push(db);
      const before = await introspect(db.pool, db.name);
      const triggersBefore = await appTriggers(db.pool, db.name);
      const node = await initRoot(db);
      await execute(db.pool, sample.update);
      expect(await node.pickup()).toBeGreaterThan(0);
      await node.close();

      const removed = await uninstall(db.target);
      // Sakila's film_text is kept by Sakila's own triggers, so it is not captured
      const maintained = sample.kind === 'sakila' ? 1 : 0;
      expect(removed.triggers).toBe(3 * (before.tables.size - maintained));
      expect(await leftovers(db.pool, db.name)).toEqual([]);
      expect(await introspect(db.pool, db.name)).toEqual(before);
      expect(await appTriggers(db.pool, db.name)).toEqual(triggersBefore);
    });
  }

  it('says plainly when the database does not exist', async () => {
    const missing = {
      ...SERVER,
      database: `cs_uninstall_gone_${randomBytes(4).toString('hex')}`,
    };
    const e = await uninstall(missing).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SyncError);
    expect((e as SyncError).message).toBe(
      `The database "${missing.database}" does not exist at ${SERVER.host}:${SERVER.port}; create it or check its name.`,
    );
  });
});
