import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { SyncError } from '../../src/engine/errors.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { ParentClient, readParentSecret } from '../../src/engine/transport/client.js';
import {
  createPairingCode,
  normalizeCode,
  pairingKey,
  pairingProof,
} from '../../src/engine/transport/pairing.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, rawPost } from '../helpers/http.js';
import { Tree } from '../helpers/tree.js';

const CODE_SHAPE = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;

async function children(parent: SyncNode) {
  return queryRows(
    parent.pool,
    "SELECT node_id, name, incarnation, secret FROM clinicsync_peer WHERE relation = 'child'",
  );
}

async function codes(parent: SyncNode) {
  return queryRows(parent.pool, 'SELECT used_at, used_by FROM clinicsync_pairing');
}

async function refusal(p: Promise<unknown>): Promise<SyncError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SyncError);
  return e as SyncError;
}

describe('pairing over HTTP', () => {
  let tree: Tree;
  let root: SyncNode;
  let child: SyncNode;
  let server: SyncServer;
  let client: ParentClient;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
    server = await startSyncServer({ node: root, host: '127.0.0.1', port: 0 });
    child = (await cloneDatabase(tree, root, 'centre', server.url)).node;
    client = new ParentClient({ url: server.url, timeoutSeconds: 30 });
  });
  afterEach(async () => {
    await client.close();
    await server.close();
    await tree.close();
  });

  const me = () => ({ name: 'centre', nodeId: child.nodeId, incarnation: child.incarnation });

  it('makes readable one-time codes of 60 bits, kept only as a hash', async () => {
    const { code, expiresAt } = await createPairingCode(root.pool, 60);
    expect(code).toMatch(CODE_SHAPE);
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(59 * 60_000);
    const [row] = await queryRows(root.pool, 'SELECT code_hash FROM clinicsync_pairing');
    expect((row!.code_hash as Buffer).equals(await pairingKey(code, root.nodeId))).toBe(true);
    expect((row!.code_hash as Buffer).toString('latin1')).not.toContain(code.replace(/-/g, ''));
    // What a person might type instead.
    expect(normalizeCode(code.toLowerCase().replace(/-/g, ' '))).toBe(code.replace(/-/g, ''));
    expect(normalizeCode('K7Q2-M9XD-4HRO')).toBe('K7Q2M9XD4HR0');
    expect(normalizeCode('K7Q2-M9XD-4HR')).toBeNull();
  });

  it('tells who the parent is on GET /v1/hello, with its clock', async () => {
    const hello = await client.hello();
    expect(hello).toMatchObject({
      service: 'clinicsync',
      nodeId: root.nodeId,
      name: 'district',
      incarnation: root.incarnation,
      protocol: 2,
      protocols: [2, 1],
    });
  });

  it('pairs once: the child gets its secret, the parent a child; the code is then used up', async () => {
    const { code } = await createPairingCode(root.pool, 60);
    const result = await client.pair(code, me());
    expect(result.parent).toEqual({
      nodeId: root.nodeId,
      name: 'district',
      incarnation: root.incarnation,
    });
    expect(result.secret).toHaveLength(32);
    const rows = await children(root);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      node_id: child.nodeId,
      name: 'centre',
      incarnation: child.incarnation,
    });
    expect((rows[0]!.secret as Buffer).equals(result.secret)).toBe(true);
    expect(await codes(root)).toEqual([
      expect.objectContaining({ used_by: child.nodeId, used_at: expect.any(String) }),
    ]);

    // Used up: a second clinic with the same code is refused and nothing is made.
    const again = await refusal(
      new ParentClient({ url: server.url }).pair(code, {
        name: 'other',
        nodeId: 'ab'.repeat(8),
        incarnation: '12345678',
      }),
    );
    expect(again.kind).toBe('protocol');
    expect(again.message).toMatch(/already been used/);
    expect(await children(root)).toHaveLength(1);
  });

  it('sends the secret only encrypted, and the client stores nothing itself', async () => {
    const { code } = await createPairingCode(root.pool, 60);
    const hello = await client.hello();
    const key = await pairingKey(code, hello.nodeId);
    const body = Buffer.from(JSON.stringify(me()));
    const r = await rawPost(`${server.url}/v1/pair`, body, {
      'content-type': 'application/json',
      'x-clinicsync-proof': pairingProof(key, body),
    });
    expect(r.status).toBe(200);
    const [row] = await children(root);
    const secret = row!.secret as Buffer;
    for (const enc of ['hex', 'base64', 'base64url', 'latin1'] as const) {
      expect(r.text).not.toContain(secret.toString(enc));
    }
    expect(readParentSecret(child.home)).toBeNull();
  });

  it('refuses a wrong code with 401 and makes nothing', async () => {
    await createPairingCode(root.pool, 60);
    const e = await refusal(client.pair('AAAA-BBBB-CCCC', me()));
    expect(e.kind).toBe('protocol');
    expect(e.message).toMatch(/^The pairing code is wrong/);
    expect(await children(root)).toHaveLength(0);
    expect((await codes(root))[0]!.used_at).toBeNull();

    // The same over raw HTTP: the status is 401, with the parent's clock on it.
    const body = Buffer.from(JSON.stringify(me()));
    const key = await pairingKey('AAAA-BBBB-CCCC', root.nodeId);
    const r = await rawPost(`${server.url}/v1/pair`, body, {
      'x-clinicsync-proof': pairingProof(key, body),
    });
    expect(r.status).toBe(401);
    expect(r.headers['x-clinicsync-time']).toMatch(/^\d+$/);
    const none = await rawPost(`${server.url}/v1/pair`, body);
    expect(none.status).toBe(401);
    expect(await children(root)).toHaveLength(0);
  });

  it('refuses an expired code with 401 and makes nothing', async () => {
    const { code } = await createPairingCode(root.pool, 1);
    await execute(
      root.pool,
      'UPDATE clinicsync_pairing SET expires_at = UTC_TIMESTAMP() - INTERVAL 1 SECOND',
    );
    const e = await refusal(client.pair(code, me()));
    expect(e.message).toMatch(/expired/);
    expect(await children(root)).toHaveLength(0);
    expect((await codes(root))[0]!.used_at).toBeNull();
  });

  it('refuses a name another child has (409) without using the code up', async () => {
    await root.addPeer({ nodeId: 'cd'.repeat(8), name: 'Centre', relation: 'child' });
    const { code } = await createPairingCode(root.pool, 60);
    const e = await refusal(client.pair(code, me()));
    expect(e.kind).toBe('protocol');
    expect(e.message).toBe(
      'The name "centre" is already used by another clinic under this server; choose another name.',
    );
    expect((await codes(root))[0]!.used_at).toBeNull();
    const r = await client.pair(code, { ...me(), name: 'centre-2' });
    expect(r.secret).toHaveLength(32);
    expect((await children(root)).map((c) => c.name).sort()).toEqual(['Centre', 'centre-2']);
  });

  it('refuses a malformed code before asking the parent', async () => {
    const e = await refusal(client.pair('not a code', me()));
    expect(e.kind).toBe('usage');
  });
});
