import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb } from '../helpers/db.js';
import { diffModel, ExpectedModel, NO_DIFF, readModel, type ModelSpec } from '../helpers/model.js';
import { createPatient, idOf, insert, OMRS, OPENMRS_MODEL } from '../helpers/openmrs.js';
import { actorKey, deleteFilm, filmRow, pairKey, SAKILA_MODEL } from '../helpers/sakila.js';
import { count, duplicateLogEntries, parkedOn } from '../helpers/state.js';
import { overTheWire, Tree } from '../helpers/tree.js';

/**
 * Issue 3, "Done when", third point: the same change delivered in two differently built
 * envelopes, and again after a kill between the apply's commit and the acknowledgement, changes
 * nothing the second time.
 */

/** Everything a second delivery must leave as it was: the rows and ClinicSync's bookkeeping. */
interface Snapshot {
  model: Awaited<ReturnType<typeof readModel>>;
  counts: Record<string, number>;
  log: number;
  vv: Record<string, string>;
  conflicts: number;
}

async function snapshot(node: SyncNode, spec: ModelSpec): Promise<Snapshot> {
  const counts: Record<string, number> = {};
  for (const t of [...spec.tables, ...(spec.tables.includes('film') ? ['film_text'] : [])])
    counts[t] = await count(node, `SELECT COUNT(*) FROM \`${t}\``);
  const vv = await queryRows(node.pool, 'SELECT origin, seq FROM clinicsync_vv ORDER BY origin');
  return {
    model: await readModel(node.pool, spec),
    counts,
    log: await count(node, 'SELECT COUNT(*) FROM clinicsync_log'),
    vv: Object.fromEntries(vv.map((r) => [String(r.origin), String(r.seq)])),
    conflicts: await count(node, 'SELECT COUNT(*) FROM clinicsync_conflict'),
  };
}

/** The origin's changes are in the receiver's log exactly once each: seq 1..n, no gap, no twin. */
async function expectLoggedOnce(receiver: SyncNode, origin: SyncNode): Promise<void> {
  expect(await duplicateLogEntries(receiver)).toEqual([]);
  const [r] = await queryRows(
    receiver.pool,
    'SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d, MIN(seq) AS lo, MAX(seq) AS hi FROM clinicsync_log WHERE origin = ?',
    [origin.nodeId],
  );
  const [own] = await queryRows(
    origin.pool,
    'SELECT COUNT(*) AS n FROM clinicsync_log WHERE origin = ?',
    [origin.nodeId],
  );
  const n = Number(own!.n);
  expect(n).toBeGreaterThan(0);
  expect([Number(r!.n), Number(r!.d), Number(r!.lo), Number(r!.hi)]).toEqual([n, n, 1, n]);
}

describe('exactly once, Sakila (identities from the registry: a second insert would be a second row)', () => {
  let tree: Tree;
  let parent: SyncNode;
  let child: SyncNode;
  let expected: ExpectedModel;
  let duplicatesAtStart: string[];

  beforeEach(async () => {
    tree = new Tree();
    parent = await tree.root(await loadSampleDb('sakila'), 'store-hq');
    child = await tree.clone(parent, 'store-2');
    const start = await readModel(parent.pool, SAKILA_MODEL);
    expected = new ExpectedModel(start.model);
    duplicatesAtStart = start.duplicates;

    // Changes on the child: new rows, an update of an old row, a delete.
    const films = ['ONCE ONLY', 'TWICE SHY', 'THRICE TOLD'].map((title, i) =>
      filmRow({ title, description: `A Story numbered ${i}`, length: 90 + i }),
    );
    const actor = await insert(child.pool, 'actor', { first_name: 'ZURI', last_name: 'BAKO' });
    expected.insert('actor', actorKey('ZURI', 'BAKO'), { first_name: 'ZURI', last_name: 'BAKO' });
    for (const f of films) {
      const id = await insert(child.pool, 'film', f.sql);
      await insert(child.pool, 'film_actor', { actor_id: actor, film_id: id });
      expected
        .insert('film', f.model.title!, f.model)
        .insert('film_actor', pairKey(actorKey('ZURI', 'BAKO'), f.model.title!), {
          actor_id: actorKey('ZURI', 'BAKO'),
          film_id: f.model.title!,
        });
    }
    await execute(child.pool, "UPDATE film SET description = 'Seen once' WHERE film_id = 3");
    expected.update('film', 'ADAPTATION HOLES', { description: 'Seen once' });
    await deleteFilm(child.pool, 'ARGONAUTS TOWN');
    expected.delete('film', 'ARGONAUTS TOWN');
    for (const t of ['film_actor', 'film_category'])
      for (const [k, row] of [...expected.model.get(t)!])
        if (row.film_id === 'ARGONAUTS TOWN') expected.delete(t, k);
  });
  afterEach(async () => tree.close());

  async function expectParentAsModelled(): Promise<void> {
    const m = await readModel(parent.pool, SAKILA_MODEL);
    expect.soft(m.duplicates, 'keys held twice').toEqual(duplicatesAtStart);
    expect.soft(diffModel(m.model, expected.model), 'parent against the model').toEqual(NO_DIFF);
  }

  it('an envelope built again before the answer came is a no-op the second time', async () => {
    // Two envelopes carrying the same changes: the child has had no answer in between.
    const first = overTheWire(await child.outgoing(parent.nodeId));
    const again = overTheWire(await child.outgoing(parent.nodeId));
    expect(first.changes.length).toBeGreaterThan(5);
    expect(again.changes.map((c) => `${c.origin}:${c.seq}`)).toEqual(
      first.changes.map((c) => `${c.origin}:${c.seq}`),
    );

    const r1 = await parent.answer(first);
    expect(r1.result.applied).toBe(first.changes.length);
    const after1 = await snapshot(parent, SAKILA_MODEL);

    const r2 = await parent.answer(again);
    expect(r2.result).toMatchObject({ applied: 0, duplicates: again.changes.length, parked: 0 });
    expect(await snapshot(parent, SAKILA_MODEL)).toEqual(after1);

    await expectParentAsModelled();
    await expectLoggedOnce(parent, child);
  });

  it('the same changes in envelopes of 1 and of 200 records are applied once', async () => {
    // Built from the same log, cut differently: one record, then everything.
    child.settings.sync.batchRecords = 1;
    const one = overTheWire(await child.outgoing(parent.nodeId));
    child.settings.sync.batchRecords = 2;
    const two = overTheWire(await child.outgoing(parent.nodeId));
    child.settings.sync.batchRecords = 200;
    const all = overTheWire(await child.outgoing(parent.nodeId));
    expect([one.changes.length, one.more, two.changes.length, all.more]).toEqual([
      1,
      true,
      2,
      false,
    ]);
    const total = all.changes.length;

    // The small one first, then the whole, then the middle one: each change lands once.
    expect((await parent.answer(one)).result).toMatchObject({ applied: 1, duplicates: 0 });
    expect((await parent.answer(all)).result).toMatchObject({
      applied: total - 1,
      duplicates: 1,
    });
    const after = await snapshot(parent, SAKILA_MODEL);
    expect((await parent.answer(two)).result).toMatchObject({ applied: 0, duplicates: 2 });
    expect((await parent.answer(all)).result).toMatchObject({ applied: 0, duplicates: total });
    expect(await snapshot(parent, SAKILA_MODEL)).toEqual(after);

    await expectParentAsModelled();
    await expectLoggedOnce(parent, child);
    // And the child, told at last, has nothing more to send.
    await tree.sync(child, parent);
    expect(await snapshot(parent, SAKILA_MODEL)).toEqual(after);
    expect(await parkedOn(parent)).toEqual([]);
  });
});

describe('exactly once across a kill between commit and acknowledgement, OpenMRS', () => {
  let tree: Tree;
  let parent: SyncNode;
  let child: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    parent = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    child = await tree.clone(parent, 'clinic');
  });
  afterEach(async () => tree.close());

  it('a lost answer makes both sides resend, and nothing is applied twice', async () => {
    const expected = new ExpectedModel((await readModel(parent.pool, OPENMRS_MODEL)).model);
    // A new patient on the child; on the parent, an edit of an existing person for the child.
    const p = await createPatient(child.pool, {
      given: 'Faraji',
      family: 'Mbeki',
      gender: 'M',
      birthdate: '2001-01-21',
      identifier: '300-2',
      at: '2026-03-07 11:00:00',
      weightKg: '58.25',
      favoriteFood: 'beans',
    });
    for (const r of p.rows) expected.insert(r.table, r.key, r.row);
    await execute(
      parent.pool,
      "UPDATE person SET birthdate = '1976-08-26', changed_by = ? WHERE uuid = ?",
      [await idOf(parent.pool, 'users', OMRS.admin), OMRS.collet],
    );
    expected.update('person', OMRS.collet, { birthdate: '1976-08-26', changed_by: OMRS.admin });

    // The parent applies and commits; the answer (its acknowledgement and its batch) is lost.
    const lost = await tree.exchange(child, parent, { loseReply: true });
    expect(lost.up.applied).toBe(lost.sent);
    expect(lost.sent).toBeGreaterThanOrEqual(p.rows.length);
    const parentAfter = await snapshot(parent, OPENMRS_MODEL);
    const childBefore = await snapshot(child, OPENMRS_MODEL);

    // Lost twice in a row: the child resends everything, the parent recognises all of it.
    const lostAgain = await tree.exchange(child, parent, { loseReply: true });
    expect(lostAgain.sent).toBe(lost.sent);
    expect(lostAgain.up).toMatchObject({ applied: 0, duplicates: lost.sent, parked: 0 });
    expect(await snapshot(parent, OPENMRS_MODEL)).toEqual(parentAfter);
    expect(await snapshot(child, OPENMRS_MODEL)).toEqual(childBefore);

    // Now the answer gets through: the child's resend is a no-op, the parent's batch lands once.
    const through = await tree.exchange(child, parent);
    expect(through.up).toMatchObject({ applied: 0, duplicates: lost.sent });
    expect(through.down).toMatchObject({ applied: through.received, duplicates: 0, parked: 0 });
    expect(through.received).toBeGreaterThan(0);
    expect(await snapshot(parent, OPENMRS_MODEL)).toEqual(parentAfter);
    await tree.sync(child, parent);
    expect(await snapshot(parent, OPENMRS_MODEL)).toEqual(parentAfter);

    for (const node of [parent, child]) {
      const m = await readModel(node.pool, OPENMRS_MODEL);
      expect.soft(m.duplicates).toEqual([]);
      expect.soft(diffModel(m.model, expected.model)).toEqual(NO_DIFF);
      expect.soft(await parkedOn(node)).toEqual([]);
    }
    await expectLoggedOnce(parent, child);
    await expectLoggedOnce(child, parent);
  });
});
