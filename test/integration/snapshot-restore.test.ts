import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { execute, queryRows, type Queryable } from '../../src/engine/db/pool.js';
import { introspect, type Schema } from '../../src/engine/db/schema.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import { restoreSnapshot, type RestoreResult } from '../../src/engine/clone/restore.js';
import { PROGRESS_TABLE, claimsOf, readProgress } from '../../src/engine/clone/progress.js';
import {
  PRIVATE_TABLES,
  writeSnapshot,
  type SnapshotOptions,
} from '../../src/engine/clone/snapshot.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb, loadSampleDb, type TestDb } from '../helpers/db.js';
import { shape } from '../helpers/schemaShape.js';
import { initRoot, tempHome } from '../helpers/node.js';

// Whole databases are cloned here (some by the command line in a process of its own): minutes
// on a loaded machine, not the default minute.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

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

function restore(bytes: Buffer, db: TestDb, resume = false): Promise<RestoreResult> {
  // Delivered in small pieces, as a network would. Every table's indexes and foreign keys are
  // added after its rows, as for large tables.
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 7_919) pieces.push(bytes.subarray(i, i + 7_919));
  return restoreSnapshot(Readable.from(pieces), { db: db.target, resume, deferIndexesFromRows: 0 });
}

/** Chunks a child database has committed so far (its clone's own bookkeeping). */
async function chunksHeld(db: TestDb): Promise<number> {
  const [n] = await queryRows(
    db.pool,
    `SELECT COUNT(*) AS n FROM ${PROGRESS_TABLE} WHERE chunk >= 0 AND tbl <> ''`,
  );
  return Number(n!.n);
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
  delete got[PROGRESS_TABLE];
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
    result = await restore(await snapshotOf(parent, { chunkRows: 200 }), childDb);
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
        /^The snapshot cannot be used: it stops before its end \(the connection was cut or the parent failed\); the database "cs_cut_\w+" is left marked as an unfinished clone and cannot be used, so run the same clone command again to finish it\.$/,
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
      await execute(other.pool, 'INSERT INTO a VALUES (1), (2), (3)');
      await expect(restore(await snapshotOf(parent), other)).rejects.toThrow(
        `The database ${other.name} already holds 2 tables with 3 rows and 1 view; clone needs an empty database. To replace them, add --replace: what it holds is first saved to a dump file in this clinic's ClinicSync folder.`,
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
    // Text in several character sets and collations, under a key of two text columns (a binary
    // collation beside a case-insensitive one), every byte value, the widest numbers, enum/set.
    await execute(
      parentDb.pool,
      `CREATE TABLE coded (
         code VARCHAR(20) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin NOT NULL,
         region CHAR(3) CHARACTER SET latin1 NOT NULL,
         label VARCHAR(40) CHARACTER SET cp1251 COLLATE cp1251_general_ci,
         amount DECIMAL(65,30), big BIGINT UNSIGNED, raw BLOB,
         e ENUM('a', 'b', 'ü'), s SET('x', 'y', 'z'),
         PRIMARY KEY (code, region), KEY coded_label (label)
       ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,
    );
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const coded: unknown[][] = [];
    for (let i = 0; i < 120; i++) {
      coded.push([
        `${i % 2 ? 'Ü' : 'u'}-${String(i).padStart(3, '0')}`,
        i % 3 ? 'ouä' : 'KGL',
        `Привет ${i}`,
        `${i}.123456789012345678901234567890`,
        i === 0 ? '18446744073709551615' : String(i),
        i % 10 ? Buffer.from([i, 0, 255]) : every,
        ['a', 'b', 'ü'][i % 3],
        ['x', 'y,z', ''][i % 3],
      ]);
    }
    await execute(
      parentDb.pool,
      `INSERT INTO coded VALUES ${coded.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      coded.flat(),
    );
    // An application's scheduled event (disabled: it must be copied, not run).
    await execute(
      parentDb.pool,
      "CREATE EVENT odd_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE COMMENT 'nightly' DO DELETE FROM odd WHERE id < 0",
    );
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

  it('resumes a load cut short from its last committed chunk, replacing only what changed since', async () => {
    const db = await createTestDb('cs_resume');
    try {
      const first = await snapshotOf(parent, { chunkRows: 300 });
      await expect(restore(first.subarray(0, Math.floor(first.length * 0.7)), db)).rejects.toThrow(
        /left marked as an unfinished clone/,
      );
      const held = await chunksHeld(db);
      expect(held).toBeGreaterThan(10);

      // The same snapshot again (a file read again): nothing it holds is loaded twice.
      const again = await restore(first, db, true);
      expect(again.chunksKept).toBe(held);
      expect(again.rowsKept).toBeGreaterThan(0);
      await expectIdentical(parentDb, db);
    } finally {
      await db.drop();
    }
  });

  it("checks a resumed load against the parent's new snapshot, keeping unchanged chunks", async () => {
    const db = await createTestDb('cs_resume');
    try {
      const first = await snapshotOf(parent, { chunkRows: 300 });
      await expect(restore(first.subarray(0, Math.floor(first.length * 0.8)), db)).rejects.toThrow(
        /left marked as an unfinished clone/,
      );
      const held = await chunksHeld(db);
      // The parent changes meanwhile: a row in the middle of a range the child holds, a row
      // deleted, rows added at the end, and a table's definition.
      await execute(parentDb.pool, "UPDATE coded SET label = 'changed' WHERE code = 'Ü-001'");
      await execute(parentDb.pool, "DELETE FROM coded WHERE code = 'u-004'");
      await execute(
        parentDb.pool,
        "INSERT INTO actor (first_name, last_name) VALUES ('ADA', 'LOVELACE'), ('ALAN', 'TURING')",
      );
      await execute(parentDb.pool, 'ALTER TABLE odd ADD COLUMN note VARCHAR(10) NULL');
      await parent.pickup();

      const claims = claimsOf(await readProgress(db.pool));
      const second = await snapshotOf(parent, { chunkRows: 300, resume: claims });
      const resumed = await restore(second, db, true);
      expect(resumed.chunksKept).toBeGreaterThan(held / 2);
      expect(resumed.chunksKept).toBeLessThan(held);
      await expectIdentical(parentDb, db);
    } finally {
      await db.drop();
    }
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
      chunkRows: 200,
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
