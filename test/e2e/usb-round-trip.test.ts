import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { findTransferFiles } from '../../src/engine/transfer/findFiles.js';
import { loadTransferFile } from '../../src/engine/transfer/loadFile.js';
import { exportForParent } from '../../src/engine/transfer/writeFile.js';
import type { SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { duplicateLogEntries } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';
import {
  addPerson,
  backupOf,
  digests,
  netChild,
  nodeState,
  people,
  serve,
  usbKey,
  type NetChild,
} from '../helpers/usb.js';

/**
 * Issue 7, "Done when": a health centre ("butaro") and its district, paired over HTTP. The USB
 * round trip (export → import and reply → import) carries changes both ways; a network exchange
 * afterwards moves nothing twice; a file loaded twice changes nothing the second time; files
 * loaded out of order are applied where they can be, and refused with the reason where not.
 */

describe('USB round trip between a health centre and its district', () => {
  let tree: Tree;
  let district: SyncNode;
  let server: SyncServer;
  let butaro: NetChild;
  let child: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    district = await tree.root(db, 'district');
    server = await serve(district);
    butaro = await netChild(tree, district, server, 'butaro');
    child = butaro.node;
  });
  afterEach(async () => {
    await butaro.close();
    await server.close();
    await tree.close();
  });

  it('carries changes both ways, acknowledged; a network exchange then moves nothing twice', async () => {
    await addPerson(child, 'p-butaro-1');
    await addPerson(child, 'p-butaro-2', 'M');
    await addPerson(district, 'p-district-1', 'M');
    await execute(district.pool, "UPDATE global_property SET property_value = 'fr'");

    const key = usbKey();
    const out = await exportForParent(child, key);
    expect(out).toMatchObject({ to: 'district', sent: 2, complete: true });
    expect(path.basename(out.file)).toMatch(/^clinicsync-butaro-to-district-\d{8}T\d{4}Z\.csync$/);
    expect(fs.statSync(out.file).size).toBe(out.bytes);
    // Sealed: nothing of the rows shows in the file.
    expect(fs.readFileSync(out.file).includes('p-butaro-1')).toBe(false);
    // Nothing counts as delivered until the district acknowledges it.
    expect((await child.status()).pendingOut).toBe(2);

    const atDistrict = await loadTransferFile(district, out.file);
    expect(atDistrict).toMatchObject({
      from: 'butaro',
      received: 2,
      alreadyThere: 0,
      parked: 0,
      sent: 2,
      replyComplete: true,
    });
    expect(path.basename(atDistrict.replyFile!)).toMatch(
      /^clinicsync-district-to-butaro-\d{8}T\d{4}Z\.csync$/,
    );
    expect(path.dirname(atDistrict.replyFile!)).toBe(key);
    expect(await people(district)).toContain('p-butaro-2:M');

    const atButaro = await loadTransferFile(child, atDistrict.replyFile!);
    expect(atButaro).toMatchObject({
      from: 'district',
      received: 2,
      alreadyThere: 0,
      sent: 0,
      replyFile: null,
    });
    expect(await people(child)).toContain('p-district-1:M');
    expect(await digests(child)).toEqual(await digests(district));
    const status = await child.status();
    expect(status).toMatchObject({ pendingOut: 0, pendingIn: 0, lastError: null });
    expect(status.lastSuccessAt).not.toBeNull();

    // The network now finds nothing to carry either way, and nothing arrived twice.
    const logs = [await count(child), await count(district)];
    expect(await butaro.sync()).toMatchObject({ sent: 0, received: 0 });
    expect([await count(child), await count(district)]).toEqual(logs);
    expect(await duplicateLogEntries(child)).toEqual([]);
    expect(await duplicateLogEntries(district)).toEqual([]);

    // And the other way round: what the network carried, the next file does not carry again.
    await addPerson(child, 'p-butaro-3');
    expect((await butaro.sync()).sent).toBe(1);
    const again = await exportForParent(child, usbKey());
    expect(again.sent).toBe(0);
    const back = await loadTransferFile(district, again.file);
    expect(back).toMatchObject({ received: 0, alreadyThere: 0, sent: 0 });
    expect(await digests(child)).toEqual(await digests(district));
  });

  it('changes nothing when the same file, or the same reply, is loaded twice', async () => {
    await addPerson(child, 'p-twice-1');
    await addPerson(district, 'p-twice-2');
    const out = await exportForParent(child, usbKey());
    const first = await loadTransferFile(district, out.file);
    expect(first.received).toBe(1);

    const before = await nodeState(district);
    const second = await loadTransferFile(district, out.file);
    expect(second).toMatchObject({ received: 0, alreadyThere: 1 });
    expect(await nodeState(district)).toEqual(before);

    await loadTransferFile(child, first.replyFile!);
    const childBefore = await nodeState(child);
    expect(await loadTransferFile(child, first.replyFile!)).toMatchObject({
      received: 0,
      alreadyThere: 1,
    });
    expect(await nodeState(child)).toEqual(childBefore);
    expect(await people(child)).toEqual(await people(district));
  });

  it('applies files loaded out of order where it can, and ignores acknowledgements that go back', async () => {
    await addPerson(child, 'p-early');
    const early = await exportForParent(child, usbKey());
    await addPerson(child, 'p-late');
    await execute(child.pool, "UPDATE person SET gender = 'M' WHERE uuid = 'p-early'");
    // Nothing was acknowledged in between: the later file carries everything again.
    const late = await exportForParent(child, usbKey());
    expect([early.sent, late.sent]).toEqual([1, 3]);

    await addPerson(district, 'p-district-a');
    const replyToLate = await loadTransferFile(district, late.file);
    expect(replyToLate).toMatchObject({ received: 3, alreadyThere: 0, sent: 1 });
    await addPerson(district, 'p-district-b');
    const replyToEarly = await loadTransferFile(district, early.file);
    expect(replyToEarly).toMatchObject({ received: 0, alreadyThere: 1, sent: 2 });
    expect(await people(district)).toContain('p-early:M');

    // The newer reply first, then the older one: its older acknowledgement is ignored.
    expect(await loadTransferFile(child, replyToEarly.replyFile!)).toMatchObject({
      received: 2,
    });
    const acked = await peerVv(child);
    expect(await loadTransferFile(child, replyToLate.replyFile!)).toMatchObject({
      received: 0,
      alreadyThere: 1,
    });
    expect(await peerVv(child)).toEqual(acked);
    expect((await child.status()).pendingOut).toBe(0);
    expect(await digests(child)).toEqual(await digests(district));
    expect(await butaro.sync()).toMatchObject({ sent: 0, received: 0 });
  });

  it('refuses, with the reason, a file that follows changes this computer does not hold; the earlier file first, then it applies', async () => {
    // The district's database as it was before the round trip: a backup restored later.
    const backup = await backupOf(tree, district);
    await addPerson(child, 'p-round-1');
    const first = await exportForParent(child, usbKey());
    const reply = await loadTransferFile(district, first.file);
    await loadTransferFile(child, reply.replyFile!);
    await addPerson(child, 'p-round-2');
    const second = await exportForParent(child, usbKey());
    expect(second.sent).toBe(1);

    const restored = await backup.open();
    const before = await nodeState(restored);
    await expect(loadTransferFile(restored, second.file)).rejects.toThrow(
      /^This file continues from changes this computer does not have yet \(of butaro, it holds up to number 0; the file goes on from 2\); nothing was applied\. Load the earlier file from butaro first/,
    );
    expect(await nodeState(restored)).toEqual(before);
    // Loaded in the order they were written, both apply.
    expect(await loadTransferFile(restored, first.file)).toMatchObject({ received: 1 });
    expect(await loadTransferFile(restored, second.file)).toMatchObject({
      received: 1,
      alreadyThere: 0,
    });
    expect(await people(restored)).toEqual(expect.arrayContaining(['p-round-1:F', 'p-round-2:F']));
  });

  it('lists the files on a key with what each is for', async () => {
    const key = usbKey();
    await addPerson(child, 'p-list');
    const out = await exportForParent(child, key);
    fs.writeFileSync(path.join(key, 'notes.csync'), 'not a transfer file');
    fs.writeFileSync(path.join(key, 'readme.txt'), 'ignored');

    const atChild = await findTransferFiles(key, child.nodeId);
    expect(atChild.map((f) => [f.name, f.use])).toEqual(
      expect.arrayContaining([
        [path.basename(out.file), 'carry'],
        ['notes.csync', 'unreadable'],
      ]),
    );
    expect(atChild).toHaveLength(2);
    const atDistrict = await findTransferFiles(key, district.nodeId);
    const mine = atDistrict.find((f) => f.use === 'load')!;
    expect(mine).toMatchObject({
      path: out.file,
      bytes: out.bytes,
      from: { nodeId: child.nodeId, name: 'butaro' },
      to: { nodeId: district.nodeId, name: 'district' },
    });
    expect(Date.now() - Date.parse(mine.createdAt!)).toBeLessThan(60_000);

    const reply = await loadTransferFile(district, out.file);
    const listed = await findTransferFiles(key, child.nodeId);
    // Newest first: the reply, written after the file it answers.
    expect(listed[0]).toMatchObject({ path: reply.replyFile, use: 'load' });
  });
});

async function count(node: SyncNode): Promise<number> {
  const [r] = await queryRows(node.pool, 'SELECT COUNT(*) AS n FROM clinicsync_log');
  return Number(r!.n);
}

async function peerVv(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(
    node.pool,
    'SELECT peer, origin, seq FROM clinicsync_peer_vv ORDER BY peer, origin',
  );
  return rows.map((r) => `${String(r.peer)} ${String(r.origin)} ${String(r.seq)}`);
}
