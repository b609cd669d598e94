import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/engine/db/pool.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';
import { addPerson, shareSecret, usbKey } from '../helpers/usb.js';
import { runCli, startServe } from '../helpers/cli.js';

/**
 * Issue 7 through the command, as a data clerk runs it: `clinic-sync export --out DIR` at the
 * health centre, `clinic-sync import FILE --out DIR` at the district (here while `serve` runs it,
 * so the import goes through the running engine), `clinic-sync import REPLY` back at the centre;
 * refusals are one sentence on stderr with their exit code.
 */

const lines = (s: string) => s.trim().split('\n');

describe('clinic-sync export and import', () => {
  const tree = new Tree();
  let districtDb: TestDb;
  let butaroDb: TestDb;
  let districtHome: string;
  let butaroHome: string;

  beforeAll(async () => {
    districtDb = await createTestDb();
    await createClinicSchema(districtDb.pool);
    const district = await tree.root(districtDb, 'district');
    const butaro = await tree.clone(district, 'butaro');
    butaroDb = tree.dbs.at(-1)!;
    await shareSecret(district, butaro);
    await addPerson(butaro, 'p-cli-butaro', 'M');
    await addPerson(district, 'p-cli-district');
    districtHome = district.home.dir;
    butaroHome = butaro.home.dir;
    // The commands open the nodes themselves.
    for (const n of tree.nodes) await n.close();
    tree.nodes.length = 0;
  });
  afterAll(() => tree.close());

  it('makes the round trip; the district imports while its engine runs', async () => {
    const key = usbKey();
    const out = await runCli(['--home', butaroHome, 'export', '--out', key]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const [said, file] = lines(out.stdout);
    expect(said).toMatch(
      /^Wrote 1 change for district \([0-9.]+ (KB|bytes)\); take the file to district and load it there\.$/,
    );
    expect(file).toMatch(/clinicsync-butaro-to-district-\d{8}T\d{4}Z\.csync$/);
    expect(path.dirname(file!)).toBe(key);

    const served = (await startServe(districtHome)).proc;
    let reply: string;
    try {
      const back = usbKey();
      const imp = await runCli(['--home', districtHome, 'import', file!, '--out', back]);
      expect(imp.stderr).toBe('');
      expect(imp.code).toBe(0);
      const got = lines(imp.stdout);
      expect(got).toHaveLength(3);
      expect(got[0]).toBe('Loaded the file from butaro: 1 change new here, 0 already here.');
      expect(got[1]).toBe(
        'Wrote the reply for butaro with 1 change; take it back to butaro and load it there.',
      );
      reply = got[2]!;
      expect(path.dirname(reply)).toBe(back);
      expect(path.basename(reply)).toMatch(/^clinicsync-district-to-butaro-.*\.csync$/);
    } finally {
      served.kill('SIGTERM');
      await new Promise((r) => served.once('exit', r));
    }
    const [row] = await queryRows(
      districtDb.pool,
      "SELECT gender FROM person WHERE uuid = 'p-cli-butaro'",
    );
    expect(row).toEqual({ gender: 'M' });

    const done = await runCli(['--home', butaroHome, 'import', reply]);
    expect(done.code).toBe(0);
    expect(lines(done.stdout)).toEqual([
      'Loaded the file from district: 1 change new here, 0 already here.',
    ]);
    const rows = await queryRows(butaroDb.pool, 'SELECT uuid FROM person ORDER BY uuid');
    expect(rows.map((r) => String(r.uuid))).toContain('p-cli-district');

    // Loaded twice: nothing new, said so.
    const twice = await runCli(['--home', butaroHome, 'import', reply]);
    expect(lines(twice.stdout)).toEqual([
      'Loaded the file from district: 0 changes new here, 1 already here.',
    ]);
  });

  it('refuses with one sentence and the exit code', async () => {
    const key = usbKey();
    const out = await runCli(['--home', butaroHome, 'export', '--out', key]);
    const file = lines(out.stdout).at(-1)!;

    const own = await runCli(['--home', butaroHome, 'import', file]);
    expect([own.code, own.stdout]).toEqual([2, '']);
    expect(lines(own.stderr)).toEqual([
      'This file was written here, on butaro, for district; take it to district and load it there. Nothing was applied.',
    ]);

    const cut = path.join(usbKey(), path.basename(file));
    fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, 100));
    const short = await runCli(['--home', districtHome, 'import', cut]);
    expect(short.code).toBe(1);
    expect(lines(short.stderr)).toEqual([
      `The file ${path.basename(file)} is incomplete: it was cut short, perhaps when the USB key was pulled out too early. Nothing was applied; copy it again, or write a new one.`,
    ]);

    const top = await runCli(['--home', districtHome, 'export', '--out', key]);
    expect(top.code).toBe(1);
    expect(top.stderr).toMatch(/^This computer is the top of its tree/);

    const missing = await runCli(['--home', butaroHome, 'export']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--out/);
    const nowhere = await runCli([
      '--home',
      butaroHome,
      'export',
      '--out',
      path.join(key, 'no-such'),
    ]);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toMatch(/does not exist; plug in the USB key/);
  });
});
