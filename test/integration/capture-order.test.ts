import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { readLog } from '../helpers/log.js';
import { initRoot } from '../helpers/node.js';

/** Never skip a committed change (DESIGN §3): late commits and rollback gaps. */
describe('capture ordering', () => {
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

  const insertPerson = (uuid: string) =>
    `INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', '${uuid}')`;

  it('picks up a transaction that commits after later ones, once', async () => {
    const long = await db.pool.getConnection();
    await long.beginTransaction();
    await long.query(insertPerson('p-long')); // takes the lower capture id, stays uncommitted
    const [capture] = await queryRows(long, 'SELECT MIN(id) AS id FROM clinicsync_capture');
    await execute(db.pool, insertPerson('p-later-1'));
    await execute(db.pool, insertPerson('p-later-2'));

    await node.pickup(); // must neither wait for the open transaction nor skip past it
    expect((await readLog(db.pool)).map((e) => e.ident)).toEqual(['p-later-1', 'p-later-2']);

    await long.commit();
    long.release();
    await node.pickup();
    const log = await readLog(db.pool);
    expect(log.map((e) => e.ident)).toEqual(['p-later-1', 'p-later-2', 'p-long']);
    expect(log.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(Number(capture!.id)).toBeGreaterThan(0);
    const [left] = await queryRows(db.pool, 'SELECT COUNT(*) AS n FROM clinicsync_capture');
    expect(Number(left!.n)).toBe(0);
  });

  it('loses nothing after a rollback gap in the capture ids', async () => {
    await execute(db.pool, insertPerson('p-1'));
    const conn = await db.pool.getConnection();
    await conn.beginTransaction();
    for (let i = 0; i < 5; i++) await conn.query(insertPerson(`p-gone-${i}`));
    await conn.rollback();
    conn.release();
    await execute(db.pool, insertPerson('p-2'));
    await node.pickup();
    await execute(db.pool, insertPerson('p-3'));
    await node.pickup();
    expect((await readLog(db.pool)).map((e) => e.ident)).toEqual(['p-1', 'p-2', 'p-3']);
  });

  it('does not make the application wait while a pickup runs', async () => {
    for (let i = 0; i < 50; i++) await execute(db.pool, insertPerson(`p-${i}`));
    const pickup = node.pickup();
    const started = Date.now();
    await execute(db.pool, insertPerson('p-during'));
    // an insert blocked by a lock would wait innodb_lock_wait_timeout (50 s by default)
    expect(Date.now() - started).toBeLessThan(5_000);
    await pickup;
    await node.pickup();
    expect((await readLog(db.pool)).length).toBe(51);
  });

  it('follows a row whose key changes, and a row inserted and deleted before pickup leaves nothing', async () => {
    await execute(db.pool, insertPerson('p-move'));
    await node.pickup();
    await execute(db.pool, "UPDATE person SET person_id = 900, gender = 'M' WHERE uuid = 'p-move'");
    await execute(db.pool, insertPerson('p-brief'));
    await execute(db.pool, "DELETE FROM person WHERE uuid = 'p-brief'");
    await node.pickup();
    const log = await readLog(db.pool);
    expect(log).toHaveLength(2);
    expect(log[1]).toMatchObject({
      op: 'U',
      ident: 'p-move',
      lkey: Buffer.from('900').toString('hex').toUpperCase(),
    });
    expect(log[1]!.oldLkey).not.toBeNull();
    // the local id stays home: the row is still the same person everywhere
    expect(log[1]!.payload).toEqual({ gender: 'M' });
  });

  it('represents a cascading delete by the parent delete alone', async () => {
    await execute(db.pool, 'INSERT INTO patient (patient_id) VALUES (1)');
    await execute(
      db.pool,
      "INSERT INTO encounter (encounter_id, patient_id, encounter_datetime, uuid) VALUES (7, 1, '2026-01-01', 'e-7')",
    );
    await execute(
      db.pool,
      "INSERT INTO obs (encounter_id, value_numeric, uuid) VALUES (7, 36.6, 'o-1'), (7, 120, 'o-2')",
    );
    await node.pickup();
    const before = (await readLog(db.pool)).length;
    await execute(db.pool, 'DELETE FROM encounter WHERE encounter_id = 7');
    await node.pickup();
    const log = (await readLog(db.pool)).slice(before);
    // The obs rows go by the foreign key's cascade, which fires no trigger; a receiver with the
    // same schema cascades the same way when it applies the encounter's delete.
    expect(log.map((e) => [e.tbl, e.op, e.ident])).toEqual([['encounter', 'D', 'e-7']]);
    // A new obs that reuses a cascaded obs's local id is a new row, not an update of the old one.
    await execute(
      db.pool,
      "INSERT INTO encounter (encounter_id, patient_id, encounter_datetime, uuid) VALUES (8, 1, '2026-01-02', 'e-8')",
    );
    await execute(
      db.pool,
      "INSERT INTO obs (obs_id, encounter_id, value_numeric, uuid) VALUES (1, 8, 1, 'o-new')",
    );
    await node.pickup();
    const next = (await readLog(db.pool)).slice(before + 1);
    expect(next.map((e) => [e.tbl, e.op, e.ident])).toEqual([
      ['encounter', 'I', 'e-8'],
      ['obs', 'I', 'o-new'],
    ]);
  });
});
