import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Home } from '../../src/engine/config/home.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { queryRows, type Queryable } from '../../src/engine/db/pool.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { createPairingCode } from '../../src/engine/transport/pairing.js';
import { generateOpenmrs } from '../lib/openmrsData.js';
import { runClinicSync } from '../lib/proc.js';
import { SERVER, clientArgs, createBenchDb, serverEnv, type BenchDb } from '../lib/server.js';
import { compared, type Bench, type BenchFigure } from '../types.js';

/*
 * Issue 6, "Done when", first point: a generated OpenMRS-shaped database of at least 5,000
 * patients and 400,000 obs is cloned over HTTP (`clinic-sync serve` on the parent and `clinic-sync
 * clone` on the child, each in a process of its own), beside `mariadb-dump | mariadb` of the same
 * database in the same run. Targets: the clone no slower than the dump pipeline, and each
 * engine's peak resident memory under 256 MB. The sizes can be changed with
 * CLINIC_SYNC_BENCH_PATIENTS (default 5,000; 80 obs each; 50 with CLINIC_SYNC_BENCH_SMOKE=1).
 */

const MB = 1_000_000;
const RSS_LIMIT = 256 * 1024 * 1024;

export const bench: Bench = {
  name: 'clone',
  description: 'clone of an OpenMRS-shaped database over HTTP vs mariadb-dump | mariadb',
  async run(ctx) {
    // CLINIC_SYNC_BENCH_SMOKE=1: a tiny run that only proves the bench works end to end.
    const smoke = ctx.env.CLINIC_SYNC_BENCH_SMOKE === '1';
    const patients = Number(ctx.env.CLINIC_SYNC_BENCH_PATIENTS ?? (smoke ? 50 : 5_000));
    const dbs: BenchDb[] = [];
    const homes: string[] = [];
    const tempHomeDir = () => {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-bench-home-'));
      homes.push(d);
      return d;
    };
    try {
      const parentDb = await createBenchDb('csbench_parent');
      dbs.push(parentDb);
      let t = Date.now();
      const made = await generateOpenmrs(parentDb.pool, {
        patients,
        encountersPerPatient: 8,
        obsPerEncounter: 10,
        onProgress: (l) => ctx.log(`generating: ${l}`),
      });
      ctx.log(
        `generated ${made.totalRows.toLocaleString('en-US')} rows in ${secs(Date.now() - t)} s`,
      );

      t = Date.now();
      const parentHome = tempHomeDir();
      const settings = defaultSettings({ db: dbUrlOf(parentDb.target), name: 'district' });
      const home = new Home(parentHome);
      home.save(settings);
      const root = await SyncNode.init({ db: parentDb.target, name: 'district', settings, home });
      await root.close();
      ctx.log(`made it a ClinicSync root in ${secs(Date.now() - t)} s`);
      const sizeBytes = await databaseBytes(parentDb.pool, parentDb.name);
      const obs = await count(parentDb.pool, 'obs');
      const patientRows = await count(parentDb.pool, 'patient');

      // The baseline: the usual dump piped into the usual client.
      const dumpDb = await createBenchDb('csbench_dump');
      dbs.push(dumpDb);
      const dumpMs = await dumpPipeline(parentDb.name, dumpDb.name);
      ctx.log(`mariadb-dump | mariadb: ${secs(dumpMs)} s`);

      // The clone: the parent serving, the child cloning, each a process of its own.
      const env = serverEnv(ctx.env);
      const serve = runClinicSync(
        ['--home', parentHome, 'serve', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
        env,
      );
      const url = (await serve.line(/^listening /)).replace(/^listening /, '');
      const pairing = await createPairingCode(parentDb.pool, 60);
      const childDb = await createBenchDb('csbench_child');
      dbs.push(childDb);
      const clone = runClinicSync(
        [
          '--home',
          tempHomeDir(),
          'clone',
          '--parent',
          url,
          '--code',
          pairing.code,
          '--db',
          childDb.url,
          '--name',
          'bench-centre',
        ],
        env,
        (l) => ctx.log(`clone: ${l}`),
      );
      const cloned = await clone.done;
      serve.child.kill('SIGTERM');
      const served = await serve.done;
      if (cloned.code !== 0) {
        throw new Error(`the clone failed (exit ${cloned.code}): ${clone.err.slice(-2).join(' ')}`);
      }
      ctx.log(`clone: ${secs(cloned.ms)} s`);
      const same = await sameTables(parentDb.pool, parentDb.name, childDb.name);

      const figures: BenchFigure[] = [
        compared(
          'clone time',
          cloned.ms / 1000,
          's',
          { label: 'mariadb-dump | mariadb', value: dumpMs / 1000 },
          1,
        ),
        {
          label: 'child engine peak RSS',
          value: cloned.rssBytes / MB,
          unit: 'MB',
          target: '< 256 MiB',
          met: cloned.rssBytes > 0 && cloned.rssBytes < RSS_LIMIT,
        },
        {
          label: 'parent engine peak RSS',
          value: served.rssBytes / MB,
          unit: 'MB',
          target: '< 256 MiB',
          met: served.rssBytes > 0 && served.rssBytes < RSS_LIMIT,
        },
      ];
      return {
        name: 'clone',
        figures,
        notes: [
          `${patientRows.toLocaleString('en-US')} patients, ${obs.toLocaleString('en-US')} obs, ${made.totalRows.toLocaleString('en-US')} generated rows, ${(sizeBytes / MB).toFixed(0)} MB of data and indexes with ClinicSync's tables`,
          `clone identical to the parent, table by table: ${same ? 'yes' : 'NO'}`,
          `database server ${SERVER.host}:${SERVER.port}; ${os.cpus().length} cores`,
        ],
      };
    } finally {
      for (const d of dbs) await d.drop().catch(() => undefined);
      for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
    }
  },
};

function secs(ms: number): string {
  return (ms / 1000).toFixed(1);
}

async function count(db: Queryable, table: 'obs' | 'patient'): Promise<number> {
  const [r] = await queryRows(db, `SELECT COUNT(*) AS n FROM ${table}`);
  return Number(r?.n ?? 0);
}

async function databaseBytes(db: Queryable, name: string): Promise<number> {
  const [r] = await queryRows(
    db,
    'SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
    [name],
  );
  return Number(r?.b ?? 0);
}

/** Wall time of `mariadb-dump … from | mariadb … to`. */
function dumpPipeline(from: string, to: string): Promise<number> {
  const started = Date.now();
  const env = serverEnv();
  return new Promise((resolve, reject) => {
    const dump = spawn(
      'mariadb-dump',
      [
        ...clientArgs(),
        '--single-transaction',
        '--routines',
        '--triggers',
        '--no-tablespaces',
        from,
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const load = spawn('mariadb', [...clientArgs(), to], {
      env,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    dump.stdout.pipe(load.stdin);
    let failed = '';
    dump.stderr.on('data', (d: Buffer) => (failed += d.toString()));
    load.stderr.on('data', (d: Buffer) => (failed += d.toString()));
    let ended = 0;
    const end = (code: number | null) => {
      if (code !== 0) reject(new Error(`the dump pipeline failed: ${failed.trim()}`));
      else if (++ended === 2) resolve(Date.now() - started);
    };
    dump.on('exit', end);
    load.on('exit', end);
  });
}

/** Every base table of the parent holds the same rows in the child (CHECKSUM TABLE). */
async function sameTables(db: Queryable, parent: string, child: string): Promise<boolean> {
  const tables = await queryRows(
    db,
    "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME NOT LIKE 'clinicsync\\_%'",
    [parent],
  );
  for (const { t } of tables) {
    const name = String(t).replace(/`/g, '``');
    const [a] = await queryRows(db, `CHECKSUM TABLE \`${parent}\`.\`${name}\``);
    const [b] = await queryRows(db, `CHECKSUM TABLE \`${child}\`.\`${name}\``);
    if (String(a?.Checksum) !== String(b?.Checksum)) return false;
  }
  return true;
}
