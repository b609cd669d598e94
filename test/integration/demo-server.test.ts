import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { openPool, queryRows } from '../../src/engine/db/pool.js';
import { parseDbUrl } from '../../src/engine/db/url.js';
import { addPatients, createOpenmrsShape } from '../../src/demo/openmrsShape.js';
import { findDemoServer, INSTALL_SENTENCE, type DemoServer } from '../../src/demo/server.js';
import { SERVER } from '../helpers/db.js';

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

/** Issue 4, "Done when": `npm run demo` ends by printing that the nodes agree. */
describe('npm run demo', () => {
  const demoDatabases = async (): Promise<string[]> => {
    const conn = await mysql.createConnection(SERVER);
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        "SHOW DATABASES LIKE 'clinicsync\\_demo\\_%'",
      );
      return rows.map((r) => String(Object.values(r)[0]));
    } finally {
      await conn.end();
    }
  };
  const demoHomes = () => readdirSync(os.tmpdir()).filter((f) => f.startsWith('cs-demo-home-'));

  it('clones two children, syncs edits made on all three, and ends with the nodes agreeing', async () => {
    const dbsBefore = new Set(await demoDatabases());
    const homesBefore = new Set(demoHomes());
    const login = SERVER.password
      ? `${SERVER.user}:${encodeURIComponent(SERVER.password)}`
      : SERVER.user;
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', 'src/demo/main.ts'],
        {
          env: {
            PATH: process.env.PATH,
            CLINIC_SYNC_DEMO_DB: `mysql://${login}@${SERVER.host}:${SERVER.port}`,
          },
          timeout: 110_000,
        },
        (_err, out, err) => resolve({ code: child.exitCode, stdout: out, stderr: err }),
      );
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines.filter((l) => /^Butaro|^Rwinkwavu/.test(l))).toHaveLength(2);
    expect(
      lines.filter((l) => / → Amani Hospital: sent \d+ changes?, received \d+, /.test(l)),
    ).toHaveLength(4);
    expect(stdout).toMatch(/^ {2}total +12 +12 +12$/m);
    expect(stdout).toContain('Each of the 36 changes reached the two other nodes exactly once');
    expect(stdout).not.toContain('NOT SO');
    expect(lines.at(-1)).toMatch(
      /^All three nodes agree: 16 tables, [\d,]+ rows, identical by global identity\.$/,
    );
    // Nothing left behind.
    expect((await demoDatabases()).filter((d) => !dbsBefore.has(d))).toEqual([]);
    expect(demoHomes().filter((h) => !homesBefore.has(h))).toEqual([]);
  }, 120_000);
});
