import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../src/engine/errors.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import type { Envelope } from '../../src/engine/protocol/types.js';
import { loadTransferFile } from '../../src/engine/transfer/loadFile.js';
import { exportForParent, writeTransferFile } from '../../src/engine/transfer/writeFile.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { duplicateLogEntries } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';
import { addPerson, digests, shareSecret, usbKey } from '../helpers/usb.js';

/**
 * Issue 7: a file holds everything not acknowledged, in batch-sized envelopes, and is applied one
 * batch per transaction however large; a key too small for everything carries what fits, and the
 * next file carries the rest.
 */

describe('USB files larger than a batch', () => {
  let tree: Tree;
  let district: SyncNode;
  let butaro: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    district = await tree.root(db, 'district');
    butaro = await tree.clone(district, 'butaro');
    await shareSecret(district, butaro);
    butaro.settings.sync.batchRecords = 7;
    district.settings.sync.batchRecords = 7;
    for (let i = 0; i < 60; i++) await addPerson(butaro, `p-many-${i}`, i % 2 ? 'F' : 'M');
  });
  afterEach(() => tree.close());

  /** Records the size of each batch a node applies (one transaction each). */
  function batchesAppliedBy(node: SyncNode): number[] {
    const sizes: number[] = [];
    const incoming = node.incoming.bind(node);
    node.incoming = (env: Envelope, opts?: { fromFile?: boolean }) => {
      sizes.push(env.changes.length);
      return incoming(env, opts);
    };
    return sizes;
  }

  it('writes all 60 changes past the batch size, and applies them 7 at a time', async () => {
    const out = await exportForParent(butaro, usbKey());
    expect(out).toMatchObject({ sent: 60, complete: true });
    const sizes = batchesAppliedBy(district);
    const r = await loadTransferFile(district, out.file);
    expect(r).toMatchObject({ received: 60, alreadyThere: 0 });
    expect(sizes).toEqual([7, 7, 7, 7, 7, 7, 7, 7, 4]);
    await loadTransferFile(butaro, r.replyFile!);
    expect(await digests(butaro)).toEqual(await digests(district));
  });

  it('keeps the batches applied before a failure; loading the file again applies the rest once', async () => {
    const out = await exportForParent(butaro, usbKey());
    const incoming = district.incoming.bind(district);
    let calls = 0;
    district.incoming = (env: Envelope, opts?: { fromFile?: boolean }) => {
      if (++calls === 3) {
        return Promise.reject(new SyncError('database', 'The database stopped answering.'));
      }
      return incoming(env, opts);
    };
    await expect(loadTransferFile(district, out.file)).rejects.toThrow(
      'The file from butaro was loaded only in part (14 changes new here) when this failed: The database stopped answering. Load the same file again once that is put right; what is already here is skipped.',
    );
    district.incoming = incoming;
    expect(await loadTransferFile(district, out.file)).toMatchObject({
      received: 46,
      alreadyThere: 14,
    });
    expect(await duplicateLogEntries(district)).toEqual([]);
  });

  it('carries what a small key holds; the next file carries the rest, nothing twice', async () => {
    const parent = (await butaro.peers()).find((p) => p.relation === 'parent')!;
    const part = await writeTransferFile(butaro, parent, usbKey(), { maxBytes: 2_000 });
    expect(part.complete).toBe(false);
    expect(part.sent).toBeGreaterThan(0);
    expect(part.sent).toBeLessThan(60);
    expect(part.bytes).toBeLessThanOrEqual(2_000);
    const r = await loadTransferFile(district, part.file);
    expect(r.received).toBe(part.sent);
    await loadTransferFile(butaro, r.replyFile!);

    const rest = await exportForParent(butaro, usbKey());
    expect(rest).toMatchObject({ sent: 60 - part.sent, complete: true });
    expect(await loadTransferFile(district, rest.file)).toMatchObject({
      received: 60 - part.sent,
      alreadyThere: 0,
    });
    expect(await duplicateLogEntries(district)).toEqual([]);
    expect(await digests(butaro)).toEqual(await digests(district));

    const tiny = usbKey();
    await expect(writeTransferFile(butaro, parent, tiny, { maxBytes: 100 })).rejects.toThrow(
      /^There is not enough free space in .* for the file; free some space/,
    );
    // Not even a partial file is left behind.
    expect(fs.readdirSync(tiny)).toEqual([]);
  });
});
