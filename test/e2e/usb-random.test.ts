import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { loadTransferFile } from '../../src/engine/transfer/loadFile.js';
import { exportForParent } from '../../src/engine/transfer/writeFile.js';
import type { SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { duplicateLogEntries } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';
import { addPerson, digests, netChild, serve, usbKey, type NetChild } from '../helpers/usb.js';

/**
 * Issue 7, "Done when": USB trips and network exchanges alternate at random (a fixed seed), with
 * edits on both sides between them: files are carried late, out of order, twice, or lost on the
 * way. A last USB round trip leaves both nodes identical (by the digests `verify` compares) and
 * equal to what each side's own edits say, every change in each log once; the network then finds
 * nothing left to carry.
 *
 * CLINICSYNC_USB_SEEDS (comma-separated) and CLINICSYNC_USB_STEPS run more or longer scenarios.
 */

const SEEDS = (process.env.CLINICSYNC_USB_SEEDS ?? '20261126')
  .split(',')
  .map((s) => Number(s.trim()));
const STEPS = Number(process.env.CLINICSYNC_USB_STEPS ?? 45);

/** A small seeded generator (mulberry32): the same seed, the same scenario. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('USB and network exchanges mixed at random', () => {
  let tree: Tree;
  let district: SyncNode;
  let server: SyncServer;
  let butaro: NetChild;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    district = await tree.root(db, 'district');
    server = await serve(district);
    butaro = await netChild(tree, district, server, 'butaro');
  });
  afterEach(async () => {
    await butaro.close();
    await server.close();
    await tree.close();
  });

  for (const seed of SEEDS) {
    it(`ends with both nodes identical, each change applied once (seed ${seed})`, async () => {
      const child = butaro.node;
      const random = prng(seed);
      const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
      /** person uuid -> gender, or null once deleted; only its creator edits it */
      const expected = new Map<string, string | null>();
      const owner = new Map<string, SyncNode>();
      /** files written and not yet lost: up (butaro's), down (the district's replies) */
      const up: string[] = [];
      const down: string[] = [];
      const trace: string[] = [];
      let made = 0;

      const edit = async (node: SyncNode) => {
        const mine = [...expected].filter(([u, g]) => owner.get(u) === node && g !== null);
        const roll = random();
        if (roll < 0.45 || mine.length === 0) {
          const uuid = `p-${node === child ? 'b' : 'd'}-${made++}`;
          const gender = pick(['F', 'M']);
          await addPerson(node, uuid, gender);
          expected.set(uuid, gender);
          owner.set(uuid, node);
        } else if (roll < 0.75) {
          const [uuid] = pick(mine);
          const gender = pick(['F', 'M', 'U']);
          await execute(node.pool, 'UPDATE person SET gender = ? WHERE uuid = ?', [gender, uuid]);
          expected.set(uuid, gender);
        } else if (roll < 0.88) {
          const [uuid] = pick(mine);
          await execute(node.pool, 'DELETE FROM person WHERE uuid = ?', [uuid]);
          expected.set(uuid, null);
        } else {
          // Both sides edit one shared row: the conflict rules decide, the same on both.
          await execute(node.pool, "UPDATE person SET birthdate = ? WHERE uuid = 'p-admin'", [
            `19${10 + Math.floor(random() * 80)}-01-01`,
          ]);
        }
      };

      for (let step = 0; step < STEPS; step++) {
        const roll = random();
        if (roll < 0.3) {
          const node = random() < 0.5 ? child : district;
          trace.push(`edit ${node === child ? 'butaro' : 'district'}`);
          await edit(node);
        } else if (roll < 0.45) {
          trace.push('network');
          await butaro.sync();
        } else if (roll < 0.6) {
          trace.push('export');
          up.push((await exportForParent(child, usbKey())).file);
        } else if (roll < 0.75 && up.length) {
          // Often the newest file, sometimes an older one carried late.
          const file = random() < 0.6 ? up.at(-1)! : pick(up);
          trace.push(`district loads ${up.indexOf(file)}`);
          const r = await loadTransferFile(district, file);
          down.push(r.replyFile!);
        } else if (roll < 0.9 && down.length) {
          const file = random() < 0.6 ? down.at(-1)! : pick(down);
          trace.push(`butaro loads ${down.indexOf(file)}`);
          await loadTransferFile(child, file);
        } else if (up.length + down.length) {
          const from = random() < 0.5 && up.length ? up : down.length ? down : up;
          trace.push('a key is lost');
          from.splice(Math.floor(random() * from.length), 1);
        }
      }

      // One last USB round trip brings both to the same state, whatever happened before.
      const last = await loadTransferFile(district, (await exportForParent(child, usbKey())).file);
      await loadTransferFile(child, last.replyFile!);

      const context = `seed ${seed}: ${trace.join(', ')}`;
      expect(await digests(child), context).toEqual(await digests(district));
      for (const node of [child, district]) {
        const rows = await queryRows(node.pool, 'SELECT uuid, gender FROM person');
        const here = new Map(rows.map((r) => [String(r.uuid), String(r.gender)]));
        for (const [uuid, gender] of expected) {
          expect(here.get(uuid) ?? null, `${uuid}, ${context}`).toBe(gender);
        }
        expect(await duplicateLogEntries(node), context).toEqual([]);
        expect(await gapsIn(node), context).toEqual([]);
      }
      expect((await child.status()).pendingOut, context).toBe(0);
      expect(await butaro.sync(), context).toMatchObject({ sent: 0, received: 0 });
      expect(made, context).toBeGreaterThan(3);
    });
  }
});

/** Origins whose changes this node's log does not hold as 1..n without a hole. */
async function gapsIn(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(
    node.pool,
    'SELECT origin, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM clinicsync_log GROUP BY origin',
  );
  return rows
    .filter((r) => Number(r.lo) !== 1 || Number(r.hi) !== Number(r.n))
    .map((r) => `${String(r.origin)}: ${String(r.n)} changes, ${String(r.lo)}..${String(r.hi)}`);
}
