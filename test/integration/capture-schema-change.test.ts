import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { lastSeq, readLog } from '../helpers/log.js';
import { initRoot } from '../helpers/node.js';

/** An upgrade changes tables under a running clinic: its writes must never fail because of us. */
describe('capture across schema changes', () => {
  let db: TestDb;
  let node: SyncNode;

  beforeEach(async () => {
    db = await createTestDb();
    await createClinicSchema(db.pool);
    node = await initRoot(db);
  });
  afterEach(async () => {
    await node.close();
    await db.drop();
  });

  async function appWrites(uuid: string, set: string): Promise<void> {
    await execute(
      db.pool,
      `INSERT INTO person (creator, date_created, uuid) VALUES (1, '2026-01-01', '${uuid}')`,
    );
    await execute(db.pool, `UPDATE person SET ${set} WHERE uuid = '${uuid}'`);
  }

  async function newChanges(since: number) {
    await node.pickup();
    return (await readLog(db.pool, since)).map((e) => [
      e.op,
      e.ident,
      e.payload && Object.keys(e.payload).sort(),
    ]);
  }

  it('keeps the application writing while columns are added, dropped and renamed', async () => {
    let since = await lastSeq(db.pool);
    await execute(db.pool, 'ALTER TABLE person ADD COLUMN nickname VARCHAR(50) NULL');
    await appWrites('p-added', "nickname = 'Mimi'");
    expect(await newChanges(since)).toEqual([
      [
        'I',
        'p-added',
        ['birthdate', 'creator', 'date_created', 'gender', 'nickname', 'uuid', 'voided'],
      ],
    ]);
    await execute(db.pool, "UPDATE person SET nickname = 'Mi' WHERE uuid = 'p-added'");
    since = await lastSeq(db.pool);
    await execute(db.pool, "UPDATE person SET nickname = 'Mo' WHERE uuid = 'p-added'");
    expect(await newChanges(since - 0)).toEqual([['U', 'p-added', ['nickname']]]);

    since = await lastSeq(db.pool);
    await execute(db.pool, 'ALTER TABLE person DROP COLUMN birthdate');
    await appWrites('p-dropped', "gender = 'F'");
    await execute(db.pool, "UPDATE person SET nickname = 'Zed' WHERE uuid = 'p-added'");
    expect(await newChanges(since)).toEqual([
      ['I', 'p-dropped', ['creator', 'date_created', 'gender', 'nickname', 'uuid', 'voided']],
      ['U', 'p-added', ['nickname']],
    ]);

    since = await lastSeq(db.pool);
    await execute(db.pool, "ALTER TABLE person CHANGE gender sex VARCHAR(50) DEFAULT ''");
    await appWrites('p-renamed', "sex = 'M'");
    await execute(db.pool, "UPDATE person SET voided = 1 WHERE uuid = 'p-dropped'");
    const log = await newChanges(since);
    expect(log).toEqual([
      ['I', 'p-renamed', ['creator', 'date_created', 'nickname', 'sex', 'uuid', 'voided']],
      // recorded before the rename under "gender": the renamed column counts as changed once
      ['U', 'p-dropped', ['sex', 'voided']],
    ]);
  });

  it('puts back a trigger that went missing and captures a new table', async () => {
    const [trigger] = await queryRows(
      db.pool,
      "SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'role' AND EVENT_MANIPULATION = 'INSERT'",
    );
    await execute(db.pool, `DROP TRIGGER \`${String(trigger!.n)}\``);
    await node.pickup();
    await execute(db.pool, "INSERT INTO role VALUES ('Nurse', NULL)");
    await execute(
      db.pool,
      'CREATE TABLE visit (visit_id INT AUTO_INCREMENT PRIMARY KEY, uuid CHAR(38) NOT NULL)',
    );
    await node.pickup();
    await execute(db.pool, "INSERT INTO visit (uuid) VALUES ('v-1')");
    await node.pickup();
    expect((await readLog(db.pool)).map((e) => [e.tbl, e.op])).toEqual([
      ['role', 'I'],
      ['visit', 'I'],
    ]);
  });

  it('regenerates triggers when a keyless table gets a primary key', async () => {
    await execute(db.pool, "INSERT INTO tag_map VALUES (1, 'a')");
    await node.pickup();
    await execute(db.pool, 'ALTER TABLE tag_map ADD PRIMARY KEY (obs_id, tag)');
    await execute(db.pool, "INSERT INTO tag_map VALUES (2, 'b')");
    await node.pickup();
    await execute(db.pool, "UPDATE tag_map SET tag = 'c' WHERE obs_id = 2");
    await node.pickup();
    expect((await readLog(db.pool)).map((e) => [e.tbl, e.op, e.payload])).toEqual([
      ['tag_map', 'I', { obs_id: '1', tag: 'a' }],
      // written between the ALTER and the pickup that noticed it: part of the new starting point
      ['tag_map', 'U', { tag: 'c' }],
    ]);
  });

  it('pause drops the triggers for an upgrade and resume starts from the upgraded rows', async () => {
    await node.pauseCapture();
    const [n] = await queryRows(
      db.pool,
      "SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'clinicsync%'",
    );
    expect(Number(n!.n)).toBe(0);
    expect((await node.status()).capturePaused).toBe(true);
    await execute(db.pool, 'ALTER TABLE person MODIFY uuid CHAR(38) NOT NULL AFTER person_id');
    await execute(
      db.pool,
      "UPDATE global_property SET property_value = 'fr' WHERE property = 'locale'",
    );
    await node.resumeCapture();
    expect((await node.status()).capturePaused).toBe(false);
    await execute(
      db.pool,
      "UPDATE global_property SET property_value = 'rw' WHERE property = 'locale'",
    );
    await node.pickup();
    expect((await readLog(db.pool)).map((e) => [e.tbl, e.op, e.payload])).toEqual([
      ['global_property', 'U', { property_value: 'rw' }],
    ]);
  });
});
