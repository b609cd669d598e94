import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { SyncNode as Node } from '../../src/engine/node/node.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { readLog } from '../helpers/log.js';
import { initRoot } from '../helpers/node.js';

const WORKER = path.resolve(import.meta.dirname, '../helpers/pickup-worker.ts');

function startWorker(home: string, url: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, home, url], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`pickup worker exited early (${code})`)));
  });
}

/** kill -9 of the engine at random points of pickup: the log ends complete and without duplicates. */
describe('capture survives a killed engine', () => {
  let db: TestDb;
  let node: SyncNode;

  beforeEach(async () => {
    db = await createTestDb();
    await createClinicSchema(db.pool);
    node = await initRoot(db);
    await node.close();
  });
  afterEach(async () => {
    await db.drop();
  });

  it('keeps every committed change exactly once across kills (fixed seed)', async () => {
    const kills = fc.sample(fc.integer({ min: 20, max: 400 }), { numRuns: 6, seed: 20261126 });
    const home = node.home.dir;
    let written = 0;
    for (const delay of kills) {
      const worker = await startWorker(home, db.url);
      // The clinic keeps working while the engine runs: inserts and updates in small transactions.
      const writes = (async () => {
        for (let i = 0; i < 60; i++) {
          const uuid = `p-${written++}`;
          await execute(
            db.pool,
            `INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, NOW(), '${uuid}')`,
          );
          if (i % 3 === 0)
            await execute(db.pool, `UPDATE person SET voided = 1 WHERE uuid = '${uuid}'`);
        }
      })();
      await new Promise((r) => setTimeout(r, delay));
      worker.kill('SIGKILL');
      await once(worker, 'exit');
      await writes;
    }
    // the killed engines did part of the work: the survivor finishes it without repeating any
    const byWorkers = (await readLog(db.pool)).length;
    expect(byWorkers).toBeGreaterThan(0);
    const survivor = await Node.open({
      db: db.target,
      settings: node.settings,
      home: node.home,
      lock: 'wait',
    });
    await survivor.pickup();
    await survivor.close();

    const log = await readLog(db.pool);
    expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    const inserts = log.filter((e) => e.op === 'I').map((e) => e.ident);
    expect(inserts).toHaveLength(written);
    expect(new Set(inserts).size).toBe(written);
    // an update picked up together with its insert is folded into it; never logged twice
    const updates = log.filter((e) => e.op === 'U');
    expect(new Set(updates.map((e) => e.ident)).size).toBe(updates.length);
    const voided = await queryRows(
      db.pool,
      "SELECT uuid FROM person WHERE voided = 1 AND uuid LIKE 'p-%'",
    );
    for (const r of voided) {
      const entries = log.filter((e) => e.ident === r.uuid);
      const last = Object.assign({}, ...entries.map((e) => e.payload));
      expect(last.voided).toBe('1');
    }
    const [left] = await queryRows(db.pool, 'SELECT COUNT(*) AS n FROM clinicsync_capture');
    expect(Number(left!.n)).toBe(0);
  });
});
