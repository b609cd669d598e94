import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { hlcMillis } from '../../src/engine/clock/hlc.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';
import { DAY, writeWithClockAhead } from '../helpers/clock.js';

/**
 * A clinic laptop whose clock runs three days fast (DESIGN §6): its edit must not beat a later real
 * edit anywhere, every node ends the same, and both ends of the link warn about the clock.
 */
describe('a child whose clock is three days ahead', () => {
  const tree = new Tree();
  let root: SyncNode;
  let fast: SyncNode;
  let sibling: SyncNode;

  beforeAll(async () => {
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    await execute(
      db.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-1'), ('F', 1, '2026-01-01', 'p-2')",
    );
    root = await tree.root(db, 'district');
    fast = await tree.clone(root, 'fast-centre');
    sibling = await tree.clone(root, 'sibling-centre');
    fast.now = () => Date.now() + 3 * DAY;
  });
  afterAll(async () => tree.close());

  const onFastLaptop = (sql: string) => writeWithClockAhead(fast.pool, 3, sql);

  const gender = async (node: SyncNode, uuid: string) =>
    String(
      (await queryRows(node.pool, 'SELECT gender FROM person WHERE uuid = ?', [uuid]))[0]!.gender,
    );

  it('loses to a later real edit on every node, and keeps an edit nobody else made', async () => {
    await onFastLaptop("UPDATE person SET gender = 'fast' WHERE uuid = 'p-1'");
    await onFastLaptop("UPDATE person SET gender = 'only-fast' WHERE uuid = 'p-2'");
    await fast.pickup();
    const [stamped] = await queryRows(
      fast.pool,
      'SELECT MAX(hlc) AS h FROM clinicsync_log WHERE origin = ?',
      [fast.nodeId],
    );
    expect(hlcMillis(BigInt(String(stamped!.h)))).toBeGreaterThan(Date.now() + 2 * DAY);

    // The parent estimates the laptop's offset from the envelope's time, so the effective clock
    // is late by the request's transit time: the real edit comes well after that (a loaded CI
    // machine can take a second between building the request and reading it).
    await new Promise((r) => setTimeout(r, 1500));
    await execute(root.pool, "UPDATE person SET gender = 'real-later' WHERE uuid = 'p-1'");

    for (let i = 0; i < 2; i++) {
      await tree.sync(fast, root);
      await tree.sync(sibling, root);
    }
    for (const node of [root, fast, sibling]) {
      expect(await gender(node, 'p-1')).toBe('real-later');
      expect(await gender(node, 'p-2')).toBe('only-fast');
    }
    // judged once, by the parent: the effective clock is the same in every log, and not in the future
    const clocks = await Promise.all(
      [root, fast, sibling].map(async (n) =>
        (
          await queryRows(
            n.pool,
            'SELECT seq, hlc FROM clinicsync_log WHERE origin = ? ORDER BY seq',
            [fast.nodeId],
          )
        ).map((r) => String(r.hlc)),
      ),
    );
    expect(clocks[1]).toEqual(clocks[0]);
    expect(clocks[2]).toEqual(clocks[0]);
    for (const h of clocks[0]!) expect(hlcMillis(BigInt(h))).toBeLessThanOrEqual(Date.now());
  });

  it('warns on the parent and on the fast laptop, naming the node and the offset', async () => {
    expect((await root.status()).clockWarning).toMatch(/fast-centre is 3 days ahead/);
    expect((await fast.status()).clockWarning).toMatch(
      /This computer's clock is 3 days ahead of the main server's \(district\)/,
    );
    expect((await sibling.status()).clockWarning).toBeNull();
  });
});
