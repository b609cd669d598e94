import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadTransferFile } from '../../src/engine/transfer/loadFile.js';
import { exportForParent } from '../../src/engine/transfer/writeFile.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';
import { addPerson, nodeState, people, shareSecret, usbKey } from '../helpers/usb.js';

/**
 * Issue 7, "Done when": a tampered byte, a truncated file and a file meant for another node are
 * each refused with one plain sentence, and the database is left exactly as it was.
 */

describe('USB files that must be refused', () => {
  let tree: Tree;
  let district: SyncNode;
  let butaro: SyncNode;
  let kigali: SyncNode;
  /** butaro's file for the district, with two new people in it */
  let file: string;
  let bytes: Buffer;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    district = await tree.root(db, 'district');
    butaro = await tree.clone(district, 'butaro');
    kigali = await tree.clone(district, 'kigali');
    await shareSecret(district, butaro);
    await shareSecret(district, kigali);
    await addPerson(butaro, 'p-sealed-1');
    await addPerson(butaro, 'p-sealed-2', 'M');
    file = (await exportForParent(butaro, usbKey())).file;
    bytes = fs.readFileSync(file);
  });
  afterEach(() => tree.close());

  /** Loads `content` as a file on `node`: the sentence it is refused with; nothing changed. */
  async function refusal(node: SyncNode, content: Buffer, name = path.basename(file)) {
    const where = path.join(usbKey(), name);
    fs.writeFileSync(where, content);
    const before = await nodeState(node);
    let message = '';
    try {
      await loadTransferFile(node, where);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message, 'the file should have been refused').not.toBe('');
    expect(await nodeState(node)).toEqual(before);
    // Nothing was written for a refused file: no reply beside it.
    expect(fs.readdirSync(path.dirname(where))).toEqual([name]);
    return message;
  }

  function flipped(at: number): Buffer {
    const b = Buffer.from(bytes);
    b[at] = b[at]! ^ 0x01;
    return b;
  }

  it('refuses a file with one byte changed, in the header, the sealed batches or the seal', async () => {
    const created = bytes.indexOf('"created":"') + '"created":"'.length + 3;
    const to = bytes.indexOf('"to":{"node":"') + '"to":{"node":"'.length;
    const middle = Math.floor((bytes.indexOf('"}') + bytes.length) / 2);
    const tag = bytes.length - 8 - 3;
    // A changed recipient is caught before the seal is even tried.
    const otherHex = Buffer.from(bytes);
    otherHex[to] = bytes[to] === 0x30 ? 0x31 : 0x30;
    expect(await refusal(district, otherHex)).toBe(
      'This file was written by butaro for another node named district, not for this one; nothing was applied. Write a new file on butaro.',
    );
    for (const at of [created, middle, tag]) {
      const m = await refusal(district, flipped(at));
      expect(m, `byte ${at}`).toMatch(
        /^The file clinicsync-butaro-to-district-\d{8}T\d{4}Z\.csync does not open with the key this computer shares with butaro: it was changed or damaged after it was written, or written before the two were paired again\. Nothing was applied; write a new file on butaro\.$/,
      );
    }
    // The name of the recipient changed to this node's, the file still does not open.
    expect(await refusal(kigali, retarget(bytes, district.nodeId, kigali.nodeId))).toMatch(
      /does not open with the key this computer shares with butaro|neither this computer's main server/,
    );
    // The untouched file is fine.
    expect(await loadTransferFile(district, file)).toMatchObject({ received: 2 });
  });

  it('refuses a file cut short, and one that is no transfer file at all', async () => {
    for (const keep of [bytes.length - 1, Math.floor(bytes.length / 2), 20, 5]) {
      const m = await refusal(district, bytes.subarray(0, keep));
      expect(m, `first ${keep} bytes`).toMatch(
        keep === 5
          ? /is not a ClinicSync transfer file/
          : /^The file clinicsync-.*\.csync is incomplete: it was cut short, perhaps when the USB key was pulled out too early\. Nothing was applied; copy it again, or write a new one\.$/,
      );
    }
    expect(await refusal(district, Buffer.from('name,gender\nAlice,F\n'), 'export.csync')).toBe(
      'The file export.csync is not a ClinicSync transfer file (or its beginning is damaged); nothing was applied.',
    );
  });

  it('refuses a file meant for another node, and one this node wrote itself', async () => {
    expect(await refusal(kigali, bytes)).toBe(
      'This file was written by butaro for district, not for this computer (kigali); take it to district. Nothing was applied.',
    );
    expect(await refusal(butaro, bytes)).toBe(
      'This file was written here, on butaro, for district; take it to district and load it there. Nothing was applied.',
    );
    // The district's reply, carried to the wrong health centre.
    const reply = (await loadTransferFile(district, file)).replyFile!;
    expect(await refusal(kigali, fs.readFileSync(reply), path.basename(reply))).toBe(
      'This file was written by district for butaro, not for this computer (kigali); take it to butaro. Nothing was applied.',
    );
    expect(await people(kigali)).not.toContain('p-sealed-1:F');
  });

  it('refuses a file from a clinic this computer holds no key for', async () => {
    await tree.nodes[0]!.pool.query('UPDATE clinicsync_peer SET secret = NULL WHERE name = ?', [
      'butaro',
    ]);
    expect(await refusal(district, bytes)).toBe(
      'This computer holds no key shared with butaro, so it cannot seal or open files for it; butaro must pair with this computer again.',
    );
  });

  it('refuses a file written by an earlier installation of the clinic', async () => {
    await execute(district.pool, 'UPDATE clinicsync_peer SET incarnation = ? WHERE node_id = ?', [
      'deadbeef',
      butaro.nodeId,
    ]);
    expect(await refusal(district, bytes)).toBe(
      'This file was written by an earlier installation of butaro (its database was restored or cloned again since); nothing was applied. Write a new file on butaro.',
    );
  });

  it('refuses a file from a clinic that must be cloned again, and any file while the disk is nearly full', async () => {
    district.settings.storage.minFreeMegabytes = 1e12;
    expect(await refusal(district, bytes)).toMatch(
      /^The disk holding .* has [0-9,]+ MB free, less than the [0-9,]+ MB set in storage\.minFreeMegabytes; .* Nothing of the file was applied\.$/,
    );
    district.settings.storage.minFreeMegabytes = 1;
    await execute(district.pool, 'INSERT INTO clinicsync_meta (k, v) VALUES (?, ?)', [
      `reclone_${butaro.nodeId}`,
      new Date().toISOString(),
    ]);
    expect(await refusal(district, bytes)).toMatch(
      /^This clinic was out of contact with the main server for more than \d+ days, .* Nothing of the file was applied\.$/,
    );
  });

  it('applies the file but says so when the reply cannot be written; loading it again writes it', async () => {
    const gone = path.join(usbKey(), 'unplugged');
    await expect(loadTransferFile(district, file, { replyDir: gone })).rejects.toThrow(
      /^The file from butaro was loaded \(2 changes new here\), but its reply could not be written: The folder .*unplugged does not exist; plug in the USB key, or choose another folder\. Load the same file again to write the reply\.$/,
    );
    expect(await people(district)).toContain('p-sealed-2:M');
    const again = await loadTransferFile(district, file);
    expect(again).toMatchObject({ received: 0, alreadyThere: 2 });
    expect(fs.existsSync(again.replyFile!)).toBe(true);
  });
});

/** The file with every occurrence of one node id in its header replaced by another. */
function retarget(b: Buffer, from: string, to: string): Buffer {
  return Buffer.from(b.toString('latin1').split(from).join(to), 'latin1');
}
