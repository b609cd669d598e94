import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY, makeMix } from '../../bench/lib/mix.js';
import { createOpenmrsShape } from '../../src/demo/openmrsShape.js';
import { dataColumns, hashesSql, keySql } from '../../src/engine/capture/rowSql.js';
import { CREATED, parseClocks } from '../../src/engine/capture/rowState.js';
import { q } from '../../src/engine/db/ident.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb } from '../helpers/db.js';
import { Tree } from '../helpers/tree.js';

/*
 * New rows applied together get their row state written by the server (issue 11): local key,
 * column hashes and identity as pickup would record them, and every column sent stamped with the
 * change's clock. If any of it were off, the receiver's next pickup would see the rows as changed
 * here and send them back as its own edits.
 */

describe('the row state of new rows applied together', () => {
  let tree: Tree;
  let root: SyncNode;
  let child: SyncNode;

  beforeAll(async () => {
    tree = new Tree();
    const db = await createTestDb('cs_rowstate');
    await createOpenmrsShape(db.pool);
    root = await tree.root(db, 'district');
    child = await tree.clone(root, 'centre');
    await makeMix(child.pool, { patients: 12, seed: 3 });
    await tree.sync(child, root);
  }, 120_000);
  afterAll(async () => tree.close());

  it('matches the rows, carries each change clock, and leaves nothing for pickup', async () => {
    const plans = await root.tablePlans();
    const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');
    const log = new Map<string, string>();
    for (const r of await queryRows(
      root.pool,
      'SELECT tbl, ident, hlc, origin FROM clinicsync_log WHERE origin = ?',
      [child.nodeId],
    ))
      log.set(`${String(r.tbl)} ${String(r.ident)}`, `${String(r.hlc)}:${String(r.origin)}`);
    let checked = 0;
    for (const table of Object.keys(KEY)) {
      const t = plans.get(table)!.table;
      const rows = await queryRows(
        root.pool,
        `SELECT ${keySql(t, 'd')} AS k, HEX(${hashesSql(dataColumns(t), 'd')}) AS h,
                s.lkey, HEX(s.hashes) AS sh, s.ident, HEX(s.ihash) AS ih, HEX(s.khash) AS kh, s.n, s.clocks
           FROM ${q(table)} d JOIN clinicsync_row s ON s.tbl = ? AND s.lkey = ${keySql(t, 'd')}`,
        [table],
      );
      for (const r of rows) {
        const stamp = log.get(`${table} ${String(r.ident)}`);
        if (stamp === undefined) continue; // a row of the clone, not one of the child's new ones
        checked++;
        expect(r.sh).toBe(r.h);
        expect(String(r.kh).toLowerCase()).toBe(md5(String(r.k)));
        expect(String(r.ih).toLowerCase()).toBe(md5(String(r.ident)));
        expect(Number(r.n)).toBe(1);
        const clocks = parseClocks(String(r.clocks));
        expect(clocks[CREATED]).toBe(stamp);
        expect(Object.keys(clocks).length).toBeGreaterThan(2);
        for (const v of Object.values(clocks)) expect(v).toBe(stamp);
      }
    }
    // 12 patients: person, name, patient, identifier, visit, encounter and 30 obs each
    expect(checked).toBeGreaterThanOrEqual(12 * 36);
    // What pickup reads from the rows agrees with the recorded state: nothing is sent back.
    const back = await root.outgoing(child.nodeId);
    expect(back.changes.filter((c) => c.origin === root.nodeId)).toEqual([]);
  });

  it('takes a row already here the ordinary way and the others together', async () => {
    // The same uuid made on both nodes, as a module's metadata with fixed uuids would be.
    const uuids = Array.from({ length: 6 }, (_, i) => `0c5a11ed-0000-4000-8000-00000000000${i}`);
    const insert = (pool: typeof root.pool, uuid: string, gender: string) =>
      execute(pool, "INSERT INTO person (gender, date_created, uuid) VALUES (?, '2026-01-02', ?)", [
        gender,
        uuid,
      ]);
    await insert(root.pool, uuids[3]!, 'F');
    for (const u of uuids) await insert(child.pool, u, 'M');
    await tree.sync(child, root);
    for (const node of [root, child]) {
      const rows = await queryRows(
        node.pool,
        `SELECT uuid, gender FROM person WHERE uuid IN (${uuids.map(() => '?').join(',')}) ORDER BY uuid`,
        uuids,
      );
      // each once; the row made on both took the later edit (the child's) on both nodes
      expect(rows.map((r) => [r.uuid, r.gender])).toEqual(uuids.map((u) => [u, 'M']));
      const [parked] = await queryRows(node.pool, 'SELECT COUNT(*) AS n FROM clinicsync_parked');
      expect(Number(parked!.n)).toBe(0);
    }
    const [states] = await queryRows(
      root.pool,
      `SELECT COUNT(*) AS n FROM clinicsync_row WHERE tbl = 'person' AND ident IN (${uuids.map(() => '?').join(',')})`,
      uuids,
    );
    expect(Number(states!.n)).toBe(uuids.length);
  });
});
