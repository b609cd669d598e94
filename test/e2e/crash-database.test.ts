import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, inTransaction, queryRows } from '../../src/engine/db/pool.js';
import { isSyncError } from '../../src/engine/errors.js';
import { dbTrouble, transactionLost, withDbRetry } from '../../src/engine/node/dbRetry.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { SyncSchedule } from '../../src/engine/node/schedule.js';
import { NodeService, type EngineEvent } from '../../src/engine/node/service.js';
import { ParentClient, readParentSecret } from '../../src/engine/transport/client.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { createTestDb, SERVER, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, pairChild } from '../helpers/http.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { Tree } from '../helpers/tree.js';

/*
 * Issue 8, items 3 and 8: a database that goes away under a running node. The shared MariaDB is
 * never stopped here: each node reaches its database through a TCP proxy that the test takes
 * down (connections cut, nothing listening: as a stopped server looks) and brings back. The node
 * says what happened, keeps its schedule, and carries on when the database is back, with nothing
 * lost. A deadlock is retried, not fatal.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(200);
  }
}

describe('a database that goes away under a running node', () => {
  let tree: Tree;
  let rootDb: TestDb;
  let childDb: TestDb;
  let rootProxy: Proxy;
  let childProxy: Proxy;
  let root: SyncNode;
  let child: SyncNode;
  let server: SyncServer;
  let client: ParentClient;
  let schedule: SyncSchedule;
  const events: EngineEvent[] = [];
  const logs: string[] = [];

  const has = async (db: TestDb, uuid: string) =>
    Number(
      (await queryRows(db.pool, 'SELECT COUNT(*) AS n FROM person WHERE uuid = ?', [uuid]))[0]!.n,
    ) === 1;
  const addPerson = (db: TestDb, uuid: string) =>
    execute(
      db.pool,
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-06-01', ?)",
      [uuid],
    );

  beforeAll(async () => {
    tree = new Tree();
    rootDb = await createTestDb('cs_dbaway');
    await createClinicSchema(rootDb.pool);
    const made = await tree.root(rootDb, 'district');
    const cloned = await cloneDatabase(tree, made, 'centre');
    childDb = cloned.db;
    // Both engines are opened again, reaching their databases through a proxy each.
    rootProxy = await startProxy({ target: { host: SERVER.host, port: SERVER.port } });
    childProxy = await startProxy({ target: { host: SERVER.host, port: SERVER.port } });
    const settings = made.settings;
    const childSettings = cloned.node.settings;
    await made.close();
    await cloned.node.close();
    tree.nodes.length = 0;
    root = await SyncNode.open({
      db: { ...rootDb.target, port: rootProxy.port },
      settings,
      home: made.home,
      lock: 'try',
    });
    server = await startSyncServer({ node: root, host: '127.0.0.1', port: 0 });
    child = await SyncNode.open({
      db: { ...childDb.target, port: childProxy.port },
      settings: { ...childSettings, parent: server.url },
      home: cloned.home,
      lock: 'try',
    });
    tree.nodes.push(root, child);
    await (await pairChild(child, root, server.url)).close();
    client = new ParentClient({
      url: server.url,
      timeoutSeconds: 5,
      nodeId: child.nodeId,
      secret: readParentSecret(child.home),
      parentNodeId: root.nodeId,
    });
    const service = new NodeService(child, client);
    service.on((e) => events.push(e));
    schedule = new SyncSchedule({
      service,
      settings: () => ({
        intervalSeconds: 2,
        retries: 2,
        retryDelaySeconds: 1,
        retryMaxDelaySeconds: 1,
      }),
      log: (_level, message) => logs.push(message),
    });
  }, 120_000);

  afterAll(async () => {
    await schedule?.stop();
    await client?.close();
    await server?.close();
    await rootProxy?.close();
    await childProxy?.close();
    await tree?.close();
  });

  it("the child's database stops and comes back: the node says so, keeps its schedule, carries on", async () => {
    schedule.start();
    await addPerson(childDb, 'p-before');
    await until(() => has(rootDb, 'p-before'));

    await childProxy.down();
    const failedBefore = events.filter((e) => e.type === 'sync-failed').length;
    // Meanwhile the clinic keeps working (OpenMRS writes to its database directly) and so does
    // the parent.
    await addPerson(rootDb, 'p-parent-during');
    await until(async () => events.filter((e) => e.type === 'sync-failed').length > failedBefore);
    const failed = events.filter((e) => e.type === 'sync-failed').at(-1)!;
    expect(failed).toMatchObject({ kind: 'database' });
    expect((failed as { message: string }).message).toMatch(
      /^The database at 127\.0\.0\.1:\d+ is not answering \(stopped, restarting or cut off\); ClinicSync carries on by itself when it is back\.$/,
    );
    expect(logs.some((l) => /is not answering/.test(l))).toBe(true);
    // Still scheduled, several slots later.
    await sleep(4_500);
    expect(schedule.nextSyncAt()).not.toBeNull();

    await childProxy.up();
    await addPerson(childDb, 'p-child-after');
    await until(
      async () => (await has(childDb, 'p-parent-during')) && (await has(rootDb, 'p-child-after')),
    );
    expect(events.at(-1)?.type).not.toBe('sync-failed');
  }, 120_000);

  it("the parent's database stops and comes back: the child hears why, and carries on", async () => {
    await rootProxy.down();
    await addPerson(childDb, 'p-parent-away');
    const failedBefore = events.filter((e) => e.type === 'sync-failed').length;
    await until(async () => events.filter((e) => e.type === 'sync-failed').length > failedBefore);
    const failed = events.filter((e) => e.type === 'sync-failed').at(-1) as {
      kind: string;
      message: string;
    };
    expect(failed.kind).toBe('unreachable');
    expect(failed.message).toBe(
      "The main server's database is not available just now; ClinicSync will try again.",
    );
    await rootProxy.up();
    await until(() => has(rootDb, 'p-parent-away'));
    const [dup] = await queryRows(
      rootDb.pool,
      "SELECT COUNT(*) AS n FROM person WHERE uuid = 'p-parent-away'",
    );
    expect(Number(dup!.n)).toBe(1);
  }, 120_000);

  it('retries a transaction chosen as a deadlock victim', async () => {
    await execute(rootDb.pool, 'CREATE TABLE IF NOT EXISTS lockpair (id INT PRIMARY KEY, v INT)');
    await execute(rootDb.pool, 'INSERT INTO lockpair VALUES (1, 0), (2, 0)');
    let tries = 0;
    // Two transactions take the same two rows in opposite orders: InnoDB kills one of them.
    const swap = (first: number, second: number, counted: boolean) =>
      inTransaction(rootDb.pool, async (conn) => {
        if (counted) tries++;
        await execute(conn, 'UPDATE lockpair SET v = v + 1 WHERE id = ?', [first]);
        await sleep(300);
        await execute(conn, 'UPDATE lockpair SET v = v + 1 WHERE id = ?', [second]);
      });
    const results = await Promise.allSettled([
      withDbRetry(() => swap(1, 2, true)),
      withDbRetry(() => swap(2, 1, false)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    const rows = await queryRows(rootDb.pool, 'SELECT v FROM lockpair ORDER BY id');
    expect(rows.map((r) => Number(r.v))).toEqual([2, 2]);
    expect(tries).toBeGreaterThanOrEqual(1);
    // What counts as passing trouble, and what does not.
    expect(dbTrouble(Object.assign(new Error('x'), { code: 'ER_LOCK_DEADLOCK' }))).toBe('lock');
    expect(dbTrouble(Object.assign(new Error('x'), { code: 'PROTOCOL_CONNECTION_LOST' }))).toBe(
      'gone',
    );
    expect(dbTrouble(Object.assign(new Error('x'), { code: 'ER_DUP_ENTRY' }))).toBeNull();
    // Which of them take the whole transaction (apply parks a change only when a savepoint is left).
    const err = (code: string) => Object.assign(new Error(code), { code });
    expect(transactionLost(err('ER_LOCK_DEADLOCK'))).toBe(true);
    expect(transactionLost(new Error('wrapped', { cause: err('ER_LOCK_DEADLOCK') }))).toBe(true);
    expect(transactionLost(err('PROTOCOL_CONNECTION_LOST'))).toBe(true);
    expect(transactionLost(err('ER_LOCK_WAIT_TIMEOUT'))).toBe(false);
    expect(transactionLost(err('ER_DUP_ENTRY'))).toBe(false);
    // A database that stays away ends in one sentence of kind 'database'.
    const away = await withDbRetry(
      () => Promise.reject(Object.assign(new Error('gone'), { code: 'ECONNREFUSED' })),
      { attempts: 2, delayMs: 1, db: rootDb.target },
    ).catch((e: unknown) => e);
    expect(isSyncError(away) && away.kind).toBe('database');
  }, 60_000);
});
