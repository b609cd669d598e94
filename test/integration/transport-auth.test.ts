import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { SyncError } from '../../src/engine/errors.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { encodeEnvelope } from '../../src/engine/protocol/xml.js';
import {
  TIME_WINDOW_MS,
  newNonce,
  sameSignature,
  sha256Hex,
  signResponse,
} from '../../src/engine/transport/auth.js';
import { ParentClient, readParentSecret } from '../../src/engine/transport/client.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, pairChild, rawPost, signedHeaders } from '../helpers/http.js';
import { Tree } from '../helpers/tree.js';

/** What the parent holds that a refused request could have changed. */
async function parentState(root: SyncNode) {
  const [person] = await queryRows(root.pool, 'SELECT COUNT(*) AS n FROM person');
  const [log] = await queryRows(root.pool, 'SELECT COUNT(*) AS n FROM clinicsync_log');
  const vv = await queryRows(
    root.pool,
    'SELECT peer, origin, seq FROM clinicsync_peer_vv ORDER BY peer, origin',
  );
  const peers = await queryRows(
    root.pool,
    'SELECT node_id, last_contact_at, acked_lsn FROM clinicsync_peer ORDER BY node_id',
  );
  return { person: Number(person!.n), log: Number(log!.n), vv, peers };
}

describe('signed requests', () => {
  let tree: Tree;
  let root: SyncNode;
  let child: SyncNode;
  let server: SyncServer;
  let secret: Buffer;
  let body: Buffer;
  const exchangeUrl = () => `${server.url}/v1/exchange`;

  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
    server = await startSyncServer({
      node: root,
      host: '127.0.0.1',
      port: 0,
      maxBodyBytes: 256 * 1024,
    });
    child = (await cloneDatabase(tree, root, 'centre', server.url)).node;
    const c = await pairChild(child, root, server.url);
    await c.close();
    secret = readParentSecret(child.home)!;
    // A batch that would add a person at the parent if it were accepted.
    await execute(
      child.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-hostile')",
    );
    body = encodeEnvelope(await child.outgoing(root.nodeId), { gzip: false });
    expect(body.toString()).toContain('p-hostile');
  });
  afterEach(async () => {
    await server.close();
    await tree.close();
  });

  async function expectRefused(
    r: { status: number; headers: Record<string, string | string[] | undefined>; text: string },
    status: number,
    refusal: string | null,
  ) {
    expect(r.status).toBe(status);
    expect(r.headers['x-clinicsync-time']).toMatch(/^\d+$/);
    if (refusal) expect(r.headers['x-clinicsync-refusal']).toBe(refusal);
    expect(r.text.trim()).toMatch(/^[A-Z].*\.$/);
    expect(r.text.trim().split('\n')).toHaveLength(1);
  }

  it('accepts a good request, and signs the answer over the body and the nonce', async () => {
    const nonce = newNonce();
    const r = await rawPost(
      exchangeUrl(),
      body,
      signedHeaders(body, { node: child.nodeId, secret, nonce }),
    );
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/xml');
    const expected = signResponse(secret, {
      status: 200,
      time: String(r.headers['x-clinicsync-time']),
      nonce,
      bodySha256: sha256Hex(r.body),
    });
    expect(sameSignature(expected, String(r.headers['x-clinicsync-signature']))).toBe(true);
    const [p] = await queryRows(
      root.pool,
      "SELECT COUNT(*) AS n FROM person WHERE uuid = 'p-hostile'",
    );
    expect(Number(p!.n)).toBe(1);
  });

  it('refuses an unsigned request, an unknown node and a bad signature with 401; nothing applied', async () => {
    const before = await parentState(root);
    await expectRefused(
      await rawPost(exchangeUrl(), body, { 'content-type': 'application/xml' }),
      401,
      'unsigned',
    );
    await expectRefused(
      await rawPost(exchangeUrl(), body, signedHeaders(body, { node: 'ab'.repeat(8), secret })),
      401,
      'unknown-node',
    );
    const wrong = Buffer.alloc(32, 7);
    await expectRefused(
      await rawPost(
        exchangeUrl(),
        body,
        signedHeaders(body, { node: child.nodeId, secret: wrong }),
      ),
      401,
      'signature',
    );
    // Signed for another body: the body was changed on the way.
    const other = Buffer.from(body.toString().replace('p-hostile', 'p-hostilE'));
    await expectRefused(
      await rawPost(exchangeUrl(), other, signedHeaders(body, { node: child.nodeId, secret })),
      401,
      'signature',
    );
    // Signed for another route.
    await expectRefused(
      await rawPost(
        exchangeUrl(),
        body,
        signedHeaders(body, { node: child.nodeId, secret, path: '/v1/snapshot' }),
      ),
      401,
      'signature',
    );
    expect(await parentState(root)).toEqual(before);
  });

  it('refuses a stale or early timestamp with 401, signed, telling the parent time', async () => {
    const before = await parentState(root);
    for (const skew of [-TIME_WINDOW_MS - 60_000, TIME_WINDOW_MS + 60_000, -3 * 86_400_000]) {
      const nonce = newNonce();
      const r = await rawPost(
        exchangeUrl(),
        body,
        signedHeaders(body, { node: child.nodeId, secret, nonce, time: Date.now() + skew }),
      );
      await expectRefused(r, 401, 'time');
      const expected = signResponse(secret, {
        status: 401,
        time: String(r.headers['x-clinicsync-time']),
        nonce,
        bodySha256: sha256Hex(r.body),
      });
      expect(sameSignature(expected, String(r.headers['x-clinicsync-signature']))).toBe(true);
      expect(Math.abs(Number(r.headers['x-clinicsync-time']) - Date.now())).toBeLessThan(60_000);
    }
    expect(await parentState(root)).toEqual(before);
  });

  it('refuses a replayed request with 401; the first copy alone was applied', async () => {
    const headers = signedHeaders(body, { node: child.nodeId, secret });
    const first = await rawPost(exchangeUrl(), body, headers);
    expect(first.status).toBe(200);
    const after = await parentState(root);
    const again = await rawPost(exchangeUrl(), body, headers);
    await expectRefused(again, 401, 'replay');
    expect(await parentState(root)).toEqual(after);
    const [n] = await queryRows(
      root.pool,
      'SELECT COUNT(*) AS n FROM clinicsync_nonce WHERE peer = ?',
      [child.nodeId],
    );
    expect(Number(n!.n)).toBe(1);
  });

  it('refuses a batch signed by one child that claims to come from another (403)', async () => {
    const other = (await cloneDatabase(tree, root, 'hill', server.url)).node;
    const c = await pairChild(other, root, server.url);
    await c.close();
    const otherSecret = readParentSecret(other.home)!;
    const before = await parentState(root);
    const r = await rawPost(
      exchangeUrl(),
      body,
      signedHeaders(body, { node: other.nodeId, secret: otherSecret }),
    );
    await expectRefused(r, 403, null);
    expect(r.text).toMatch(/another clinic than the one that signed it/);
    expect(await parentState(root)).toEqual(before);
  });

  it('answers malformed XML with 400 and the protocol sentence, a huge body with 413', async () => {
    const before = await parentState(root);
    const bad = Buffer.from('<cs v="1"><oops></cs>');
    const r = await rawPost(exchangeUrl(), bad, signedHeaders(bad, { node: child.nodeId, secret }));
    await expectRefused(r, 400, null);
    expect(r.text).toMatch(/^The batch/);
    const bomb = Buffer.from('<!DOCTYPE cs [<!ENTITY a "aaaa">]><cs v="1">&a;</cs>');
    const r2 = await rawPost(
      exchangeUrl(),
      bomb,
      signedHeaders(bomb, { node: child.nodeId, secret }),
    );
    await expectRefused(r2, 400, null);

    const huge = Buffer.alloc(300 * 1024, 0x20);
    const r3 = await rawPost(
      exchangeUrl(),
      huge,
      signedHeaders(huge, { node: child.nodeId, secret }),
    );
    await expectRefused(r3, 413, null);
    expect(await parentState(root)).toEqual(before);

    // The server keeps serving a good request afterwards.
    const ok = await rawPost(
      exchangeUrl(),
      body,
      signedHeaders(body, { node: child.nodeId, secret }),
    );
    expect(ok.status).toBe(200);
  });

  it('answers unknown endpoints with 404 and wrong methods with 405', async () => {
    const r = await rawPost(`${server.url}/v1/nothing`, body);
    expect(r.status).toBe(404);
    const res = await fetch(exchangeUrl());
    expect(res.status).toBe(405);
    expect(res.headers.get('x-clinicsync-time')).toMatch(/^\d+$/);
  });

  it('lets other engineers add signed routes, streamed answers signed in a trailer', async () => {
    server.route('/v1/echo2', async (req) => {
      const { Readable } = await import('node:stream');
      return {
        contentType: 'text/plain',
        body: Readable.from([Buffer.from(`hi ${req.peer.name} `), req.body]),
      };
    });
    const client = new ParentClient({
      url: server.url,
      nodeId: child.nodeId,
      secret,
      parentNodeId: root.nodeId,
    });
    try {
      const res = await client.post('/v1/echo2', 'there');
      expect(res.status).toBe(200);
      expect((await res.buffer()).toString()).toBe('hi centre there');
      await res.verified();
      expect(res.bytesDown()).toBe('hi centre there'.length);
      const e = await client.post('/v1/none', 'x').catch((err: unknown) => err);
      expect(e).toBeInstanceOf(SyncError);
    } finally {
      await client.close();
    }
  });
});

describe('the client refuses answers its parent did not sign', () => {
  it('throws a protocol error when the signature does not match', async () => {
    const fake = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('x-clinicsync-time', String(Date.now()));
        res.setHeader('x-clinicsync-signature', 'ab'.repeat(32));
        res.setHeader('content-type', 'application/xml');
        res.end('<cs/>');
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const client = new ParentClient({ url, nodeId: 'ab'.repeat(8), secret: Buffer.alloc(32, 1) });
    try {
      const e = await client
        .post('/v1/exchange', 'x')
        .then((r) => r.buffer())
        .catch((err: unknown) => err);
      expect(e).toBeInstanceOf(SyncError);
      expect((e as SyncError).kind).toBe('protocol');
      expect((e as SyncError).message).toMatch(/signature does not match/);
    } finally {
      await client.close();
      await new Promise((r) => fake.close(r));
    }
  });

  it('says the parent did not answer when nothing listens there', async () => {
    const client = new ParentClient({
      url: 'http://127.0.0.1:9',
      nodeId: 'ab'.repeat(8),
      secret: Buffer.alloc(32, 1),
    });
    const e = await client.hello().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(SyncError);
    expect((e as SyncError).kind).toBe('unreachable');
    expect((e as SyncError).message).toBe(
      'The main server at http://127.0.0.1:9 did not answer; check the connection. ClinicSync will try again.',
    );
    await client.close();
  });
});
