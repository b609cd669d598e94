import { randomUUID } from 'node:crypto';
import { execute, queryRows, type Pool } from '../../src/engine/db/pool.js';
import { runClinicSync } from '../lib/proc.js';
import { serverEnv } from '../lib/server.js';
import { isSmoke } from '../lib/size.js';
import { twoNodes } from '../lib/twoNodes.js';
import type { Bench } from '../types.js';

/*
 * Issue 11, figure 4: a single new record, from the child's edit to visible on the parent, with
 * `sync` over a fast link (loopback HTTP). The engine's figure is what `clinic-sync sync` runs
 * (the child's NodeService over its ParentClient), timed from just before the INSERT on the child
 * to the row being read back on the parent; the median of several tries is the figure. Then the
 * same with the `clinic-sync sync` command as its own process, start-up included.
 */

export const bench: Bench = {
  name: 'latency',
  description: 'one new record from child edit to visible on the parent with sync',
  async run(ctx) {
    const tries = isSmoke(ctx.env) ? 2 : 7;
    const nodes = await twoNodes();
    try {
      const { child, root, service } = nodes;
      // A first sync, so the child's first-time costs (plans, connections) are not counted.
      await service.syncNow();
      const engine: number[] = [];
      for (let i = 0; i < tries; i++) {
        const t0 = performance.now();
        const uuid = await newPerson(child.pool);
        await service.syncNow();
        await mustSee(root.pool, uuid);
        engine.push(performance.now() - t0);
      }

      // The command: the engine in-process gives way to a `clinic-sync sync` process.
      await nodes.client.close();
      await child.close();
      const childDb = nodes.tree.dbs.find((d) => d.name === child.db.database)!;
      const cli: number[] = [];
      for (let i = 0; i < (isSmoke(ctx.env) ? 1 : 3); i++) {
        const t0 = performance.now();
        const uuid = await newPerson(childDb.pool);
        const run = runClinicSync(['--home', child.home.dir, 'sync'], serverEnv(ctx.env));
        const done = await run.done;
        if (done.code !== 0) {
          throw new Error(`clinic-sync sync failed (exit ${done.code}): ${run.err.join(' ')}`);
        }
        await mustSee(root.pool, uuid);
        cli.push(performance.now() - t0);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const figure = median(engine) / 1000;
      return {
        name: 'latency',
        figures: [
          {
            label: 'edit to visible on the parent (sync, median)',
            value: figure,
            unit: 's',
            target: '< 1 s',
            met: figure < 1,
          },
          {
            label: 'the same with a `clinic-sync sync` process (median)',
            value: median(cli) / 1000,
            unit: 's',
          },
        ],
        notes: [
          `${tries} tries in the engine: ${engine.map((ms) => ms.toFixed(0)).join(', ')} ms; ${cli.length} with the command: ${cli.map((ms) => ms.toFixed(0)).join(', ')} ms (Node and TypeScript start-up included)`,
        ],
      };
    } finally {
      await nodes.close();
    }
  },
};

async function newPerson(pool: Pool): Promise<string> {
  const uuid = randomUUID();
  await execute(
    pool,
    "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('M', 1, '2026-11-26 12:00:00', ?)",
    [uuid],
  );
  return uuid;
}

async function mustSee(pool: Pool, uuid: string): Promise<void> {
  const rows = await queryRows(pool, 'SELECT 1 FROM person WHERE uuid = ?', [uuid]);
  if (!rows.length) throw new Error('the new record is not on the parent after the sync');
}
