import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { NodeService } from '../../src/engine/node/service.js';
import { ParentClient } from '../../src/engine/transport/client.js';
import {
  startSyncServer,
  type ServerEvent,
  type SyncServer,
} from '../../src/engine/transport/server.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, pairChild } from '../helpers/http.js';
import { Tree } from '../helpers/tree.js';

const DAY = 86_400_000;

async function people(node: SyncNode): Promise<string[]> {
  const rows = await queryRows(node.pool, 'SELECT uuid, gender FROM person ORDER BY uuid');
  return rows.map((r) => `${String(r.uuid)}:${String(r.gender)}`);
}

async function addPerson(node: SyncNode, uuid: string, gender = 'F'): Promise<void> {
  await execute(
    node.pool,
    'INSERT INTO person (gender, creator, date_created, uuid) VALUES (?, 1, ?, ?)',
    [gender, '2026-01-01', uuid],
  );
}

describe('exchanges over HTTP', () => {
  let tree: Tree;
  let root: SyncNode;
  let server: SyncServer;
  const events: ServerEvent[] = [];
  const clients: ParentClient[] = [];

  beforeEach(async () => {
    tree = new Tree();
    events.length = 0;
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
    server = await startSyncServer({
      node: root,
      host: '127.0.0.1',
      port: 0,
      log: (e) => events.push(e),
    });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await server.close();
    await tree.close();
  });

  async function joinedChild(
    name: string,
    opts: { now?: () => number; compression?: boolean } = {},
  ) {
    const { node } = await cloneDatabase(tree, root, name, server.url);
    const pairing = await pairChild(node, root, server.url, opts);
    await pairing.close();
    const client = await ParentClient.forNode(node, opts.now ? { now: opts.now } : {});
    clients.push(client);
    return { node, client, service: new NodeService(node, client) };
  }

  it('moves changes both ways until quiet, gzip or not, counting the bytes', async () => {
    for (const compression of [true, false]) {
      const { node, client, service } = await joinedChild(`centre-${compression}`, {
        compression,
      });
      expect(client.url).toBe(server.url);
      await addPerson(node, `p-child-${compression}`);
      await addPerson(root, `p-root-${compression}`, 'M');
      const s = await service.syncNow();
      expect(s.sent).toBeGreaterThanOrEqual(1);
      expect(s.received).toBeGreaterThanOrEqual(1);
      expect(s.bytesUp).toBeGreaterThan(0);
      expect(s.bytesDown).toBeGreaterThan(0);
      expect(await people(node)).toEqual(await people(root));
      const st = await node.status();
      expect(st.pendingOut).toBe(0);
      expect(st.lastSuccessAt).not.toBeNull();
    }
    // The log says what happened, never what was carried.
    expect(events.some((e) => e.message.startsWith('POST /v1/exchange 200'))).toBe(true);
    expect(JSON.stringify(events)).not.toMatch(/p-child|p-root/);
  });

  it('still exchanges when the child clock is three days off: it learns the parent time', async () => {
    for (const skew of [-3 * DAY, 3 * DAY]) {
      const now = () => Date.now() + skew;
      const { node, client, service } = await joinedChild(
        `skewed${skew > 0 ? 'ahead' : 'behind'}`,
        {
          now,
        },
      );
      // A new process knows no offset yet: the first request is refused for its time, retried.
      expect(client.clockOffsetMs).toBe(0);
      await addPerson(node, `p-skew-${skew}`);
      const s = await service.syncNow();
      expect(s.sent).toBeGreaterThanOrEqual(1);
      expect(Math.abs(client.clockOffsetMs + skew)).toBeLessThan(60_000);
      expect(await people(root)).toContain(`p-skew-${skew}:F`);
      expect(events.some((e) => e.status === 401 && /15 minutes/.test(e.message))).toBe(true);
    }
  });

  it('serves three children exchanging at the same time; all converge', async () => {
    const kids = [];
    for (const name of ['north', 'south', 'east']) kids.push(await joinedChild(name));
    await addPerson(root, 'p-root', 'M');
    for (const [i, k] of kids.entries()) {
      for (let j = 0; j < 30; j++) await addPerson(k.node, `p-${i}-${j}`, j % 2 ? 'F' : 'M');
    }
    // The same person edited on every node between exchanges: one value wins everywhere.
    for (const [i, k] of kids.entries()) {
      await execute(k.node.pool, "UPDATE person SET gender = ? WHERE uuid = 'p-admin'", [`G${i}`]);
    }
    await Promise.all(kids.map((k) => k.service.syncNow()));
    // Another round carries what one child sent to the others.
    await Promise.all(kids.map((k) => k.service.syncNow()));
    const expected = await people(root);
    expect(expected).toHaveLength(2 + 90);
    for (const k of kids) expect(await people(k.node)).toEqual(expected);
    for (const k of kids) expect((await k.node.status()).pendingOut).toBe(0);
    const children = (await root.status()).children;
    expect(children.map((c) => c.name).sort()).toEqual(['east', 'north', 'south']);
  });

  it('answers a child one protocol version behind in its own version', async () => {
    const { node, client } = await joinedChild('older');
    await addPerson(node, 'p-older-child');
    await addPerson(root, 'p-older-parent', 'M');
    // What a child still on protocol v1 sends: the same envelope, written as v1 (gzip).
    const env = { ...(await node.outgoing(root.nodeId)), version: 1 };
    const { reply } = await client.exchange(env);
    expect(reply.version).toBe(1);
    expect(reply.changes.some((c) => c.ident === 'p-older-parent')).toBe(true);
    const [n] = await queryRows(
      root.pool,
      "SELECT COUNT(*) AS n FROM person WHERE uuid = 'p-older-child'",
    );
    expect(Number(n!.n)).toBe(1);
  });

  it('serializes two exchanges of the same child sent at once', async () => {
    const { node, client } = await joinedChild('twice');
    await addPerson(node, 'p-twice');
    const env = await node.outgoing(root.nodeId);
    const [a, b] = await Promise.all([client.exchange(env), client.exchange(env)]);
    expect(a.reply.to).toBe(node.nodeId);
    expect(b.reply.to).toBe(node.nodeId);
    const [n] = await queryRows(
      root.pool,
      "SELECT COUNT(*) AS n FROM person WHERE uuid = 'p-twice'",
    );
    expect(Number(n!.n)).toBe(1);
  });
});
