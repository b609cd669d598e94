import { existsSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { openPool, queryRows } from '../../src/engine/db/pool.js';
import { parseDbUrl } from '../../src/engine/db/url.js';
import { addPatients, createOpenmrsShape } from '../../src/demo/openmrsShape.js';
import { findDemoServer, INSTALL_SENTENCE, type DemoServer } from '../../src/demo/server.js';

/*
 * `npm run demo` finds its database server; the hard path is the private throwaway server it
 * starts when 127.0.0.1:3306 does not answer. Here 127.0.0.1:3306 is skipped (tryDefault: false)
 * so that path runs for real on the installed mariadbd, and is cleaned up.
 */
describe('the demo database server', () => {
  const started: DemoServer[] = [];
  afterAll(async () => {
    for (const s of started) await s.stop();
  });

  it('starts a private mariadbd when the default server is skipped, and removes it', async () => {
    const notes: string[] = [];
    const server = await findDemoServer({
      env: { PATH: process.env.PATH },
      tryDefault: false,
      note: (line) => notes.push(line),
    });
    started.push(server);
    expect(notes.join('\n')).toMatch(/^Starting a private (MariaDB|MySQL) /);
    expect(server.description).toMatch(/^a private (MariaDB|MySQL) .* on 127\.0\.0\.1:\d+ in /);
    expect(server.address.port).not.toBe(3306);
    const folder = server.folder!;
    expect(existsSync(folder)).toBe(true);

    // A database on it takes the OpenMRS shape and 50 patients, fast.
    const admin = await mysql.createConnection({ ...server.address, password: '' });
    await admin.query('CREATE DATABASE demo_check DEFAULT CHARACTER SET utf8mb3');
    await admin.end();
    const pool = openPool(parseDbUrl(server.url('demo_check')));
    try {
      await createOpenmrsShape(pool);
      const t0 = Date.now();
      const added = await addPatients(pool, { count: 50, obsPerEncounter: 5, seed: 42 });
      const ms = Date.now() - t0;
      expect(added.patients).toHaveLength(50);
      expect(added.totalRows).toBe(50 * 11);
      expect(added.transactions).toBe(100);
      expect(ms).toBeLessThan(5_000);
      const [counts] = await queryRows(
        pool,
        `SELECT (SELECT COUNT(*) FROM patient) AS patients, (SELECT COUNT(*) FROM obs) AS obs,
                (SELECT COUNT(DISTINCT identifier) FROM patient_identifier) AS ids,
                (SELECT @@character_set_database) AS cs`,
      );
      expect(Number(counts!.patients)).toBe(50);
      expect(Number(counts!.obs)).toBe(250);
      expect(Number(counts!.ids)).toBe(50);
      expect(String(counts!.cs)).toMatch(/^utf8(mb3)?$/);
    } finally {
      await pool.end();
    }

    await server.stop();
    expect(existsSync(folder)).toBe(false);
    await expect(
      mysql.createConnection({ ...server.address, password: '', connectTimeout: 2_000 }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('says in one sentence how to install a server when none answers and none is installed', async () => {
    await expect(findDemoServer({ env: {}, tryDefault: false, searchDirs: [] })).rejects.toThrow(
      INSTALL_SENTENCE,
    );
  });

  it('uses the server named by CLINIC_SYNC_DEMO_DB, and says so when it does not answer', async () => {
    await expect(
      findDemoServer({ env: { CLINIC_SYNC_DEMO_DB: 'mysql://root@127.0.0.1:1' }, searchDirs: [] }),
    ).rejects.toThrow(
      /^No database server answers at 127\.0\.0\.1:1, named by CLINIC_SYNC_DEMO_DB/,
    );
  });
});
