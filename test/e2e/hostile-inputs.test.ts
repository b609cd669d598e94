import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import type { Envelope } from '../../src/engine/protocol/types.js';
import { encodeEnvelope } from '../../src/engine/protocol/xml.js';
import { SNAPSHOT_PATH, snapshotRoute } from '../../src/engine/clone/snapshot.js';
import { newNonce } from '../../src/engine/transport/auth.js';
import { readParentSecret } from '../../src/engine/transport/client.js';
import {
  startSyncServer,
  type ServerEvent,
  type SyncServer,
} from '../../src/engine/transport/server.js';
import { VERIFY_PATH, verifyRoute } from '../../src/engine/transport/verifyRoute.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import {
  cloneDatabase,
  pairChild,
  rawPost,
  signedHeaders,
  type RawAnswer,
} from '../helpers/http.js';
import { Tree } from '../helpers/tree.js';

/*
 * Issue 8, item 5: hostile input at every endpoint. Each case sends one kind of bad request and
 * checks that it gets a 4xx with one plain sentence, that nothing in the parent's database
 * changed (rows, log, version vectors, neighbours, parked rows), that the log line carries no
 * part of the payload, and that the server still answers a good request afterwards.
 *
 * The requests that pass the signature check are signed with a real child's secret: the parent
 * is safe from strangers by the signature, and from a broken or stolen child by these checks.
 */

/** In every hostile payload: must never show in a log line. */
const MARKER = 'p-hostile-marker';

describe('hostile input at every endpoint', () => {
  let tree: Tree;
  let root: SyncNode;
  let child: SyncNode;
  let server: SyncServer;
  let secret: Buffer;
  const events: ServerEvent[] = [];

  /** A real batch from the child, with one new person, ready to be bent. */
  let batch: Envelope;

  const url = (path = '/v1/exchange') => `${server.url}${path}`;
  const signed = (body: Buffer, path = '/v1/exchange') =>
    signedHeaders(body, { node: child.nodeId, secret, path });

  /** What the parent holds that a refused request could have changed. */
  async function parentState() {
    const read = async (sql: string) =>
      JSON.stringify(await queryRows(root.pool, sql)).replace(/"last_contact_at":"[^"]*"/g, '');
    return {
      person: await read('SELECT uuid, gender, birthdate, voided FROM person ORDER BY uuid'),
      tags: await read('SELECT obs_id, tag FROM tag_map ORDER BY obs_id, tag'),
      log: await read('SELECT origin, seq, hlc FROM clinicsync_log ORDER BY lsn'),
      vv: await read('SELECT origin, seq FROM clinicsync_vv ORDER BY origin'),
      peerVv: await read('SELECT peer, origin, seq FROM clinicsync_peer_vv ORDER BY peer, origin'),
      peers: await read('SELECT node_id, acked_lsn FROM clinicsync_peer ORDER BY node_id'),
      parked: await read('SELECT origin, seq FROM clinicsync_parked ORDER BY pid'),
      pairing: await read('SELECT code_hash, used_at FROM clinicsync_pairing ORDER BY code_hash'),
    };
  }

  /** The refusal's shape: the status, one plain sentence, and what changed (nothing). */
  async function expectRefused(
    r: RawAnswer,
    status: number,
    before: Awaited<ReturnType<typeof parentState>>,
    sentence?: RegExp,
  ): Promise<void> {
    expect(r.status, r.text).toBe(status);
    const text = r.text.trim();
    expect(text).toMatch(/^[A-Z].*\.$/);
    expect(text.split('\n')).toHaveLength(1);
    if (sentence) expect(text).toMatch(sentence);
    expect(await parentState()).toEqual(before);
    await expectGoodRequestAnswered();
  }

  /** A well-behaved exchange of the child still goes through. */
  async function expectGoodRequestAnswered(): Promise<void> {
    const env = await child.outgoing(root.nodeId);
    const body = encodeEnvelope({ ...env, changes: [], tables: [], more: false }, { gzip: true });
    const ok = await rawPost(url(), body, signed(body));
    expect(ok.status, ok.text).toBe(200);
  }

  function bent(change: (env: Envelope) => Envelope): Buffer {
    return encodeEnvelope(change(structuredClone(batch)), { gzip: false });
  }

  beforeAll(async () => {
    tree = new Tree();
    const db = await createTestDb('cs_hostile');
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
    server = await startSyncServer({
      node: root,
      host: '127.0.0.1',
      port: 0,
      maxBodyBytes: 64 * 1024,
      maxInflatedBytes: 256 * 1024,
      headersTimeoutMs: 1_500,
      bodyIdleMs: 1_500,
      log: (e) => events.push(e),
      extraRoutes: { [SNAPSHOT_PATH]: snapshotRoute(), [VERIFY_PATH]: verifyRoute() },
    });
    child = (await cloneDatabase(tree, root, 'centre', server.url)).node;
    await (await pairChild(child, root, server.url)).close();
    secret = readParentSecret(child.home)!;
    await execute(
      child.pool,
      "INSERT INTO person (gender, birthdate, creator, date_created, uuid) VALUES ('F', '1990-05-01', 1, '2026-01-01', ?)",
      [MARKER],
    );
    batch = await child.outgoing(root.nodeId);
    expect(batch.changes.some((c) => c.table === 'person' && c.ident === MARKER)).toBe(true);
  }, 120_000);

  afterAll(async () => {
    // No line of the log carries any part of what was sent.
    expect(JSON.stringify(events)).not.toContain(MARKER);
    expect(JSON.stringify(events)).not.toContain('yesterday');
    await server?.close();
    await tree?.close();
  });

  it('malformed XML: 400', async () => {
    const before = await parentState();
    const body = Buffer.from(
      `<cs v="1" from="${child.nodeId}"><t n="person" f="x" c="uuid">${MARKER}`,
    );
    await expectRefused(await rawPost(url(), body, signed(body)), 400, before, /^The batch/);
  });

  it('entity expansion (a billion laughs): 400, nothing expanded', async () => {
    const before = await parentState();
    const lol = [
      '<?xml version="1.0"?>',
      `<!DOCTYPE cs [<!ENTITY a "${MARKER}">`,
      ...Array.from(
        { length: 9 },
        (_, i) => `<!ENTITY ${'b'.repeat(i + 1)} "${'&a;'.repeat(10)}">`,
      ),
      ']>',
      `<cs v="1">&${'b'.repeat(9)};</cs>`,
    ].join('\n');
    const body = Buffer.from(lol);
    await expectRefused(await rawPost(url(), body, signed(body)), 400, before, /entit/);
  });

  it('deeply nested XML: 400', async () => {
    const before = await parentState();
    const depth = 5_000;
    const body = Buffer.from(
      `<cs v="1" from="${child.nodeId}" inc="${child.incarnation}" to="${root.nodeId}" t="1" h="1" more="0"><r t="person">${'<i>'.repeat(depth)}${'</i>'.repeat(depth)}</r></cs>`,
    );
    await expectRefused(await rawPost(url(), body, signed(body)), 400, before, /deeper/);
  });

  it('a gzip bomb: 400 once it would unpack past the limit, nothing inflated beyond it', async () => {
    const before = await parentState();
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20), { level: 9 });
    expect(bomb.length).toBeLessThan(64 * 1024);
    await expectRefused(
      await rawPost(url(), bomb, signed(bomb)),
      400,
      before,
      /larger than 256 KiB once unpacked/,
    );
  });

  it('an oversized body: 413, declared or streamed without a length', async () => {
    const before = await parentState();
    const huge = Buffer.alloc(200 * 1024, 0x41);
    await expectRefused(await rawPost(url(), huge, signed(huge)), 413, before, /larger than/);
    // The same without Content-Length: refused as it passes the limit, not after.
    const chunks = async function* () {
      for (let i = 0; i < 50; i++) yield Buffer.alloc(8 * 1024, 0x41);
    };
    const { request } = await import('undici');
    const res = await request(url(), {
      method: 'POST',
      headers: signed(huge),
      body: Readable.from(chunks()),
    });
    const text = await res.body.text();
    await expectRefused(
      { status: res.statusCode, headers: res.headers, body: Buffer.from(text), text },
      413,
      before,
    );
  });

  it('a slow sender (headers trickling in): 408, and others are served meanwhile', async () => {
    const before = await parentState();
    const socket = net.connect(server.port, server.host);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.write('POST /v1/exchange HTTP/1.1\r\nHost: parent\r\n');
    const drip = setInterval(() => socket.writable && socket.write('X-Slow: a\r\n'), 300);
    // A good request while the slow one holds its connection.
    await expectGoodRequestAnswered();
    await closed;
    clearInterval(drip);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(/did not arrive in time/);
    expect(await parentState()).toEqual(before);
    await expectGoodRequestAnswered();
  });

  it('a slow sender (the body stops halfway): 408 after the idle limit', async () => {
    const before = await parentState();
    const body = bent((e) => e);
    const headers = signed(body);
    const socket = net.connect(server.port, server.host);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const lines = Object.entries({ ...headers, 'content-length': String(body.length) })
      .map(([k, v]) => `${k}: ${v}`)
      .join('\r\n');
    socket.write(`POST /v1/exchange HTTP/1.1\r\nHost: parent\r\n${lines}\r\n\r\n`);
    socket.write(body.subarray(0, Math.floor(body.length / 2)));
    const started = Date.now();
    await closed;
    expect(Date.now() - started).toBeLessThan(10_000);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
    const text = answer.split('\r\n\r\n')[1] ?? '';
    await expectRefused(
      { status, headers: {}, body: Buffer.from(text), text },
      408,
      before,
      /too slowly/,
    );
  });

  it('a missing signature: 401', async () => {
    const before = await parentState();
    const body = bent((e) => e);
    const r = await rawPost(url(), body, { 'content-type': 'application/xml' });
    expect(r.headers['x-clinicsync-refusal']).toBe('unsigned');
    await expectRefused(r, 401, before);
  });

  it('a bad signature: 401', async () => {
    const before = await parentState();
    const body = bent((e) => e);
    const headers = signed(body);
    headers['x-clinicsync-signature'] = randomBytes(32).toString('hex');
    const r = await rawPost(url(), body, headers);
    expect(r.headers['x-clinicsync-refusal']).toBe('signature');
    await expectRefused(r, 401, before);
  });

  it('a replayed request: 401; only the first copy was applied', async () => {
    const body = encodeEnvelope(
      { ...(await child.outgoing(root.nodeId)), changes: [], tables: [], more: false },
      { gzip: false },
    );
    const headers = signedHeaders(body, { node: child.nodeId, secret, nonce: newNonce() });
    expect((await rawPost(url(), body, headers)).status).toBe(200);
    const before = await parentState();
    const r = await rawPost(url(), body, headers);
    expect(r.headers['x-clinicsync-refusal']).toBe('replay');
    await expectRefused(r, 401, before);
  });

  it('an unknown node: 401', async () => {
    const before = await parentState();
    const body = bent((e) => e);
    const r = await rawPost(
      url(),
      body,
      signedHeaders(body, { node: randomBytes(8).toString('hex'), secret: randomBytes(32) }),
    );
    expect(r.headers['x-clinicsync-refusal']).toBe('unknown-node');
    await expectRefused(r, 401, before);
  });

  it('a table this database does not have: 400 naming it', async () => {
    const before = await parentState();
    const body = bent((e) => ({
      ...e,
      tables: e.tables.map((t) => (t.name === 'person' ? { ...t, name: 'no_such_table' } : t)),
      changes: e.changes.map((c) => (c.table === 'person' ? { ...c, table: 'no_such_table' } : c)),
    }));
    await expectRefused(await rawPost(url(), body, signed(body)), 400, before, /no_such_table/);
  });

  it("a column the table does not have (with the table's own fingerprint): 400 naming it", async () => {
    const before = await parentState();
    const body = bent((e) => ({
      ...e,
      changes: e.changes.map((c) =>
        c.ident === MARKER ? { ...c, values: { ...c.values, shoe_size: '42' } } : c,
      ),
    }));
    await expectRefused(await rawPost(url(), body, signed(body)), 400, before, /shoe_size/);
  });

  it('values of the wrong type: 400 naming the column, never the value', async () => {
    for (const [column, value, kind] of [
      ['birthdate', 'yesterday', /not a date/],
      ['voided', 'yes', /not a whole number/],
      ['gender', 'x'.repeat(51), /person\.gender/],
    ] as const) {
      const before = await parentState();
      const body = bent((e) => ({
        ...e,
        changes: e.changes.map((c) =>
          c.ident === MARKER ? { ...c, values: { ...c.values, [column]: value } } : c,
        ),
      }));
      const r = await rawPost(url(), body, signed(body));
      expect(r.text).toContain(`person.${column}`);
      expect(r.text).not.toContain(value);
      await expectRefused(r, 400, before, kind);
    }
  });

  it('garbage at the other endpoints: 4xx each, nothing changed', async () => {
    const before = await parentState();
    const junk = Buffer.from(`{"version": ${MARKER}`);
    await expectRefused(
      await rawPost(url('/v1/pair'), junk, { 'content-type': 'application/json' }),
      400,
      before,
    );
    await expectRefused(
      await rawPost(url(SNAPSHOT_PATH), junk, signed(junk, SNAPSHOT_PATH)),
      400,
      before,
    );
    await expectRefused(
      await rawPost(url(VERIFY_PATH), junk, signed(junk, VERIFY_PATH)),
      400,
      before,
    );
    const hello = await rawPost(url('/v1/hello'), junk);
    await expectRefused(hello, 405, before);
  });

  it('the same child calling twice at once is served one after the other', async () => {
    const spans: { start: number; end: number }[] = [];
    const answer = root.answer.bind(root);
    root.answer = async (...args: Parameters<SyncNode['answer']>) => {
      const start = performance.now();
      try {
        return await answer(...args);
      } finally {
        spans.push({ start, end: performance.now() });
      }
    };
    try {
      const env = await child.outgoing(root.nodeId);
      const body = encodeEnvelope(env, { gzip: true });
      const [a, b] = await Promise.all([
        rawPost(url(), body, signed(body)),
        rawPost(url(), body, signed(body)),
      ]);
      expect([a.status, b.status]).toEqual([200, 200]);
    } finally {
      root.answer = answer;
    }
    expect(spans).toHaveLength(2);
    const [first, second] = spans.sort((x, y) => x.start - y.start);
    expect(second!.start).toBeGreaterThanOrEqual(first!.end);
    // The person arrived once.
    const [n] = await queryRows(root.pool, 'SELECT COUNT(*) AS n FROM person WHERE uuid = ?', [
      MARKER,
    ]);
    expect(Number(n!.n)).toBe(1);
  });
});
