import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cloneFromParent, type CloneResult, type CloneStep } from '../../src/engine/clone/clone.js';
import { PROGRESS_TABLE } from '../../src/engine/clone/progress.js';
import { SNAPSHOT_PATH, snapshotRoute } from '../../src/engine/clone/snapshot.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { execute, queryRows, type Queryable } from '../../src/engine/db/pool.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { NodeService } from '../../src/engine/node/service.js';
import { ParentClient } from '../../src/engine/transport/client.js';
import { createPairingCode } from '../../src/engine/transport/pairing.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb, loadSampleDb, type TestDb } from '../helpers/db.js';
import { diffModel, diffNodes, ExpectedModel, NO_DIFF, readModel } from '../helpers/model.js';
import { runMain } from '../helpers/cli.js';
import { initRoot, tempHome } from '../helpers/node.js';
import { createPatient, idOf, OMRS, OPENMRS_MODEL } from '../helpers/openmrs.js';
import { parkedOn } from '../helpers/state.js';

// Whole databases are cloned here (some by the command line in a process of its own): minutes
// on a loaded machine, not the default minute.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

/**
 * Issue 4, "Done when", first point: a child cloned from the OpenMRS test dataset over real HTTP
 * (pairing code, signed snapshot stream, first exchange), every table identical; then a visit made
 * on the child arrives whole at the parent and edits travel both ways.
 */

const MID_CLONE_LOCATION = 'a1c0de00-0000-4000-8000-00000000c10e';

async function appTables(db: Queryable, database: string): Promise<string[]> {
  const rows = await queryRows(
    db,
    "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME NOT LIKE 'clinicsync\\_%' ORDER BY TABLE_NAME",
    [database],
  );
  return rows.map((r) => String(r.t));
}

async function checksum(db: Queryable, database: string, table: string): Promise<string> {
  const [row] = await queryRows(db, `CHECKSUM TABLE \`${database}\`.\`${table}\``);
  return String(row!.Checksum);
}

async function ownTriggers(db: Queryable, database: string): Promise<string[]> {
  const rows = await queryRows(
    db,
    "SELECT TRIGGER_NAME AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME LIKE 'clinicsync\\_%' ORDER BY TRIGGER_NAME",
    [database],
  );
  return rows.map((r) => String(r.t));
}

describe('clone over HTTP', () => {
  let parentDb: TestDb;
  let childDb: TestDb;
  let parent: SyncNode;
  let server: SyncServer;
  let clone: CloneResult;
  let child: SyncNode;
  const steps: CloneStep[] = [];
  /** what the parent's snapshot route does after each chunk (set by a test) */
  let afterChunk: (table: string, chunk: number) => Promise<void> = async () => undefined;
  const extraDbs: TestDb[] = [];

  beforeAll(async () => {
    parentDb = await loadSampleDb('openmrs-testdata');
    // the parent leaves the old sync module's tables out; its children start with the same choice
    parent = await initRoot(parentDb, 'district', { preset: 'openmrs', exclude: ['hl7_source'] });
    server = await startSyncServer({
      node: parent,
      host: '127.0.0.1',
      port: 0,
      extraRoutes: {
        [SNAPSHOT_PATH]: snapshotRoute({ chunkRows: 25, afterChunk: (t, c) => afterChunk(t, c) }),
      },
    });
    // Committed on the parent while the snapshot streams: not in it, brought by the first exchange.
    let changed = false;
    afterChunk = async (table) => {
      // A little time per chunk, so the rate is measured over more than a second.
      await new Promise((r) => setTimeout(r, 3));
      if (changed || table !== 'concept') return;
      changed = true;
      await execute(
        parentDb.pool,
        `INSERT INTO location (name, creator, date_created, uuid) VALUES ('Mid-clone Post', 1, '2026-03-01 07:00:00', ?)`,
        [MID_CLONE_LOCATION],
      );
    };
    childDb = await createTestDb('cs_child');
    const { code } = await createPairingCode(parent.pool, 60);
    clone = await cloneFromParent({
      parentUrl: server.url,
      code,
      db: childDb.target,
      name: 'centre',
      home: tempHome(),
      onProgress: (s) => steps.push(s),
    });
    afterChunk = async () => undefined;
    child = clone.node;
    expect(changed).toBe(true);
  });
  afterAll(async () => {
    await child?.close();
    await server?.close();
    await parent?.close();
    await parentDb?.drop();
    await childDb?.drop();
    for (const d of extraDbs) await d.drop();
  });

  it('copies every table identically, with ClinicSync triggers, and brings what changed meanwhile', async () => {
    expect(clone.syncError).toBeNull();
    expect(clone.node.settings.tables).toEqual({
      preset: 'openmrs',
      include: [],
      exclude: ['hl7_source'],
    });
    const tables = await appTables(parentDb.pool, parentDb.name);
    expect(await appTables(childDb.pool, childDb.name)).toEqual(tables);
    expect(clone.tables).toBe(tables.length);
    for (const t of tables) {
      expect(await checksum(childDb.pool, childDb.name, t), t).toBe(
        await checksum(parentDb.pool, parentDb.name, t),
      );
    }
    expect(await ownTriggers(childDb.pool, childDb.name)).toEqual(
      await ownTriggers(parentDb.pool, parentDb.name),
    );
    // The row made mid-clone came with the first exchange.
    expect(clone.sync!.received).toBeGreaterThan(0);
    const [loc] = await queryRows(childDb.pool, 'SELECT name FROM location WHERE uuid = ?', [
      MID_CLONE_LOCATION,
    ]);
    expect(loc).toEqual({ name: 'Mid-clone Post' });
    // Progress: rows and bytes done, the rate and the time left as the rows go in.
    const rows = steps.filter((s) => s.phase === 'rows');
    expect(rows.at(-1)!.rowsDone).toBeGreaterThan(rows[0]!.rowsDone);
    expect(rows.some((s) => s.rowsPerSecond! > 0 && s.bytesPerSecond! > 0)).toBe(true);
    expect(rows.some((s) => s.rowsTotal! > 0)).toBe(true);
    expect(steps.at(-1)).toMatchObject({ phase: 'done', etaSeconds: 0 });
    // Progress was reported through every phase.
    expect([...new Set(steps.map((s) => s.phase))]).toEqual([
      'pairing',
      'schema',
      'rows',
      'finishing',
      'state',
      'done',
    ]);
    const status = await child.status();
    expect(status).toMatchObject({ role: 'child', name: 'centre', parent: server.url });
    expect((await parent.status()).children.map((c) => c.name)).toEqual(['centre']);
  });

  it('a visit made on the child arrives whole at the parent, and edits travel both ways', async () => {
    const expected = new ExpectedModel((await readModel(parent.pool, OPENMRS_MODEL)).model);
    const p = await createPatient(child.pool, {
      given: 'Amina',
      family: 'Njoroge',
      gender: 'F',
      birthdate: '1988-04-12',
      identifier: '100-8',
      at: '2026-03-02 09:15:00',
      weightKg: '61.5',
      favoriteFood: 'ugali',
    });
    for (const r of p.rows) expected.insert(r.table, r.key, r.row);
    const link = await ParentClient.forNode(child);
    const service = new NodeService(child, link);
    try {
      const first = await service.syncNow();
      expect(first.sent).toBeGreaterThanOrEqual(p.rows.length);

      // The parent voids the text obs; the child corrects the birthdate.
      await execute(
        parent.pool,
        "UPDATE obs SET voided = 1, voided_by = ?, date_voided = '2026-03-04 08:00:00', void_reason = 'entered twice' WHERE uuid = ?",
        [await idOf(parent.pool, 'users', OMRS.admin), p.obsText],
      );
      await execute(
        child.pool,
        "UPDATE person SET birthdate = '1988-05-12', changed_by = ?, date_changed = '2026-03-04 09:00:00' WHERE uuid = ?",
        [await idOf(child.pool, 'users', OMRS.admin), p.person],
      );
      expected
        .update('obs', p.obsText, {
          voided: '1',
          voided_by: OMRS.admin,
          date_voided: '2026-03-04 08:00:00',
          void_reason: 'entered twice',
        })
        .update('person', p.person, {
          birthdate: '1988-05-12',
          changed_by: OMRS.admin,
          date_changed: '2026-03-04 09:00:00',
        });
      await service.syncNow();
    } finally {
      await link.close();
    }

    const onParent = await readModel(parent.pool, OPENMRS_MODEL);
    const onChild = await readModel(child.pool, OPENMRS_MODEL);
    expect(await parkedOn(parent)).toEqual([]);
    expect(await parkedOn(child)).toEqual([]);
    expect(onParent.duplicates).toEqual([]);
    expect(diffModel(onParent.model, expected.model)).toEqual(NO_DIFF);
    expect(diffModel(onChild.model, expected.model)).toEqual(NO_DIFF);
    expect(diffNodes(onParent.model, onChild.model)).toEqual([]);
  });

  it('leaves a clone cut short marked unusable, and the same command with the same home finishes it', async () => {
    const db = await createTestDb('cs_child');
    extraDbs.push(db);
    const home = tempHome();
    const { code } = await createPairingCode(parent.pool, 60);
    // Cut at the start of the fourth table sent, once the child has written some chunks (seen
    // uncommitted: a child on a loaded machine may still be reading what was sent). A load
    // that fails commits the chunks it wrote whole, so the next attempt keeps them.
    const sent = new Set<string>();
    afterChunk = async (table, chunk) => {
      sent.add(table);
      if (sent.size < 4 || chunk !== 0) return;
      const conn = await db.pool.getConnection();
      try {
        await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED');
        for (let i = 0; i < 200; i++) {
          const [r] = await queryRows(
            conn,
            `SELECT COUNT(*) AS n FROM ${PROGRESS_TABLE} WHERE chunk >= 0`,
          ).catch(() => [{ n: 0 }]);
          if (Number(r?.n) > 0) break;
          await new Promise((res) => setTimeout(res, 100));
        }
      } finally {
        conn.release();
      }
      throw new Error('the link dropped');
    };
    await expect(
      cloneFromParent({ parentUrl: server.url, code, db: db.target, name: 'north', home }),
    ).rejects.toThrow(/left marked as an unfinished clone/);
    afterChunk = async () => undefined;
    const settings = defaultSettings({
      db: dbUrlOf(db.target),
      name: 'north',
      role: 'child',
      parent: server.url,
    });
    await expect(SyncNode.open({ db: db.target, settings, home })).rejects.toThrow(
      /holds a clone that did not finish/,
    );

    // Again, with the code already used: the registration kept in the home is enough.
    const again = await cloneFromParent({
      parentUrl: server.url,
      code,
      db: db.target,
      name: 'north',
      home,
    });
    try {
      expect(again.syncError).toBeNull();
      // It went on from the chunks the first attempt committed.
      expect(again.chunksKept).toBeGreaterThan(0);
      expect((await again.node.status()).name).toBe('north');
      expect(await checksum(db.pool, db.name, 'obs')).toBe(
        await checksum(parentDb.pool, parentDb.name, 'obs'),
      );
      const children = (await parent.status()).children.map((c) => c.name).sort();
      expect(children).toEqual(['centre', 'north']);
    } finally {
      await again.node.close();
    }
  });

  it('runs as `clinic-sync clone`: progress on stderr, one summary line, exit codes 0, 1 and 3', async () => {
    const db = await createTestDb('cs_child');
    extraDbs.push(db);
    const run = (args: string[]) => runMain(['--home', tempHome().dir, 'clone', ...args]);
    const { code: pairing } = await createPairingCode(parent.pool, 60);

    const unreachable = await run([
      '--parent',
      'http://127.0.0.1:1',
      '--code',
      pairing,
      '--db',
      db.url,
      '--name',
      'south',
    ]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.err.at(-1)).toBe(
      'The main server at http://127.0.0.1:1 did not answer; check the connection. ClinicSync will try again.',
    );

    const wrong = await run([
      '--parent',
      server.url,
      '--code',
      'AAAA-BBBB-CCCC',
      '--db',
      db.url,
      '--name',
      'south',
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.err.at(-1)).toMatch(/^The pairing code is wrong/);

    const ok = await run([
      '--parent',
      server.url,
      '--code',
      pairing,
      '--db',
      db.url,
      '--name',
      'south',
    ]);
    expect(ok.err.join('\n')).toMatch(/Copying rows: /);
    // The summary's details: rows, bytes and rate, and the foreign keys checked.
    expect(ok.err.join('\n')).toMatch(
      /Copied [\d,]+ rows in [\d,]+ tables \(ClinicSync's own included\), [\d.]+ [KM]B received, [\d,]+ rows\/s\./,
    );
    expect(ok.err).toContain(
      'Every foreign key of the copy was checked: every reference is there.',
    );
    expect(ok.out).toHaveLength(1);
    expect(ok.out[0]).toMatch(
      /^Cloned \d+ tables and [\d,]+ rows from district in \d+ s; this clinic is now the child "south"\.$/,
    );
    expect(ok.code).toBe(0);

    const full = await run([
      '--parent',
      server.url,
      '--code',
      pairing,
      '--db',
      db.url,
      '--name',
      'west',
    ]);
    expect(full.code).toBe(1);
    expect(full.err.at(-1)).toMatch(
      new RegExp(
        `^The database ${db.name} already holds [\\d,]+ tables with [\\d,]+ rows(, .*)?; clone needs an empty database\\. To replace them, add --replace: what it holds is first saved to a dump file in this clinic's ClinicSync folder\\.$`,
      ),
    );
  });
});
