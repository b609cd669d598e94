import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hlcMillis } from '../../src/engine/clock/hlc.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadTransferFile } from '../../src/engine/transfer/loadFile.js';
import { exportForParent } from '../../src/engine/transfer/writeFile.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';
import { digests, shareSecret, usbKey } from '../helpers/usb.js';
import { DAY, writeWithClockAhead } from '../helpers/clock.js';

/**
 * DESIGN §6 over a USB key: a health centre laptop whose clock runs three days fast. Its file's
 * time says nothing of its clock when the district loads it, days later perhaps; the district
 * judges its changes with the offset it last measured over the network, tells the laptop the
 * effective clocks in the reply, and a later real edit at the district still wins everywhere.
 */
describe('a USB file from a laptop whose clock is three days ahead', () => {
  const tree = new Tree();
  let district: SyncNode;
  let fast: SyncNode;

  beforeAll(async () => {
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    await execute(
      db.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-clock')",
    );
    district = await tree.root(db, 'district');
    fast = await tree.clone(district, 'fast-centre');
    await shareSecret(district, fast);
    fast.now = () => Date.now() + 3 * DAY;
  });
  afterAll(() => tree.close());

  const onFastLaptop = (sql: string) => writeWithClockAhead(fast.pool, 3, sql);

  const clockOf = async (node: SyncNode) => {
    const [r] = await queryRows(
      node.pool,
      'SELECT hlc FROM clinicsync_log WHERE origin = ? ORDER BY seq DESC LIMIT 1',
      [fast.nodeId],
    );
    return BigInt(String(r!.hlc));
  };

  it('loses to a later real edit, and both logs end with the same effective clock', async () => {
    // One network exchange measured the laptop's clock while the link still worked.
    await tree.sync(fast, district);
    expect((await district.status()).clockWarning).toMatch(/fast-centre is 3 days ahead/);

    await onFastLaptop("UPDATE person SET gender = 'fast' WHERE uuid = 'p-clock'");
    const file = await exportForParent(fast, usbKey());
    expect(hlcMillis(await clockOf(fast))).toBeGreaterThan(Date.now() + 2 * DAY);
    await new Promise((r) => setTimeout(r, 1500));
    await execute(district.pool, "UPDATE person SET gender = 'real-later' WHERE uuid = 'p-clock'");

    const reply = await loadTransferFile(district, file.file);
    const effective = await clockOf(district);
    expect(hlcMillis(effective)).toBeLessThan(Date.now());
    await loadTransferFile(fast, reply.replyFile!);
    // The laptop learned the verdict on its own change from the reply.
    expect(await clockOf(fast)).toBe(effective);
    for (const node of [district, fast]) {
      const [r] = await queryRows(node.pool, "SELECT gender FROM person WHERE uuid = 'p-clock'");
      expect(r).toEqual({ gender: 'real-later' });
    }
    expect(await digests(fast)).toEqual(await digests(district));
    // Loading files leaves the measured offset, and its warning, as the network left them.
    expect((await district.status()).clockWarning).toMatch(/fast-centre is 3 days ahead/);
  });
});
