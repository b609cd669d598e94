import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { execute } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb, SERVER } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 5, item 4: `clinic-sync conflicts --json` prints a JSON array of objects with exactly
 * `table`, `identity`, `columns`, `winner`, `loser`, `winnerOrigin`, `loserOrigin` and `at`. Both
 * nodes of a harness tree edit the same column of one row between exchanges; the later clock
 * wins on both, and each node lists every value set aside, whether it turned the incoming value
 * away or the incoming value replaced its own. The nodes stay open (holding their locks, as
 * `serve` would) while the command runs.
 */

const BIN = fileURLToPath(new URL('../../bin/clinic-sync.js', import.meta.url));
const ENV = { ...process.env, MYSQL_PWD: SERVER.password };
const CONTRACT_KEYS = [
  'at',
  'columns',
  'identity',
  'loser',
  'loserOrigin',
  'table',
  'winner',
  'winnerOrigin',
];

function spawnCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...ENV };
  delete env.CLINIC_SYNC_HOME;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env }, (e, stdout, stderr) => {
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function cli(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, ENV);
  return { code, out, err };
}

describe('clinic-sync conflicts', () => {
  let tree: Tree;
  let district: SyncNode;
  let clinic: SyncNode;
  let districtEditAt: number;
  let clinicEditAt: number;

  beforeAll(async () => {
    tree = new Tree();
    const db = await createTestDb('cs_conflicts_cli');
    await createClinicSchema(db.pool);
    district = await tree.root(db, 'district');
    clinic = await tree.clone(district, 'clinic');

    // Nothing to review yet.
    const none = await cli(['--home', clinic.home.dir, 'conflicts', '--json']);
    expect(none.code).toBe(0);
    expect(none.out).toEqual(['[]']);

    // The district edits the admin's birthdate, then the clinic, later by the clock, the same
    // column (a column only the district edits is no conflict); the other way round for a role's
    // description. Both nodes record both: the district's birthdate and the clinic's description
    // are set aside everywhere.
    districtEditAt = Date.now();
    await execute(
      district.pool,
      "UPDATE person SET birthdate = '1976-01-01', gender = 'F' WHERE uuid = 'p-admin'",
    );
    await execute(clinic.pool, "UPDATE role SET description = 'clinic' WHERE role = 'Clerk'");
    await sleep(50);
    clinicEditAt = Date.now();
    await execute(clinic.pool, "UPDATE person SET birthdate = '1976-02-02' WHERE uuid = 'p-admin'");
    await execute(district.pool, "UPDATE role SET description = 'district' WHERE role = 'Clerk'");
    await tree.sync(clinic, district);
  });
  afterAll(async () => tree.close());

  it('--json on each node: exactly the contract’s keys, the later value winning, the origins', async () => {
    const birthdate = {
      table: 'person',
      identity: 'p-admin',
      columns: ['birthdate'],
      winner: { birthdate: '1976-02-02' },
      loser: { birthdate: '1976-01-01' },
      winnerOrigin: clinic.nodeId,
      loserOrigin: district.nodeId,
    };
    const description = {
      table: 'role',
      identity: 'Clerk',
      columns: ['description'],
      winner: { description: 'district' },
      loser: { description: 'clinic' },
      winnerOrigin: district.nodeId,
      loserOrigin: clinic.nodeId,
    };
    for (const node of [clinic, district]) {
      const where = node === clinic ? 'the clinic' : 'the district';
      // The real command in a process of its own, beside an engine that holds the node.
      const r = await spawnCli(['--home', node.home.dir, 'conflicts', '--json']);
      expect(r.stderr, where).toBe('');
      expect(r.code, where).toBe(0);
      expect(r.stdout.trim().split('\n'), where).toHaveLength(1);
      const list = JSON.parse(r.stdout) as Record<string, unknown>[];
      expect(Array.isArray(list), where).toBe(true);
      expect(list, where).toHaveLength(2);
      for (const c of list) expect(Object.keys(c).sort(), where).toEqual(CONTRACT_KEYS);
      expect(list, where).toContainEqual(expect.objectContaining(birthdate));
      expect(list, where).toContainEqual(expect.objectContaining(description));
      for (const c of list) {
        // `at`: when the losing value was written (its clock), as an ISO time
        expect(String(c.at)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        const at = Date.parse(String(c.at));
        expect(at, where).toBeGreaterThanOrEqual(districtEditAt - 1000);
        expect(at, where).toBeLessThan(clinicEditAt);
      }
    }
  });

  it('text: a few readable lines per conflict, naming the nodes', async () => {
    const r = await cli(['--home', clinic.home.dir, 'conflicts']);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(7);
    const at = r.out.indexOf('person p-admin: birthdate');
    expect(at).toBeGreaterThanOrEqual(0);
    expect(r.out[at + 1]).toBe('  kept       birthdate = "1976-02-02" (from clinic (here))');
    expect(r.out[at + 2]).toMatch(
      /^ {2}set aside {2}birthdate = "1976-01-01" \(from district, made \d{4}-\d\d-\d\dT[\d:.]+Z\)$/,
    );
    const role = r.out.indexOf('role Clerk: description');
    expect(r.out[role + 1]).toBe('  kept       description = "district" (from district)');
    expect(r.out[role + 2]).toMatch(
      /^ {2}set aside {2}description = "clinic" \(from clinic \(here\), made /,
    );
    expect(r.out[6]).toBe('2 conflicts.');
  });

  it('--limit: at most N, newest first; a malformed one is refused with one sentence, exit 2', async () => {
    // A third conflict at the clinic: the district's earlier locale turned away.
    await execute(
      district.pool,
      "UPDATE global_property SET property_value = 'fr' WHERE property = 'locale'",
    );
    await sleep(50);
    await execute(
      clinic.pool,
      "UPDATE global_property SET property_value = 'rw' WHERE property = 'locale'",
    );
    await tree.sync(clinic, district);

    const two = JSON.parse((await cli(['--home', clinic.home.dir, 'conflicts', '--json'])).out[0]!);
    expect(two).toHaveLength(3);
    const one = await cli(['--home', clinic.home.dir, 'conflicts', '--json', '--limit', '1']);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.out[0]!)).toEqual([
      expect.objectContaining({
        table: 'global_property',
        identity: 'gp-locale',
        columns: ['property_value'],
        winner: { property_value: 'rw' },
        loser: { property_value: 'fr' },
        winnerOrigin: clinic.nodeId,
        loserOrigin: district.nodeId,
      }),
    ]);
    const text = await cli(['--home', clinic.home.dir, 'conflicts', '--limit', '1']);
    expect(text.out.at(-1)).toBe('Showing the latest 1 of 3 conflicts; --limit shows more.');

    const bad = await cli(['--home', clinic.home.dir, 'conflicts', '--limit', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.out).toEqual([]);
    expect(bad.err).toEqual(['--limit must be a whole number from 1 to 1,000,000, not "lots".']);
  });
});
