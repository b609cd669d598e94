import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listConflicts } from '../../src/engine/apply/conflicts.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { compareRows, LocalRows } from '../../src/engine/node/verify.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import {
  diffModel,
  diffNodes,
  ExpectedModel,
  NO_DIFF,
  readModel,
  type ModelSpec,
} from '../helpers/model.js';
import { duplicateLogEntries, parkedOn } from '../helpers/state.js';
import { overTheWire, Tree } from '../helpers/tree.js';

/**
 * Issue 5, items 1 and 2, and the "Done when" point "a change from a grandchild arriving at a
 * sibling branch exactly once": a tree three levels deep,
 *
 *            root
 *           /    \
 *       middle   sibling
 *       /    \
 *    leafA   leafB
 *
 * in one process (test/helpers/tree.ts: every envelope through the XML codec). A change made at
 * leaf A reaches every other node once, by one path, and never comes back to leaf A; a row edited
 * at leaf A, at the middle node it passes through, and elsewhere resolves per column, last writer
 * by clock, the same on all five nodes, whatever order the exchanges happen in.
 */

const MODEL: ModelSpec = {
  tables: ['users', 'person', 'patient', 'role', 'user_role', 'encounter', 'obs'],
};

interface Delivery {
  from: string;
  to: string;
  origin: string;
  seq: string;
}

describe('a tree three levels deep', () => {
  let tree: Tree;
  let root: SyncNode;
  let middle: SyncNode;
  let sibling: SyncNode;
  let leafA: SyncNode;
  let leafB: SyncNode;
  let all: SyncNode[];
  let names: Map<string, string>;
  /** every change carried by an exchange, in either direction */
  let deliveries: Delivery[];

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb('cs_tree3');
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'root');
    middle = await tree.clone(root, 'middle');
    sibling = await tree.clone(root, 'sibling');
    leafA = await tree.clone(middle, 'leafA');
    leafB = await tree.clone(middle, 'leafB');
    all = [root, middle, sibling, leafA, leafB];
    names = new Map(
      [
        [root, 'root'],
        [middle, 'middle'],
        [sibling, 'sibling'],
        [leafA, 'leafA'],
        [leafB, 'leafB'],
      ].map(([n, name]) => [(n as SyncNode).nodeId, name as string]),
    );
    deliveries = [];
  });
  afterEach(async () => tree.close());

  /** One exchange like Tree.exchange, noting every change it carries. */
  async function exchange(child: SyncNode, parent: SyncNode): Promise<number> {
    const env = overTheWire(await child.outgoing(parent.nodeId));
    for (const c of env.changes) {
      deliveries.push({ from: child.nodeId, to: parent.nodeId, origin: c.origin, seq: c.seq });
    }
    const { reply } = await parent.answer(env);
    const back = overTheWire(reply);
    for (const c of back.changes) {
      deliveries.push({ from: parent.nodeId, to: child.nodeId, origin: c.origin, seq: c.seq });
    }
    await child.incoming(back);
    return env.changes.length + back.changes.length;
  }

  /** Exchanges child ↔ parent until neither has anything left for the other. */
  async function sync(child: SyncNode, parent: SyncNode): Promise<number> {
    let moved = 0;
    for (let rounds = 0; ; rounds++) {
      const n = await exchange(child, parent);
      moved += n;
      if (n === 0) return moved;
      if (rounds > 100) throw new Error('sync did not settle');
    }
  }

  const EDGES = (): [SyncNode, SyncNode][] => [
    [leafA, middle],
    [leafB, middle],
    [middle, root],
    [sibling, root],
  ];

  /** Every edge, again and again, until a whole pass moves nothing. */
  async function untilQuiet(): Promise<void> {
    for (let pass = 0; pass < 20; pass++) {
      let moved = 0;
      for (const [c, p] of EDGES()) moved += await sync(c, p);
      if (moved === 0) return;
    }
    throw new Error('the tree did not settle');
  }

  /** `verify` on every edge, in process: each child's synced rows against its parent's. */
  async function verifyEdges(): Promise<void> {
    for (const [c, p] of EDGES()) {
      const r = await compareRows(await LocalRows.of(c), await LocalRows.of(p));
      expect
        .soft(r.tables, `verify ${names.get(c.nodeId)} against ${names.get(p.nodeId)}`)
        .toEqual([]);
      expect.soft(r.compared).toBe(9);
    }
  }

  async function countOn(node: SyncNode, sql: string, params: unknown[] = []): Promise<number> {
    const [r] = await queryRows(node.pool, sql, params);
    return Number(Object.values(r!)[0]);
  }

  it('a change from a grandchild reaches the sibling branch exactly once and never comes back', async () => {
    // Leaf A registers a patient with a visit and an observation, corrects it, and grants a role.
    await execute(
      leafA.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-06-01', 'p-leafA')",
    );
    await execute(
      leafA.pool,
      "INSERT INTO patient (patient_id, creator) SELECT person_id, 1 FROM person WHERE uuid = 'p-leafA'",
    );
    await execute(
      leafA.pool,
      "INSERT INTO encounter (patient_id, encounter_datetime, uuid) SELECT person_id, '2026-06-01 09:00:00', 'e-leafA' FROM person WHERE uuid = 'p-leafA'",
    );
    await execute(
      leafA.pool,
      "INSERT INTO obs (encounter_id, value_numeric, uuid) SELECT encounter_id, 38.5, 'o-leafA' FROM encounter WHERE uuid = 'e-leafA'",
    );
    await execute(
      leafA.pool,
      "INSERT INTO users (username, person_id, creator, uuid) SELECT 'nurse-a', person_id, 1, 'u-leafA' FROM person WHERE uuid = 'p-leafA'",
    );
    await execute(
      leafA.pool,
      "INSERT INTO user_role (user_id, role) SELECT user_id, 'Provider' FROM users WHERE uuid = 'u-leafA'",
    );
    // picked up apart, so the corrections travel as updates of their own
    await leafA.pickup();
    await execute(leafA.pool, "UPDATE person SET birthdate = '1990-06-01' WHERE uuid = 'p-leafA'");
    await execute(leafA.pool, "UPDATE obs SET value_numeric = 38.7 WHERE uuid = 'o-leafA'");
    await leafA.pickup();
    const own = await countOn(leafA, 'SELECT COUNT(*) FROM clinicsync_log WHERE origin = ?', [
      leafA.nodeId,
    ]);
    expect(own).toBe(8);

    await untilQuiet();
    // and once more: nothing moves, nothing is sent back
    for (const [c, p] of EDGES()) expect(await sync(c, p), `${names.get(c.nodeId)}`).toBe(0);

    // The rows: once on every node.
    for (const n of all) {
      const who = names.get(n.nodeId)!;
      expect.soft(await parkedOn(n), `parked on ${who}`).toEqual([]);
      for (const [table, uuid] of [
        ['person', 'p-leafA'],
        ['encounter', 'e-leafA'],
        ['obs', 'o-leafA'],
        ['users', 'u-leafA'],
      ] as const) {
        expect
          .soft(
            await countOn(n, `SELECT COUNT(*) FROM ${table} WHERE uuid = ?`, [uuid]),
            `${table} on ${who}`,
          )
          .toBe(1);
      }
      expect
        .soft(
          await countOn(
            n,
            "SELECT COUNT(*) FROM user_role ur JOIN users u ON u.user_id = ur.user_id WHERE u.uuid = 'u-leafA' AND ur.role = 'Provider'",
          ),
          `user_role on ${who}`,
        )
        .toBe(1);
    }

    // The log: leaf A's changes once per (origin, seq) on every node, seq 1..n, each received
    // from the neighbour on the one path from leaf A; at leaf A, its own entries with src NULL.
    const cameFrom = new Map<SyncNode, SyncNode | null>([
      [leafA, null],
      [middle, leafA],
      [leafB, middle],
      [root, middle],
      [sibling, root],
    ]);
    for (const [n, src] of cameFrom) {
      const who = names.get(n.nodeId)!;
      expect.soft(await duplicateLogEntries(n), `duplicates on ${who}`).toEqual([]);
      const rows = await queryRows(
        n.pool,
        'SELECT seq, src FROM clinicsync_log WHERE origin = ? ORDER BY seq',
        [leafA.nodeId],
      );
      expect
        .soft(
          rows.map((r) => Number(r.seq)),
          `leaf A's sequence on ${who}`,
        )
        .toEqual(Array.from({ length: own }, (_, i) => i + 1));
      expect
        .soft(
          [...new Set(rows.map((r) => (r.src == null ? null : names.get(String(r.src)))))],
          `where leaf A's changes came from, on ${who}`,
        )
        .toEqual([src === null ? null : names.get(src.nodeId)]);
    }
    // Leaf A holds nothing but its own entries (nobody else changed anything).
    expect(await countOn(leafA, 'SELECT COUNT(*) FROM clinicsync_log')).toBe(own);

    // On the wire: each of leaf A's changes carried to each other node exactly once, and never
    // to leaf A, nor back to the neighbour it came from.
    const ofLeafA = deliveries.filter((d) => d.origin === leafA.nodeId);
    expect(ofLeafA.filter((d) => d.to === leafA.nodeId)).toEqual([]);
    const perNode = new Map<string, number>();
    for (const d of ofLeafA) {
      const k = `${names.get(d.to)} ${d.seq}`;
      perNode.set(k, (perNode.get(k) ?? 0) + 1);
    }
    const expected = new Map<string, number>();
    for (const n of ['middle', 'leafB', 'root', 'sibling']) {
      for (let s = 1; s <= own; s++) expected.set(`${n} ${s}`, 1);
    }
    expect(perNode).toEqual(expected);
    const edges = new Set(ofLeafA.map((d) => `${names.get(d.from)}→${names.get(d.to)}`));
    expect([...edges].sort()).toEqual([
      'leafA→middle',
      'middle→leafB',
      'middle→root',
      'root→sibling',
    ]);

    // And every node holds the same rows.
    const first = (await readModel(root.pool, MODEL)).model;
    for (const n of all.slice(1)) {
      expect
        .soft(
          diffNodes(first, (await readModel(n.pool, MODEL)).model),
          `root against ${names.get(n.nodeId)}`,
        )
        .toEqual([]);
    }
    await verifyEdges();
  });

  /*
   * One row, edited at four nodes between exchanges (stamps in this order, 60 ms apart):
   *   t0 leaf B   gender 'B'
   *   t1 leaf A   gender 'A', birthdate 2001-01-01
   *   t2 middle   gender 'M'                 (before leaf A's edit reached it)
   *   t3 sibling  birthdate 2003-03-03
   * Per column, the latest clock wins everywhere: gender 'M', birthdate 2003-03-03; and an edit of
   * another column (root: voided, t4) survives beside them.
   */
  const ORDERS: [string, (n: Record<string, SyncNode>) => [SyncNode, SyncNode][]][] = [
    [
      'leaf A reaches the middle node first',
      (n) => [
        [n.leafA!, n.middle!],
        [n.middle!, n.root!],
        [n.sibling!, n.root!],
        [n.leafB!, n.middle!],
      ],
    ],
    [
      'the middle node passes its own edit up before leaf A’s arrives',
      (n) => [
        [n.sibling!, n.root!],
        [n.middle!, n.root!],
        [n.leafB!, n.middle!],
        [n.leafA!, n.middle!],
        [n.middle!, n.root!],
      ],
    ],
  ];

  it.each(ORDERS)(
    'edits of one row passing through a middle node that edited it too resolve the same everywhere (%s)',
    async (_label, order) => {
      await execute(
        root.pool,
        "INSERT INTO person (gender, birthdate, creator, date_created, uuid) VALUES ('F', '1980-01-01', 1, '2026-06-02', 'p-shared')",
      );
      await untilQuiet();
      const expected = new ExpectedModel((await readModel(root.pool, MODEL)).model);
      for (const n of all) {
        expect(await countOn(n, "SELECT COUNT(*) FROM person WHERE uuid = 'p-shared'")).toBe(1);
      }

      const set = async (n: SyncNode, assignments: string) => {
        await execute(n.pool, `UPDATE person SET ${assignments} WHERE uuid = 'p-shared'`);
        await n.pickup();
        await sleep(60);
      };
      await set(leafB, "gender = 'B'");
      await set(leafA, "gender = 'A', birthdate = '2001-01-01'");
      await set(middle, "gender = 'M'");
      await set(sibling, "birthdate = '2003-03-03'");
      await set(root, 'voided = 1');
      expected.update('person', 'p-shared', {
        gender: 'M',
        birthdate: '2003-03-03',
        voided: '1',
      });

      for (const [c, p] of order({ root, middle, sibling, leafA, leafB })) await sync(c, p);
      await untilQuiet();

      const models = new Map<string, Awaited<ReturnType<typeof readModel>>['model']>();
      for (const n of all) {
        const who = names.get(n.nodeId)!;
        const m = (await readModel(n.pool, MODEL)).model;
        models.set(who, m);
        expect.soft(await parkedOn(n), `parked on ${who}`).toEqual([]);
        expect.soft(await duplicateLogEntries(n), `duplicates on ${who}`).toEqual([]);
        expect.soft(diffModel(m, expected.model), `${who} against the model`).toEqual(NO_DIFF);
      }
      for (const [who, m] of models) {
        expect.soft(diffNodes(models.get('root')!, m), `root against ${who}`).toEqual([]);
      }
      await verifyEdges();
      // The middle node turned leaf A's and leaf B's genders away for its own later one, and
      // kept them for review.
      const turnedAway = (await listConflicts(middle.pool))
        .filter((c) => c.table === 'person' && c.identity === 'p-shared')
        .map((c) => [
          c.columns,
          c.winner,
          c.loser,
          names.get(c.winnerOrigin),
          names.get(c.loserOrigin),
        ]);
      expect(turnedAway).toContainEqual([
        ['gender'],
        { gender: 'M' },
        { gender: 'A' },
        'middle',
        'leafA',
      ]);
      expect(turnedAway).toContainEqual([
        ['gender'],
        { gender: 'M' },
        { gender: 'B' },
        'middle',
        'leafB',
      ]);
    },
  );
});
