import { queryRows } from '../../src/engine/db/pool.js';
import { makeMix, type Mix } from '../lib/mix.js';
import { symmetricCsv } from '../lib/symmetricCsv.js';
import { twoNodes, type TwoNodes } from '../lib/twoNodes.js';
import { compared, type Bench, type BenchFigure } from '../types.js';
import { isSmoke } from '../lib/size.js';

/*
 * Issue 11, figure 1: bytes on the wire per record, and 200 records over a 1 kbit/s link.
 *
 * A child and its parent (real nodes, real HTTP, the child's ParentClient through a counting TCP
 * proxy). The child first makes some patients and syncs them (not counted); then it makes the
 * measured mix: new patients with ~30 obs each, name corrections and voided obs on the earlier
 * patients. One `sync` carries it; every byte through the proxy, both ways, is counted. The
 * baseline is the same rows as a gzipped SymmetricDS CSV batch (payload only, no HTTP).
 *
 * Then the link becomes 125 bytes a second each way (1 kbit/s) through the same kind of proxy,
 * and 200 more records are synced end to end; the original module took about 300 s for 200.
 */

const RATE_1KBIT = 125;
const ORIGINAL_200_SECONDS = 300;

export const bench: Bench = {
  name: 'wire',
  description:
    'wire bytes per record (real HTTP, counted on the socket) vs SymmetricDS CSV gzipped',
  async run(ctx) {
    const smoke = isSmoke(ctx.env);
    const size = smoke
      ? { warm: 2, patients: 2, updates: 2, voids: 4, slowPatients: 1, slowRate: 50_000 }
      : { warm: 20, patients: 20, updates: 20, voids: 40, slowPatients: 5, slowRate: RATE_1KBIT };
    const nodes = await twoNodes();
    let slowNodes: TwoNodes | null = null;
    try {
      const { child, root, service, proxy } = nodes;
      ctx.log('making the earlier patients and syncing them');
      const warm = await makeMix(child.pool, { patients: size.warm, seed: 1 });
      await service.syncNow();

      ctx.log('making the measured mix');
      const mix = await makeMix(child.pool, {
        patients: size.patients,
        updates: size.updates,
        voids: size.voids,
        earlier: warm.patients,
        seed: 2,
      });
      proxy.reset();
      const summary = await service.syncNow();
      const wire = proxy.bytes.up + proxy.bytes.down;
      const records = mix.events.length;
      if (summary.sent !== records) {
        throw new Error(`the sync carried ${summary.sent} changes, not the ${records} made`);
      }
      await mustHave(root.pool, mix);
      const csv = await symmetricCsv(child.pool, mix.events);
      ctx.log(`${records} records: ${wire} bytes on the wire, CSV gzipped ${csv.gzipBytes}`);

      await nodes.close();

      // 200 records (5 patients of 36 rows, 10 name corrections, 10 voids) at 1 kbit/s, on a
      // child that has only ever known that link (its batches and timeouts are paced by what
      // it measured), made from a parent that already holds the patients it corrects.
      let before: Mix | null = null;
      slowNodes = await twoNodes({
        bytesPerSecond: size.slowRate,
        beforeClone: async (r) => {
          before = await makeMix(r.pool, { patients: smoke ? 1 : 10, seed: 4 });
        },
      });
      const slow = await makeMix(slowNodes.child.pool, {
        patients: size.slowPatients,
        updates: smoke ? 1 : 10,
        voids: smoke ? 1 : 10,
        earlier: before!.patients,
        seed: 3,
      });
      ctx.log(`syncing ${slow.events.length} records at ${size.slowRate} bytes/s each way`);
      const t0 = Date.now();
      const slowSummary = await slowNodes.service.syncNow();
      const slowSeconds = (Date.now() - t0) / 1000;
      await mustHave(slowNodes.root.pool, slow);
      const slowBytes = slowNodes.proxy.bytes.up + slowNodes.proxy.bytes.down;
      const slowRecords = slow.events.length;
      // The original's 300 s for 200 records, scaled to the records carried here.
      const originalSeconds = (ORIGINAL_200_SECONDS * slowRecords) / 200;

      const figures: BenchFigure[] = [
        compared(
          'wire bytes per record',
          wire / records,
          'B',
          { label: 'SymmetricDS CSV gzipped', value: csv.gzipBytes / records },
          1,
        ),
        // What the envelopes themselves weigh (gzipped XML bodies, both ways), without HTTP.
        compared(
          'exchange bodies per record (no HTTP headers)',
          (summary.bytesUp + summary.bytesDown) / records,
          'B',
          { label: 'SymmetricDS CSV gzipped', value: csv.gzipBytes / records },
        ),
        compared(
          `${slowRecords} records at ${size.slowRate === RATE_1KBIT ? '1 kbit/s' : `${size.slowRate} B/s`}`,
          slowSeconds,
          's',
          { label: 'original module', value: originalSeconds },
          0.25,
        ),
      ];
      return {
        name: 'wire',
        figures,
        notes: [
          `${records} records: ${size.patients} new patients with 30 obs each (${size.patients * 36} rows), ${size.updates} name corrections, ${size.voids} voided obs; ${summary.rounds} exchange(s), ${proxy.bytes.up} bytes up and ${proxy.bytes.down} down, all HTTP included`,
          `the same rows as SymmetricDS CSV: ${csv.csvBytes} bytes, ${csv.gzipBytes} gzipped (payload only, no HTTP)`,
          `slow link: ${slowRecords} records, ${slowBytes} bytes both ways in ${slowSummary.rounds} exchange(s) through a proxy at ${size.slowRate} bytes/s each way`,
        ],
      };
    } finally {
      await nodes.close().catch(() => undefined);
      await slowNodes?.close();
    }
  },
};

/** The parent holds the mix: its new people, and its voids. */
async function mustHave(pool: Parameters<typeof queryRows>[0], mix: Mix): Promise<void> {
  const uuids = mix.patients.map((p) => p.personUuid);
  if (uuids.length) {
    const [r] = await queryRows(
      pool,
      `SELECT COUNT(*) AS n FROM person WHERE uuid IN (${uuids.map(() => '?').join(', ')})`,
      uuids,
    );
    if (Number(r?.n) !== uuids.length) throw new Error('the parent lacks patients it was sent');
  }
}
