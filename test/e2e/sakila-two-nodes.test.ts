import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb } from '../helpers/db.js';
import { diffModel, diffNodes, ExpectedModel, NO_DIFF, readModel } from '../helpers/model.js';
import { insert } from '../helpers/openmrs.js';
import { actorKey, deleteFilm, filmId, filmRow, pairKey, SAKILA_MODEL } from '../helpers/sakila.js';
import { parkedOn } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 3, "Done when", second point: Sakila (no uuid anywhere, so rows created after the root was
 * set up are known through the identity registry) on two nodes, with local ids colliding, updates
 * and deletes on both sides. Sakila's own triggers keep film_text in step with film on every node,
 * so film_text itself is not synced: after sync it must match film on both nodes, no row twice.
 * The end state is checked against an independent model keyed by natural content
 * (test/helpers/sakila.ts).
 */
describe('Sakila on two nodes', () => {
  let tree: Tree;
  let parent: SyncNode;
  let child: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    parent = await tree.root(await loadSampleDb('sakila'), 'store-hq');
    child = await tree.clone(parent, 'store-2');
  });
  afterEach(async () => tree.close());

  /** film_text as Sakila's triggers keep it: exactly film's ids, titles and descriptions. */
  async function filmTextMatchesFilm(node: SyncNode, label: string): Promise<void> {
    const film = await queryRows(
      node.pool,
      'SELECT film_id, title, description FROM film ORDER BY film_id',
    );
    const text = await queryRows(
      node.pool,
      'SELECT film_id, title, description FROM film_text ORDER BY film_id',
    );
    expect.soft(text, `${label}: film_text against film`).toEqual(film);
    const twice = await queryRows(
      node.pool,
      `SELECT 'film' AS t, title, COUNT(*) AS n FROM film GROUP BY title HAVING n > 1
       UNION ALL SELECT 'film_text', title, COUNT(*) FROM film_text GROUP BY title HAVING COUNT(*) > 1`,
    );
    expect.soft(twice, `${label}: titles held twice`).toEqual([]);
  }

  /** Both nodes against the expected model and each other; film_text in step with film. */
  async function expectConverged(expected: ExpectedModel, duplicates: string[]): Promise<void> {
    const p = await readModel(parent.pool, SAKILA_MODEL);
    const c = await readModel(child.pool, SAKILA_MODEL);
    expect.soft(await parkedOn(parent), 'parked on the parent').toEqual([]);
    expect.soft(await parkedOn(child), 'parked on the child').toEqual([]);
    // Sakila has two actors called SUSAN DAVIS; nothing else may share a key.
    expect.soft(p.duplicates, 'keys held twice on the parent').toEqual(duplicates);
    expect.soft(c.duplicates, 'keys held twice on the child').toEqual(duplicates);
    expect.soft(diffModel(p.model, expected.model), 'parent against the model').toEqual(NO_DIFF);
    expect.soft(diffModel(c.model, expected.model), 'child against the model').toEqual(NO_DIFF);
    expect.soft(diffNodes(p.model, c.model), 'parent against child').toEqual([]);
    await filmTextMatchesFilm(parent, 'parent');
    await filmTextMatchesFilm(child, 'child');
  }

  it('films, actors and casts made and changed on both sides converge; film_text follows film', async () => {
    const before = await readModel(parent.pool, SAKILA_MODEL);
    const expected = new ExpectedModel(before.model);

    // --- on the child (store 2)
    const c1 = filmRow({
      title: 'CLINIC DAWN',
      description: 'A Quiet Story of a Nurse',
      length: 95,
    });
    const c2 = filmRow({
      title: 'CLINIC DUSK',
      description: 'A Long Night of a Porter',
      length: 81,
    });
    const cFilm1 = await insert(child.pool, 'film', c1.sql);
    const cFilm2 = await insert(child.pool, 'film', c2.sql);
    const cActor = await insert(child.pool, 'actor', { first_name: 'KOFI', last_name: 'MENSAH' });
    for (const [a, f] of [
      [cActor, cFilm1],
      [cActor, cFilm2],
      [1, cFilm1], // PENELOPE GUINESS, an actor both nodes had from the start
    ])
      await insert(child.pool, 'film_actor', { actor_id: a!, film_id: f! });
    await insert(child.pool, 'film_category', { film_id: cFilm1, category_id: 7 }); // Drama
    await execute(child.pool, 'UPDATE film SET description = ? WHERE film_id = ?', [
      'A Long Night of a Porter, Revised',
      cFilm2,
    ]);
    await execute(child.pool, "UPDATE film SET title = 'AFRICAN EGG REDUX' WHERE film_id = 5");
    await deleteFilm(child.pool, 'ALICE FANTASIA');

    // --- on the parent (headquarters): the same local ids, other rows
    const p1 = filmRow({
      title: 'DISTRICT NOON',
      description: 'A Busy Day of a Driver',
      length: 102,
    });
    const pFilm1 = await insert(parent.pool, 'film', p1.sql);
    const pActor = await insert(parent.pool, 'actor', { first_name: 'AMA', last_name: 'OWUSU' });
    await insert(parent.pool, 'film_actor', { actor_id: pActor, film_id: pFilm1 });
    await insert(parent.pool, 'film_actor', { actor_id: pActor, film_id: 1 }); // ACADEMY DINOSAUR
    await execute(parent.pool, 'UPDATE film SET description = ? WHERE film_id = 10', [
      'Described at headquarters',
    ]);
    await execute(parent.pool, 'DELETE FROM film_actor WHERE actor_id = 10 AND film_id = 1');
    await deleteFilm(parent.pool, 'APOLLO TEEN');
    // The precondition that makes this mean something: both sides chose the same local ids.
    expect([pFilm1, pActor]).toEqual([cFilm1, cActor]);

    // --- what both nodes must hold afterwards
    expected
      .insert('film', 'CLINIC DAWN', c1.model)
      .insert('film', 'CLINIC DUSK', {
        ...c2.model,
        description: 'A Long Night of a Porter, Revised',
      })
      .insert('film', 'DISTRICT NOON', p1.model)
      .insert('actor', actorKey('KOFI', 'MENSAH'), { first_name: 'KOFI', last_name: 'MENSAH' })
      .insert('actor', actorKey('AMA', 'OWUSU'), { first_name: 'AMA', last_name: 'OWUSU' });
    for (const [a, f] of [
      [actorKey('KOFI', 'MENSAH'), 'CLINIC DAWN'],
      [actorKey('KOFI', 'MENSAH'), 'CLINIC DUSK'],
      [actorKey('PENELOPE', 'GUINESS'), 'CLINIC DAWN'],
      [actorKey('AMA', 'OWUSU'), 'DISTRICT NOON'],
      [actorKey('AMA', 'OWUSU'), 'ACADEMY DINOSAUR'],
    ] as const)
      expected.insert('film_actor', pairKey(a, f), { actor_id: a, film_id: f });
    expected.insert('film_category', pairKey('CLINIC DAWN', 'Drama'), {
      film_id: 'CLINIC DAWN',
      category_id: 'Drama',
    });
    // A renamed film is a new key in a model keyed by title; its cast and categories follow it.
    const renamed = (key: string) =>
      key.replace(/(^|\| )AFRICAN EGG($| \|)/, '$1AFRICAN EGG REDUX$2');
    const egg = expected.get('film', 'AFRICAN EGG')!;
    expected.delete('film', 'AFRICAN EGG').insert('film', 'AFRICAN EGG REDUX', {
      ...egg,
      title: 'AFRICAN EGG REDUX',
    });
    for (const t of ['film_actor', 'film_category']) {
      for (const [k, row] of [...expected.model.get(t)!]) {
        if (row.film_id !== 'AFRICAN EGG') continue;
        expected.delete(t, k).insert(t, renamed(k), { ...row, film_id: 'AFRICAN EGG REDUX' });
      }
    }
    expected.update('film', 'ALADDIN CALENDAR', { description: 'Described at headquarters' });
    expected.delete('film_actor', pairKey(actorKey('CHRISTIAN', 'GABLE'), 'ACADEMY DINOSAUR'));
    for (const gone of ['ALICE FANTASIA', 'APOLLO TEEN']) {
      expected.delete('film', gone);
      for (const t of ['film_actor', 'film_category'])
        for (const [k, row] of [...expected.model.get(t)!])
          if (row.film_id === gone) expected.delete(t, k);
    }

    await tree.sync(child, parent);

    await expectConverged(expected, before.duplicates);
    for (const node of [parent, child]) {
      const [n] = await queryRows(
        node.pool,
        'SELECT (SELECT COUNT(*) FROM film) AS film, (SELECT COUNT(*) FROM film_text) AS text',
      );
      // 1000 to start with, three new, two deleted
      expect
        .soft([Number(n!.film), Number(n!.text)], 'film and film_text counts')
        .toEqual([1001, 1001]);
    }
  });

  /**
   * A row made on one node is known on the other by its registry identity: it can be changed
   * there (including a change of a key column, which travels as old identity → new identity) and
   * deleted from either side.
   */
  it('a film made on the child is edited and re-cast on the parent, then deleted on the child', async () => {
    const before = await readModel(parent.pool, SAKILA_MODEL);
    const expected = new ExpectedModel(before.model);
    const f = filmRow({ title: 'ROUND TRIP', description: 'A Journey of a Courier', length: 77 });
    const film = await insert(child.pool, 'film', f.sql);
    const actor = await insert(child.pool, 'actor', { first_name: 'NIA', last_name: 'ADEYEMI' });
    await insert(child.pool, 'film_actor', { actor_id: actor, film_id: film });
    expected
      .insert('film', 'ROUND TRIP', f.model)
      .insert('actor', actorKey('NIA', 'ADEYEMI'), { first_name: 'NIA', last_name: 'ADEYEMI' })
      .insert('film_actor', pairKey(actorKey('NIA', 'ADEYEMI'), 'ROUND TRIP'), {
        actor_id: actorKey('NIA', 'ADEYEMI'),
        film_id: 'ROUND TRIP',
      });
    await tree.sync(child, parent);
    await expectConverged(expected, before.duplicates);

    // On the parent: a new description, the part recast to PENELOPE GUINESS (a key change), and
    // the actor, now in no film, removed.
    const there = await filmId(parent.pool, 'ROUND TRIP');
    await execute(parent.pool, 'UPDATE film SET description = ? WHERE film_id = ?', [
      'A Journey of a Courier, Retold',
      there,
    ]);
    await execute(
      parent.pool,
      `UPDATE film_actor SET actor_id = 1 WHERE film_id = ? AND actor_id =
         (SELECT actor_id FROM actor WHERE first_name = 'NIA' AND last_name = 'ADEYEMI')`,
      [there],
    );
    await execute(
      parent.pool,
      "DELETE FROM actor WHERE first_name = 'NIA' AND last_name = 'ADEYEMI'",
    );
    expected
      .update('film', 'ROUND TRIP', { description: 'A Journey of a Courier, Retold' })
      .delete('film_actor', pairKey(actorKey('NIA', 'ADEYEMI'), 'ROUND TRIP'))
      .insert('film_actor', pairKey(actorKey('PENELOPE', 'GUINESS'), 'ROUND TRIP'), {
        actor_id: actorKey('PENELOPE', 'GUINESS'),
        film_id: 'ROUND TRIP',
      })
      .delete('actor', actorKey('NIA', 'ADEYEMI'));
    await tree.sync(child, parent);
    await expectConverged(expected, before.duplicates);

    // On the child: the film goes, with its cast.
    await deleteFilm(child.pool, 'ROUND TRIP');
    expected
      .delete('film', 'ROUND TRIP')
      .delete('film_actor', pairKey(actorKey('PENELOPE', 'GUINESS'), 'ROUND TRIP'));
    await tree.sync(child, parent);
    await expectConverged(expected, before.duplicates);
  });
});
