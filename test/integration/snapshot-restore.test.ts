import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { execute, queryRows, type Queryable } from '../../src/engine/db/pool.js';
import { introspect, type Schema } from '../../src/engine/db/schema.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import { restoreSnapshot, type RestoreResult } from '../../src/engine/clone/restore.js';
import {
  PRIVATE_TABLES,
  writeSnapshot,
  type SnapshotOptions,
} from '../../src/engine/clone/snapshot.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb, loadSampleDb, type TestDb } from '../helpers/db.js';
import { initRoot, tempHome } from '../helpers/node.js';

/** The whole gzip'd snapshot of a node, in memory (these databases are small). */
async function snapshotOf(node: SyncNode, opts: SnapshotOptions = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await writeSnapshot(node, sink, opts);
  return Buffer.concat(chunks);
}

function restore(bytes: Buffer, db: TestDb): Promise<RestoreResult> {
  // Delivered in small pieces, as a network would.
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 7_919) pieces.push(bytes.subarray(i, i + 7_919));
  return restoreSnapshot(Readable.from(pieces), { db: db.target });
}

async function baseTables(db: Queryable, database: string): Promise<string[]> {
  const rows = await queryRows(
    db,
    "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
    [database],
  );
  return rows.map((r) => String(r.t));
}

/** CHECKSUM TABLE of every base table, by name. */
async function checksums(db: Queryable, database: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of await baseTables(db, database)) {
    const [row] = await queryRows(db, `CHECKSUM TABLE \`${database}\`.\`${t}\``);
    out[t] = String(row!.Checksum);
  }
  return out;
}

/** Everything information_schema says about a database's shape, with its own name taken out. */
async function shape(db: Queryable, database: string): Promise<Record<string, unknown[]>> {
  const strip = (v: unknown) =>
    typeof v === 'string' ? v.split(`\`${database}\`.`).join('`DB`.') : v;
  const read = async (sql: string) =>
    (await queryRows(db, sql, [database])).map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, strip(v)])),
    );
  return {
    tables: await read(
      `SELECT TABLE_NAME, TABLE_TYPE, ENGINE, ROW_FORMAT, TABLE_COLLATION, AUTO_INCREMENT, CREATE_OPTIONS, TABLE_COMMENT
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    ),
    columns: await read(
      `SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE,
              CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_KEY, EXTRA, COLUMN_COMMENT
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    ),
    indexes: await read(
      `SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, SUB_PART, INDEX_TYPE
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`,
    ),
    foreignKeys: await read(
      `SELECT CONSTRAINT_NAME, TABLE_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME`,
    ),
    views: await read(
      `SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, SECURITY_TYPE
         FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`,
    ),
    triggers: await read(
      `SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER,
              ACTION_STATEMENT, SQL_MODE
         FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY TRIGGER_NAME`,
    ),
    routines: await read(
      `SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, IS_DETERMINISTIC,
              SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_COMMENT
         FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME`,
    ),
    parameters: await read(
      `SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER
         FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = ? ORDER BY SPECIFIC_NAME, ORDINAL_POSITION`,
    ),
  };
}

/** Checks that `child` holds exactly the parent's schema and rows (private tables: no rows). */
async function expectIdentical(parent: TestDb, child: TestDb): Promise<void> {
  expect(await shape(child.pool, child.name)).toEqual(await shape(parent.pool, parent.name));
  const parentSchema = await introspect(parent.pool, parent.name);
  const childSchema = await introspect(child.pool, child.name);
  const plain = (s: Schema, database: string) => ({
    ...s,
    database: '',
    views: s.views.map((v) => ({
      ...v,
      definition: v.definition.split(`\`${database}\`.`).join('`DB`.'),
    })),
  });
  expect(plain(childSchema, child.name)).toEqual(plain(parentSchema, parent.name));

  const want = await checksums(parent.pool, parent.name);
  const got = await checksums(child.pool, child.name);
  expect(Object.keys(got)).toEqual(Object.keys(want));
  for (const t of Object.keys(want)) {
    if (PRIVATE_TABLES.includes(t)) {
      const [n] = await queryRows(child.pool, `SELECT COUNT(*) AS n FROM \`${t}\``);
      expect(Number(n!.n), t).toBe(0);
    } else if (t === 'clinicsync_meta') {
      // Holds the clone_incomplete marker until the child is adopted.
      const rows = (db: TestDb) =>
        queryRows(
          db.pool,
          "SELECT k, v FROM clinicsync_meta WHERE k <> 'clone_incomplete' ORDER BY k",
        );
      expect(await rows(child)).toEqual(await rows(parent));
    } else {
      expect(got[t], t).toBe(want[t]);
    }
  }
}

async function makeChild(db: TestDb, parent: SyncNode, name: string): Promise<SyncNode> {
  const home = tempHome();
  const settings = defaultSettings({
    db: dbUrlOf(db.target),
    name,
    role: 'child',
    parent: 'http://parent.invalid:8750',
  });
  home.save(settings);
  return SyncNode.adoptClone({
    db: db.target,
    name,
    settings,
    home,
    parent: {
      nodeId: parent.nodeId,
      name: (await parent.status()).name,
      incarnation: parent.incarnation,
    },
  });
}

describe('snapshot and restore of the OpenMRS test dataset', () => {
  let parentDb: TestDb;
  let childDb: TestDb;
  let parent: SyncNode;
  let result: RestoreResult;

  beforeAll(async () => {
    parentDb = await loadSampleDb('openmrs-testdata');
    parent = await initRoot(parentDb, 'district');
    childDb = await createTestDb('cs_child');
    result = await restore(await snapshotOf(parent, { chunkRows: 37 }), childDb);
  });
  afterAll(async () => {
    await parent?.close();
    await parentDb?.drop();
    await childDb?.drop();
  });

  it('reproduces every table, row for row, and the whole schema with ClinicSync triggers', async () => {
    await expectIdentical(parentDb, childDb);
    const [own] = await queryRows(
      childDb.pool,
      "SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME LIKE 'clinicsync\\_%'",
      [childDb.name],
    );
    expect(Number(own!.n)).toBeGreaterThan(300);
  });

  it('counts what a person would count', async () => {
    const [n] = await queryRows(
      parentDb.pool,
      "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME NOT LIKE 'clinicsync\\_%'",
      [parentDb.name],
    );
    expect(result.appTables).toBe(Number(n!.n));
    expect(result.appRows).toBeGreaterThan(100);
    expect(result.begin.node.nodeId).toBe(parent.nodeId);
  });

  it('cannot be opened as a node before it is adopted', async () => {
    const home = tempHome();
    const settings = defaultSettings({ db: dbUrlOf(childDb.target), name: 'x' });
    await expect(SyncNode.open({ db: childDb.target, settings, home })).rejects.toThrow(
      /holds a clone that did not finish/,
    );
  });

  it('leaves a database whose stream was cut short marked unusable, and says so', async () => {
    const bytes = await snapshotOf(parent);
    const db = await createTestDb('cs_cut');
    try {
      await expect(restore(bytes.subarray(0, Math.floor(bytes.length * 0.6)), db)).rejects.toThrow(
        /^The snapshot cannot be used: it stops before its end \(the connection was cut or the parent failed\); the database "cs_cut_\w+" is left marked as an unfinished clone and cannot be used, so run the same clone command again to start it over\.$/,
      );
      const [m] = await queryRows(
        db.pool,
        "SELECT v FROM clinicsync_meta WHERE k = 'clone_incomplete'",
      );
      expect(String(m!.v)).toMatch(/^failed: The snapshot cannot be used: it stops before its end/);
    } finally {
      await db.drop();
    }
  });

  it('refuses a database that is not empty, saying what it holds', async () => {
    const other = await createTestDb('cs_full');
    try {
      await execute(other.pool, 'CREATE TABLE a (id INT PRIMARY KEY)');
      await execute(other.pool, 'CREATE TABLE b (id INT PRIMARY KEY)');
      await execute(other.pool, 'CREATE VIEW v AS SELECT id FROM a');
      await expect(restore(await snapshotOf(parent), other)).rejects.toThrow(
        `The database ${other.name} already has 2 tables and 1 view; clone needs an empty database.`,
      );
      // The refused database is left as it was.
      expect(await baseTables(other.pool, other.name)).toEqual(['a', 'b']);
      // And the one holding this unfinished clone is named as such.
      await expect(restore(await snapshotOf(parent), childDb)).rejects.toThrow(
        /holds a clone that did not finish/,
      );
    } finally {
      await other.drop();
    }
  });
});

describe('snapshot and restore of Sakila', () => {
  let parentDb: TestDb;
  let childDb: TestDb;
  let parent: SyncNode;

  beforeAll(async () => {
    parentDb = await loadSampleDb('sakila');
    parent = await initRoot(parentDb, 'store');
    // Values that a careless copy loses: single-precision floats, zero dates, bytes, bits.
    await execute(
      parentDb.pool,
      `CREATE TABLE odd (
         id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
         f FLOAT, d DOUBLE, b BIT(10), zero DATETIME, zd DATE, t TIME(6), j JSON,
         bin VARBINARY(16), txt TEXT CHARACTER SET latin1, u8 VARCHAR(20) CHARACTER SET utf8mb4,
         g DOUBLE AS (d * 2) VIRTUAL
       ) ENGINE=InnoDB AUTO_INCREMENT=1000`,
    );
    const conn = await parentDb.pool.getConnection();
    await execute(conn, "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'");
    await execute(
      conn,
      `INSERT INTO odd (id, f, d, b, zero, zd, t, j, bin, txt, u8) VALUES
         (0, 0.1234567, 0.30000000000000004, b'1010101010', '0000-00-00 00:00:00', '2024-00-00',
          '-838:59:59.000000', '{"a": [1, "é"]}', X'00FF27225C0A', 'café £', 'नमस्ते 🌍'),
         (2, 16777217, -1e-300, b'0', NULL, NULL, NULL, NULL, X'', '', '')`,
    );
    conn.destroy();
    await execute(parentDb.pool, 'UPDATE staff SET picture = ? WHERE staff_id = 1', [
      Buffer.from([0, 1, 2, 0xff, 0xfe, 0x2c, 0x27, 0x5c, 0x0a]),
    ]);
    await parent.pickup();
    childDb = await createTestDb('cs_child');
    await restore(await snapshotOf(parent, { chunkRows: 500 }), childDb);
  });
  afterAll(async () => {
    await parent?.close();
    await parentDb?.drop();
    await childDb?.drop();
  });

  it('reproduces tables, views, triggers, routines, blobs, enum/set, year and geometry', async () => {
    await expectIdentical(parentDb, childDb);
    const [views] = await queryRows(
      childDb.pool,
      'SELECT COUNT(*) AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?',
      [childDb.name],
    );
    expect(Number(views!.n)).toBe(7);
    // The views read the child's own tables.
    const [a] = await queryRows(childDb.pool, 'SELECT COUNT(*) AS n FROM actor_info');
    expect(Number(a!.n)).toBe(200);
  });

  it('keeps values that text round trips lose', async () => {
    const read = (db: TestDb) =>
      queryRows(
        db.pool,
        `SELECT id, f = (SELECT f FROM \`${parentDb.name}\`.odd p WHERE p.id = o.id) AS same_f,
                HEX(b) AS b, zero, zd, t, j, HEX(bin) AS bin, HEX(txt) AS txt, u8, g
           FROM odd o ORDER BY id`,
      );
    const rows = await read(childDb);
    expect(rows).toEqual(await read(parentDb));
    expect(rows.map((r) => [r.id, r.same_f, r.zero])).toEqual([
      [0, 1, '0000-00-00 00:00:00'],
      [2, 1, null],
    ]);
    const [ai] = await queryRows(
      childDb.pool,
      "SELECT AUTO_INCREMENT AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'odd'",
      [childDb.name],
    );
    expect(String(ai!.n)).toBe('1000');
  });

  it('runs the application triggers on the child once adopted, and not while loading', async () => {
    // film_text is written by Sakila's own triggers; a load that fired them would double it.
    const [n] = await queryRows(childDb.pool, 'SELECT COUNT(*) AS n FROM film_text');
    const [m] = await queryRows(parentDb.pool, 'SELECT COUNT(*) AS n FROM film_text');
    expect(n).toEqual(m);
  });
});

describe('changes on the parent while the snapshot streams', () => {
  let parentDb: TestDb;
  let childDb: TestDb;
  let parent: SyncNode;
  let child: SyncNode;

  beforeAll(async () => {
    parentDb = await loadSampleDb('openmrs-testdata');
    parent = await initRoot(parentDb, 'district');
  });
  afterAll(async () => {
    await child?.close();
    await parent?.close();
    await parentDb?.drop();
    await childDb?.drop();
  });

  it('are not in the snapshot, and arrive with the first exchange', async () => {
    let changed = false;
    const bytes = await snapshotOf(parent, {
      chunkRows: 2,
      afterChunk: async (table) => {
        if (changed || table !== 'concept_name') return;
        changed = true;
        // Committed on the parent mid-stream: a new location and a renamed one.
        await execute(
          parentDb.pool,
          `INSERT INTO location (name, creator, date_created, uuid, retired)
           VALUES ('Mid-clone Health Post', 1, '2026-02-01 08:00:00', 'mid-clone-location-0000000000000001', 0)`,
        );
        await execute(
          parentDb.pool,
          "UPDATE location SET name = 'Xanadu (renamed)' WHERE uuid = '9356400c-a5a2-4532-8f2b-2361b3446eb8'",
        );
      },
    });
    expect(changed).toBe(true);
    childDb = await createTestDb('cs_child');
    await restore(bytes, childDb);
    const names = async () =>
      (
        await queryRows(
          childDb.pool,
          "SELECT name FROM location WHERE uuid IN ('mid-clone-location-0000000000000001', '9356400c-a5a2-4532-8f2b-2361b3446eb8') ORDER BY name",
        )
      ).map((r) => r.name);
    expect(await names()).toEqual(['Xanadu']);

    child = await makeChild(childDb, parent, 'centre');
    await parent.addPeer({
      nodeId: child.nodeId,
      name: 'centre',
      relation: 'child',
      incarnation: child.incarnation,
    });
    // One exchange: the child's (empty) batch up, the parent's down.
    const { reply } = await parent.answer(await child.outgoing(parent.nodeId));
    await child.incoming(reply);
    expect(await names()).toEqual(['Mid-clone Health Post', 'Xanadu (renamed)']);

    // And the child's own edits reach the parent.
    await execute(
      childDb.pool,
      "UPDATE location SET description = 'edited at the centre' WHERE uuid = 'mid-clone-location-0000000000000001'",
    );
    const { result } = await parent.answer(await child.outgoing(parent.nodeId));
    expect(result).toBeDefined();
    const [row] = await queryRows(
      parentDb.pool,
      "SELECT description FROM location WHERE uuid = 'mid-clone-location-0000000000000001'",
    );
    expect(row!.description).toBe('edited at the centre');
  });
});
