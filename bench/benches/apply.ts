import { execFileSync } from 'node:child_process';
import { q } from '../../src/engine/db/ident.js';
import {
  chunks,
  execute,
  queryRows,
  type Pool,
  type RowDataPacket,
} from '../../src/engine/db/pool.js';
import { ihash } from '../../src/engine/identity/identities.js';
import type { Envelope } from '../../src/engine/protocol/types.js';
import { createTestDb, SERVER, type TestDb } from '../../test/helpers/db.js';
import { overTheWire } from '../../test/helpers/tree.js';
import { KEY, makeMix, type MixTable } from '../lib/mix.js';
import { isSmoke } from '../lib/size.js';
import { twoNodes } from '../lib/twoNodes.js';
import { compared, type Bench } from '../types.js';

/*
 * Issue 11, figure 2: how fast a parent applies 20,000 incoming obs-heavy changes (new patients
 * with 30 obs each), beside loading the same rows into a copy of the same database with
 * multi-row INSERT statements (1,000 rows each, in foreign-key order, no triggers).
 *
 * The child makes the patients; its batches (as `sync` would send them, through the XML codec
 * with gzip) are made before the clock starts; the parent's answer to each is timed, as the
 * server makes it (SyncNode.answer): decoding is the transport's; applying, acknowledging and
 * building the reply is what is measured.
 *
 * A second figure is the floor the design sets: the same load plus the log row and row state each
 * applied change writes (DESIGN §3, §5), loaded the same way. It shows how much of the apply time
 * is what must be written at all, and how much is the work around it.
 */

const ORDER: MixTable[] = [
  'person',
  'person_name',
  'patient',
  'patient_identifier',
  'visit',
  'encounter',
  'obs',
];
const ROWS_PER_INSERT = 1_000;
const LOG_COLUMNS = [
  'origin',
  'seq',
  'hlc',
  'tbl',
  'op',
  'ident',
  'old_ident',
  'payload',
  'basis',
  'src',
];
const STATE_COLUMNS = ['tbl', 'khash', 'lkey', 'ident', 'ihash', 'colset', 'hashes', 'n', 'clocks'];

/** Loads rows into a table with multi-row INSERTs of ROWS_PER_INSERT; the count loaded. */
async function load(pool: Pool, table: string, names: string[], all: unknown[][]): Promise<number> {
  const one = `(${names.map(() => '?').join(', ')})`;
  for (const part of chunks(all, ROWS_PER_INSERT)) {
    await execute(
      pool,
      `INSERT INTO ${q(table)} (${names.map(q).join(', ')}) VALUES ${part.map(() => one).join(', ')}`,
      part.flat(),
    );
  }
  return all.length;
}

export const bench: Bench = {
  name: 'apply',
  description: 'apply rate of incoming obs-heavy changes vs multi-row INSERT of the same rows',
  async run(ctx) {
    const changes = isSmoke(ctx.env) ? 360 : 20_000;
    const nodes = await twoNodes();
    let copy: TestDb | null = null;
    try {
      const { child, root } = nodes;
      // The copy the baseline loads into: the parent as it is now, without ClinicSync's triggers.
      copy = await createTestDb('csbench_load');
      const conn = ['-h', SERVER.host, '-P', String(SERVER.port), '-u', SERVER.user];
      const dump = execFileSync(
        'mariadb-dump',
        [...conn, '--single-transaction', '--skip-triggers', '--no-tablespaces', root.db.database],
        { env: { ...process.env, MYSQL_PWD: SERVER.password }, maxBuffer: 256 * 1024 * 1024 },
      );
      execFileSync('mariadb', [...conn, copy.name], {
        input: dump,
        env: { ...process.env, MYSQL_PWD: SERVER.password },
      });

      const patients = Math.ceil(changes / 36);
      ctx.log(`the child makes ${patients} patients with 30 obs each`);
      const mix = await makeMix(child.pool, { patients, seed: 5 });
      const batches: Envelope[] = [];
      await child.outgoingAll(root.nodeId, async (env) => {
        batches.push(overTheWire(env));
        return true;
      });
      const sent = batches.reduce((n, b) => n + b.changes.length, 0);
      if (sent !== mix.events.length) {
        throw new Error(`the child's batches hold ${sent} changes, not ${mix.events.length}`);
      }

      ctx.log(`the parent applies ${sent} changes in ${batches.length} batches`);
      let t0 = performance.now();
      let applied = 0;
      for (const env of batches) applied += (await root.answer(env)).result.applied;
      const applySeconds = (performance.now() - t0) / 1000;
      const [held] = await queryRows(root.pool, 'SELECT COUNT(*) AS n FROM obs');
      ctx.log(`applied ${applied} in ${applySeconds.toFixed(1)} s`);

      // The baseline: the same rows, read from the child, loaded table by table.
      const rows = new Map<MixTable, unknown[][]>();
      const cols = new Map<MixTable, string[]>();
      for (const table of ORDER) {
        const ids = mix.events.filter((e) => e.table === table).map((e) => e.id);
        const got = ids.length
          ? await queryRows(
              child.pool,
              `SELECT * FROM ${q(table)} WHERE ${q(KEY[table])} BETWEEN ? AND ? ORDER BY ${q(KEY[table])}`,
              [Math.min(...ids), Math.max(...ids)],
            )
          : [];
        if (got.length) cols.set(table, Object.keys(got[0]!));
        rows.set(
          table,
          got.map((r) => Object.values(r)),
        );
      }
      t0 = performance.now();
      let loaded = 0;
      for (const table of ORDER) {
        loaded += await load(copy.pool, table, cols.get(table) ?? [], rows.get(table) ?? []);
      }
      const loadSeconds = (performance.now() - t0) / 1000;
      if (loaded !== sent) throw new Error(`the baseline loaded ${loaded} rows, not ${sent}`);

      // The floor under DESIGN §3 and §5: besides its row, every applied change writes a log row
      // (to pass it on) and its row state (clocks and column hashes). The parent's own, loaded
      // the same way into the copy: no design that keeps them applies faster than this.
      const log = await queryRows(
        root.pool,
        `SELECT ${LOG_COLUMNS.join(', ')} FROM clinicsync_log WHERE origin = ?`,
        [child.nodeId],
      );
      const states: RowDataPacket[] = [];
      for (const table of ORDER) {
        const hashes = batches.flatMap((b) =>
          b.changes.filter((c) => c.table === table).map((c) => ihash(c.ident)),
        );
        for (const part of chunks(hashes, ROWS_PER_INSERT)) {
          states.push(
            ...(await queryRows(
              root.pool,
              `SELECT ${STATE_COLUMNS.join(', ')} FROM clinicsync_row
                WHERE tbl = ? AND ihash IN (${part.map(() => '?').join(', ')})`,
              [table, ...part],
            )),
          );
        }
      }
      if (log.length !== sent || states.length !== sent) {
        throw new Error(`the parent holds ${log.length} log rows and ${states.length} row states`);
      }
      t0 = performance.now();
      await load(
        copy.pool,
        'clinicsync_log',
        LOG_COLUMNS,
        log.map((r) => LOG_COLUMNS.map((c) => r[c])),
      );
      await load(
        copy.pool,
        'clinicsync_row',
        STATE_COLUMNS,
        states.map((r) => STATE_COLUMNS.map((c) => r[c])),
      );
      const floorSeconds = loadSeconds + (performance.now() - t0) / 1000;
      return {
        name: 'apply',
        figures: [
          compared(
            `apply ${sent.toLocaleString('en-US')} changes`,
            applySeconds,
            's',
            { label: 'multi-row INSERT load', value: loadSeconds },
            3,
          ),
          compared('the same rows with their log rows and row states', floorSeconds, 's', {
            label: 'multi-row INSERT load',
            value: loadSeconds,
          }),
        ],
        notes: [
          `${(sent / applySeconds).toFixed(0)} changes/s applied, ${(loaded / loadSeconds).toFixed(0)} rows/s loaded; ${batches.length} batches of up to ${child.settings.sync.batchRecords} changes; the parent holds ${String(held?.n)} obs`,
        ],
      };
    } finally {
      await copy?.drop().catch(() => undefined);
      await nodes.close();
    }
  },
};
