import { addPatients, createOpenmrsShape, sqlDateTime } from '../../src/demo/openmrsShape.js';
import { execute, inTransaction, queryRows, type Pool } from '../../src/engine/db/pool.js';
import { createTestDb, type TestDb } from '../../test/helpers/db.js';
import { initRoot } from '../../test/helpers/node.js';
import { isSmoke } from '../lib/size.js';
import { compared, type Bench } from '../types.js';

/*
 * Issue 11, figure 3: what ClinicSync's capture triggers cost the application. Two databases of
 * the same OpenMRS shape, one a ClinicSync node (its triggers installed; the engine closed, so
 * only the triggers run), the other plain. Both get the same statements, as OpenMRS writes
 * them: single-row INSERTs of a patient's registration and of a vitals encounter with 30 obs,
 * each in its own transaction; then single-row UPDATEs voiding each encounter's obs, one
 * transaction per encounter. Each side runs twice, alternating, and keeps its faster run, so a
 * busy moment on the machine does not decide the figure.
 */

const RUNS = 3;

export const bench: Bench = {
  name: 'capture',
  description: "the application's writes with ClinicSync's triggers vs without",
  async run(ctx) {
    const patients = isSmoke(ctx.env) ? 3 : 200;
    const dbs: TestDb[] = [];
    try {
      const best = {
        plain: { ins: Infinity, upd: Infinity },
        synced: { ins: Infinity, upd: Infinity },
      };
      let rows = { ins: 0, upd: 0 };
      for (let run = 0; run < RUNS; run++) {
        for (const side of ['plain', 'synced'] as const) {
          const db = await createTestDb(`csbench_cap_${side}`);
          dbs.push(db);
          await createOpenmrsShape(db.pool);
          if (side === 'synced') await (await initRoot(db, 'capture')).close();
          const r = await writeLikeOpenmrs(db.pool, patients);
          best[side].ins = Math.min(best[side].ins, r.insertSeconds);
          best[side].upd = Math.min(best[side].upd, r.updateSeconds);
          rows = { ins: r.inserted, upd: r.updated };
          ctx.log(
            `${side}, run ${run + 1}: ${r.inserted} inserts in ${r.insertSeconds.toFixed(2)} s, ${r.updated} updates in ${r.updateSeconds.toFixed(2)} s`,
          );
          if (side === 'synced') await mustHaveCaptured(db.pool, r.inserted + r.updated);
          await db.drop();
          dbs.pop();
        }
      }
      const rate = (n: number, s: number) => Math.round(n / s);
      return {
        name: 'capture',
        figures: [
          compared(
            'insert time with triggers',
            best.synced.ins,
            's',
            { label: 'without triggers', value: best.plain.ins },
            1.25,
          ),
          compared(
            'update time with triggers',
            best.synced.upd,
            's',
            { label: 'without triggers', value: best.plain.upd },
            1.25,
          ),
        ],
        notes: [
          `${rows.ins} single-row inserts (${patients} patients, 2 transactions each) and ${rows.upd} single-row updates (one transaction per encounter); best of ${RUNS} runs each`,
          `inserts: ${rate(rows.ins, best.synced.ins)} rows/s with triggers, ${rate(rows.ins, best.plain.ins)} without (cost ${cost(best.synced.ins, best.plain.ins)}); updates: ${rate(rows.upd, best.synced.upd)} rows/s with, ${rate(rows.upd, best.plain.upd)} without (cost ${cost(best.synced.upd, best.plain.upd)})`,
        ],
      };
    } finally {
      for (const d of dbs) await d.drop().catch(() => undefined);
    }
  },
};

function cost(withTriggers: number, without: number): string {
  return `${(((withTriggers - without) / without) * 100).toFixed(0)}%`;
}

async function writeLikeOpenmrs(pool: Pool, patients: number) {
  let t0 = performance.now();
  const added = await addPatients(pool, { count: patients, obsPerEncounter: 30, seed: 7 });
  const insertSeconds = (performance.now() - t0) / 1000;
  const now = sqlDateTime(new Date());
  t0 = performance.now();
  let updated = 0;
  for (const p of added.patients) {
    await inTransaction(pool, async (conn) => {
      for (const id of p.obsIds) {
        await execute(
          conn,
          "UPDATE obs SET voided = 1, voided_by = 1, date_voided = ?, void_reason = 'Edited' WHERE obs_id = ?",
          [now, id],
        );
        updated++;
      }
    });
  }
  const updateSeconds = (performance.now() - t0) / 1000;
  return { inserted: added.totalRows, insertSeconds, updated, updateSeconds };
}

/** The triggers did capture: one capture row per write (nothing picked them up meanwhile). */
async function mustHaveCaptured(pool: Pool, writes: number): Promise<void> {
  const [r] = await queryRows(pool, 'SELECT COUNT(*) AS n FROM clinicsync_capture');
  if (Number(r?.n) < writes) {
    throw new Error(`the triggers captured ${String(r?.n)} writes of ${writes}`);
  }
}
