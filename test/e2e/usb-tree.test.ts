import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadTransferFile } from '../../src/engine/transfer/loadFile.js';
import { exportForParent } from '../../src/engine/transfer/writeFile.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { duplicateLogEntries } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';
import { addPerson, digests, people, shareSecret, usbKey } from '../helpers/usb.js';

/**
 * Issue 7, item 5: a middle node carries files to and from its own parent and its children.
 *
 *      national            (root)
 *         |
 *      district            (middle: a child of national, the parent of butaro)
 *         |
 *      butaro              (health centre)
 *
 * The district loads butaro's file and writes its reply, writes its own file for national
 * (carrying butaro's changes on), and loads national's reply; the next reply to butaro carries
 * national's changes down. Mixed with network exchanges between national and the district, every
 * change reaches every node once.
 */

describe('USB files through a middle node', () => {
  let tree: Tree;
  let national: SyncNode;
  let district: SyncNode;
  let butaro: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    national = await tree.root(db, 'national');
    district = await tree.clone(national, 'district');
    butaro = await tree.clone(district, 'butaro');
    await shareSecret(national, district);
    await shareSecret(district, butaro);
  });
  afterEach(() => tree.close());

  async function expectAllAgree(): Promise<void> {
    const want = await digests(national);
    expect(await digests(district)).toEqual(want);
    expect(await digests(butaro)).toEqual(want);
    for (const n of [national, district, butaro]) expect(await duplicateLogEntries(n)).toEqual([]);
  }

  it('carries a health centre change up to the root and the root change down, by USB only', async () => {
    await addPerson(butaro, 'p-butaro');
    await addPerson(district, 'p-district', 'M');
    await addPerson(national, 'p-national');

    // butaro -> district, and the reply back.
    const up1 = await exportForParent(butaro, usbKey());
    const atDistrict = await loadTransferFile(district, up1.file);
    expect(atDistrict).toMatchObject({ from: 'butaro', received: 1, sent: 1 });
    await loadTransferFile(butaro, atDistrict.replyFile!);

    // district -> national: its own change and butaro's, carried on.
    const up2 = await exportForParent(district, usbKey());
    expect(up2).toMatchObject({ to: 'national', sent: 2 });
    const atNational = await loadTransferFile(national, up2.file);
    expect(atNational).toMatchObject({ from: 'district', received: 2, sent: 1 });
    expect(await people(national)).toContain('p-butaro:F');
    expect(await loadTransferFile(district, atNational.replyFile!)).toMatchObject({
      from: 'national',
      received: 1,
      replyFile: null,
    });

    // The next trip to butaro brings national's change down, and nothing butaro already has.
    const up3 = await exportForParent(butaro, usbKey());
    expect(up3.sent).toBe(0);
    const again = await loadTransferFile(district, up3.file);
    expect(again).toMatchObject({ received: 0, sent: 1 });
    await loadTransferFile(butaro, again.replyFile!);
    expect(await people(butaro)).toContain('p-national:F');
    await expectAllAgree();
  });

  it('mixes USB below the district with the network above it; nothing arrives twice', async () => {
    await addPerson(butaro, 'p-mix-butaro');
    const up1 = await exportForParent(butaro, usbKey());
    const r1 = await loadTransferFile(district, up1.file);

    // The district's link to national works: butaro's change goes up by network.
    await addPerson(national, 'p-mix-national', 'M');
    await tree.sync(district, national);
    expect(await people(national)).toContain('p-mix-butaro:F');

    // A stale district file for national, written before that exchange, changes nothing there.
    await execute(district.pool, "UPDATE person SET gender = 'M' WHERE uuid = 'p-mix-butaro'");
    const stale = await exportForParent(district, usbKey());
    await tree.sync(district, national);
    expect(await loadTransferFile(national, stale.file)).toMatchObject({
      received: 0,
      alreadyThere: 1,
    });

    // butaro loads its old reply late, then a fresh one: national's change arrives once.
    await loadTransferFile(butaro, r1.replyFile!);
    const up2 = await exportForParent(butaro, usbKey());
    const r2 = await loadTransferFile(district, up2.file);
    expect(await loadTransferFile(butaro, r2.replyFile!)).toMatchObject({ received: 2 });
    expect(await people(butaro)).toEqual(
      expect.arrayContaining(['p-mix-butaro:M', 'p-mix-national:M']),
    );
    await expectAllAgree();
  });
});
