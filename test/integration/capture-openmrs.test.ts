import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb, type TestDb } from '../helpers/db.js';
import { hexKey, lastSeq, readLog } from '../helpers/log.js';
import { initRoot } from '../helpers/node.js';

/** Capture on the real OpenMRS Reference Application schema (shared/data, kind `openmrs`). */
describe('capture on OpenMRS', () => {
  let db: TestDb;
  let node: SyncNode;

  beforeAll(async () => {
    db = await loadSampleDb('openmrs');
    node = await initRoot(db, 'district');
  });
  afterAll(async () => {
    await node?.close();
    await db?.drop();
  });

  async function changesOf(sql: () => Promise<void>) {
    const before = await lastSeq(db.pool);
    await sql();
    await node.pickup();
    return readLog(db.pool, before);
  }

  it('records nothing at init: the rows there are the shared starting point', async () => {
    expect(await readLog(db.pool)).toEqual([]);
    const [n] = await queryRows(
      db.pool,
      "SELECT COUNT(*) AS n FROM clinicsync_row WHERE tbl = 'concept'",
    );
    const [c] = await queryRows(db.pool, 'SELECT COUNT(*) AS n FROM concept');
    expect(Number(n!.n)).toBe(Number(c!.n));
  });

  it('logs a single insert once, with every column and the uuid as identity', async () => {
    const log = await changesOf(async () => {
      await execute(
        db.pool,
        "INSERT INTO person (gender, birthdate, creator, date_created, uuid) VALUES ('F', '1990-02-03', 1, '2026-01-02 03:04:05', 'p-0001')",
      );
    });
    expect(log).toHaveLength(1);
    const [e] = log;
    expect(e!.op).toBe('I');
    expect(e!.tbl).toBe('person');
    expect(e!.ident).toBe('p-0001');
    expect(e!.payload).toMatchObject({
      gender: 'F',
      birthdate: '1990-02-03',
      date_created: '2026-01-02 03:04:05',
      voided: '0',
      death_date: null,
    });
    // person_id is a local id: it stays home; creator, a reference to users, travels as identity
    expect(Object.keys(e!.payload!)).toHaveLength(17);
    expect(e!.payload).not.toHaveProperty('person_id');
    const [admin] = await queryRows(db.pool, 'SELECT uuid FROM users WHERE user_id = 1');
    expect(e!.payload!.creator).toBe(admin!.uuid);
  });

  it('logs only the changed columns of an update', async () => {
    const log = await changesOf(async () => {
      await execute(
        db.pool,
        "UPDATE person SET gender = 'M', birthdate_estimated = 1 WHERE uuid = 'p-0001'",
      );
    });
    expect(log).toHaveLength(1);
    expect(log[0]!.op).toBe('U');
    expect(log[0]!.payload).toEqual({ gender: 'M', birthdate_estimated: '1' });
  });

  it('logs nothing for an update that changes no value', async () => {
    const log = await changesOf(async () => {
      await execute(db.pool, "UPDATE person SET gender = 'M' WHERE uuid = 'p-0001'");
    });
    expect(log).toEqual([]);
  });

  it('logs one entry per row of a multi-row update, each with its own changed columns', async () => {
    const [{ n }] = (await queryRows(
      db.pool,
      'SELECT COUNT(*) AS n FROM location WHERE retired = 0',
    )) as [{ n: number }];
    const log = await changesOf(async () => {
      await execute(db.pool, "UPDATE location SET city_village = 'Butaro' WHERE retired = 0");
    });
    const changed = await queryRows(
      db.pool,
      "SELECT uuid FROM location WHERE retired = 0 AND city_village = 'Butaro'",
    );
    expect(log).toHaveLength(Number(n));
    expect(new Set(log.map((e) => e.ident))).toEqual(new Set(changed.map((r) => String(r.uuid))));
    for (const e of log) expect(e.payload).toEqual({ city_village: 'Butaro' });
  });

  it('logs a multi-row insert and a delete with the deleted row identity', async () => {
    const ins = await changesOf(async () => {
      await execute(
        db.pool,
        `INSERT INTO person (gender, creator, date_created, uuid) VALUES
           ('F', 1, '2026-01-01', 'p-0002'), ('M', 1, '2026-01-01', 'p-0003'), ('F', 1, '2026-01-01', 'p-0004')`,
      );
    });
    expect(ins.map((e) => [e.op, e.ident])).toEqual([
      ['I', 'p-0002'],
      ['I', 'p-0003'],
      ['I', 'p-0004'],
    ]);
    const del = await changesOf(async () => {
      await execute(db.pool, "DELETE FROM person WHERE uuid IN ('p-0003', 'p-0004')");
    });
    expect(del.map((e) => [e.op, e.ident, e.payload])).toEqual([
      ['D', 'p-0003', null],
      ['D', 'p-0004', null],
    ]);
  });

  it('logs a committed transaction and never a rolled-back one', async () => {
    const log = await changesOf(async () => {
      const conn = await db.pool.getConnection();
      await conn.beginTransaction();
      await conn.query(
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-rolled-back')",
      );
      await conn.query("UPDATE person SET gender = 'X' WHERE uuid = 'p-0002'");
      await conn.rollback();
      await conn.beginTransaction();
      await conn.query(
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-0005')",
      );
      await conn.query("UPDATE person SET dead = 1 WHERE uuid = 'p-0002'");
      await conn.commit();
      conn.release();
    });
    expect(log.map((e) => [e.op, e.ident, e.payload && Object.keys(e.payload).length])).toEqual([
      ['I', 'p-0005', 17],
      ['U', 'p-0002', 1],
    ]);
  });

  it('captures composite, text and absent primary keys', async () => {
    const composite = await changesOf(async () => {
      await execute(db.pool, "INSERT INTO user_role (user_id, role) VALUES (1, 'Anonymous')");
    });
    expect(composite).toMatchObject([{ op: 'I', tbl: 'user_role', lkey: hexKey('Anonymous', 1) }]);

    const text = await changesOf(async () => {
      await execute(
        db.pool,
        "UPDATE global_property SET property_value = 'été' WHERE property = 'adminui.mandatory'",
      );
    });
    expect(text).toMatchObject([
      {
        op: 'U',
        tbl: 'global_property',
        lkey: hexKey('adminui.mandatory'),
        payload: { property_value: 'été' },
      },
    ]);

    await execute(
      db.pool,
      "INSERT INTO concept_name_tag (tag, creator, date_created, uuid) VALUES ('preferred-fr', 1, '2026-01-01', 'cnt-1')",
    );
    await node.pickup();
    const [pair] = await queryRows(
      db.pool,
      'SELECT (SELECT MIN(concept_name_id) FROM concept_name) AS n, (SELECT MIN(concept_name_tag_id) FROM concept_name_tag) AS t',
    );
    const mapRow = async () => {
      await execute(db.pool, 'INSERT INTO concept_name_tag_map VALUES (?, ?)', [pair!.n, pair!.t]);
    };
    const [names] = await queryRows(
      db.pool,
      `SELECT (SELECT uuid FROM concept_name WHERE concept_name_id = ?) AS n,
              (SELECT uuid FROM concept_name_tag WHERE concept_name_tag_id = ?) AS t`,
      [pair!.n, pair!.t],
    );
    // A table without a primary key is a multiset of row images: a second identical row is a
    // second insert, and deleting both is two deletes. Its references travel as identities.
    const first = await changesOf(mapRow);
    const second = await changesOf(mapRow);
    expect([...first, ...second].map((e) => [e.op, e.tbl, e.payload])).toEqual([
      ['I', 'concept_name_tag_map', { concept_name_id: names!.n, concept_name_tag_id: names!.t }],
      ['I', 'concept_name_tag_map', { concept_name_id: names!.n, concept_name_tag_id: names!.t }],
    ]);
    const gone = await changesOf(async () => {
      await execute(db.pool, 'DELETE FROM concept_name_tag_map WHERE concept_name_id = ?', [
        pair!.n,
      ]);
    });
    expect(gone.map((e) => e.op)).toEqual(['D', 'D']);
  });

  it('does not capture the engine’s own writes', async () => {
    const log = await changesOf(async () => {
      const conn = await db.pool.getConnection();
      await conn.query('SET @clinicsync_applying = 1');
      await conn.query("UPDATE person SET gender = 'Q' WHERE uuid = 'p-0002'");
      await conn.query('SET @clinicsync_applying = NULL');
      conn.release();
    });
    expect(log).toEqual([]);
  });

  it('keeps sequence numbers dense from 1', async () => {
    const seqs = (await readLog(db.pool)).map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });

  it('reports pending changes in status, up to the moment it is called', async () => {
    const before = (await node.status()).pendingOut;
    await execute(db.pool, "UPDATE person SET gender = 'Z' WHERE uuid = 'p-0005'");
    const after = await node.status();
    expect(after.pendingOut).toBe(before + 1);
    expect(after.role).toBe('root');
    expect(after.name).toBe('district');
    expect(after.journalBytes).toBeGreaterThan(0);
  });
});
