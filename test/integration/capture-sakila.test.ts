import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadSampleDb, type TestDb } from '../helpers/db.js';
import { lastSeq, readLog } from '../helpers/log.js';
import { initRoot } from '../helpers/node.js';

/** Sakila: no uuids, enum/set/year/blob columns, and its own triggers writing film_text. */
describe('capture on Sakila', () => {
  let db: TestDb;
  let node: SyncNode;

  beforeAll(async () => {
    db = await loadSampleDb('sakila');
    node = await initRoot(db, 'store');
  });
  afterAll(async () => {
    await node?.close();
    await db?.drop();
  });

  async function changesOf(sql: string, params: unknown[] = []) {
    const before = await lastSeq(db.pool);
    await execute(db.pool, sql, params);
    await node.pickup();
    return readLog(db.pool, before);
  }

  it('logs a film but not the film_text row its own trigger wrote: every node runs that trigger', async () => {
    const log = await changesOf(
      `INSERT INTO film (title, description, release_year, language_id, rating, special_features)
       VALUES ('KIGALI NIGHTS', 'A nurse and a driver', 2006, 1, 'PG-13', 'Trailers,Commentaries')`,
    );
    expect(log.map((e) => [e.tbl, e.op])).toEqual([['film', 'I']]);
    const of = (t: string) => log.find((e) => e.tbl === t)!.payload;
    expect(of('film')).toMatchObject({
      title: 'KIGALI NIGHTS',
      release_year: '2006',
      rating: 'PG-13',
      special_features: 'Trailers,Commentaries',
      rental_rate: '4.99',
    });
  });

  it('logs the changed columns when the film is renamed', async () => {
    const log = await changesOf(
      "UPDATE film SET title = 'BUTARO NIGHTS' WHERE title = 'KIGALI NIGHTS'",
    );
    expect(log.map((e) => [e.tbl, e.op])).toEqual([['film', 'U']]);
    expect(log[0]!.payload).toHaveProperty('title', 'BUTARO NIGHTS');
  });

  it('carries blob bytes exactly', async () => {
    const picture = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x2c, 0x27, 0x5c]);
    const log = await changesOf('UPDATE staff SET picture = ? WHERE staff_id = 1', [picture]);
    expect(log).toHaveLength(1);
    const value = log[0]!.payload!.picture as { b: string };
    expect(Buffer.from(value.b, 'base64').equals(picture)).toBe(true);
  });

  it('logs one entry per row of a multi-row update', async () => {
    const [{ n }] = (await queryRows(db.pool, 'SELECT COUNT(*) AS n FROM film WHERE rating = ?', [
      'NC-17',
    ])) as [{ n: number }];
    const log = await changesOf(
      "UPDATE film SET rental_rate = rental_rate + 1 WHERE rating = 'NC-17'",
    );
    expect(log.filter((e) => e.tbl === 'film')).toHaveLength(Number(n));
    expect(log.every((e) => e.op === 'U' && e.payload!.rental_rate !== undefined)).toBe(true);
  });

  it('logs the delete of the film', async () => {
    const log = await changesOf("DELETE FROM film WHERE title = 'BUTARO NIGHTS'");
    expect(log.map((e) => [e.tbl, e.op])).toEqual([['film', 'D']]);
  });
});
