import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, SERVER, type TestDb } from '../helpers/db.js';
import { openPool, queryRows, type Pool } from '../../src/engine/db/pool.js';
import {
  acquireNodeLock,
  describeThisProcess,
  LOCK_HOLDER_TABLE,
  nodeLockName,
  type NodeLock,
} from '../../src/engine/node/lock.js';
import { SyncError } from '../../src/engine/errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const sentence = (holder: string) =>
  `Another ClinicSync engine (${holder}) is running this node; stop it or let it finish, then try again.`;

async function lockError(p: Promise<unknown>): Promise<SyncError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SyncError) return e;
    throw e;
  }
  throw new Error('expected the lock to be refused');
}

describe('one engine per node', () => {
  let db: TestDb;
  let second: Pool;
  const held: NodeLock[] = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await createTestDb('cs_lock');
    // A second engine has its own pool, as a second process would.
    second = openPool(db.target, { connectionLimit: 2 });
  });
  afterEach(async () => {
    for (const l of held.splice(0)) await l.release();
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });
  afterAll(async () => {
    await second.end();
    await db.drop();
  });

  async function take(pool: Pool, holderInfo: string, wait = false, timeoutSeconds?: number) {
    const l = await acquireNodeLock(pool, db.name, { wait, timeoutSeconds, holderInfo });
    held.push(l);
    return l;
  }

  it('names the lock for the database, within GET_LOCK limits', () => {
    expect(nodeLockName(db.name)).toMatch(/^clinicsync_[0-9a-f]{20}$/);
    expect(nodeLockName('openmrs')).not.toBe(nodeLockName('openmrs2'));
    expect(describeThisProcess('clinic-sync serve')).toBe(
      `pid ${process.pid} on host ${os.hostname()}, clinic-sync serve`,
    );
  });

  it('refuses a second engine and names the one that holds the node', async () => {
    const first = await take(db.pool, 'pid 1234 on host X, clinic-sync serve');
    const [row] = await queryRows(
      db.pool,
      `SELECT holder, connection_id FROM ${LOCK_HOLDER_TABLE} WHERE lock_name = ?`,
      [first.name],
    );
    expect(row?.holder).toBe('pid 1234 on host X, clinic-sync serve');
    expect(Number(row?.connection_id)).toBe(first.connectionId);

    const e = await lockError(take(second, 'pid 99 on host Y, clinic-sync sync'));
    expect(e.kind).toBe('locked');
    expect(e.message).toBe(sentence('pid 1234 on host X, clinic-sync serve'));
    expect(await first.stillHeld()).toBe(true);

    await first.release();
    await first.release(); // twice is harmless
    const again = await take(second, 'pid 99 on host Y, clinic-sync sync');
    expect(await again.stillHeld()).toBe(true);
  });

  it('another database on the same server is another node', async () => {
    const other = await createTestDb('cs_lock');
    try {
      const a = await take(db.pool, 'engine A');
      const b = await acquireNodeLock(other.pool, other.name, { wait: false, holderInfo: 'B' });
      held.push(b);
      expect(a.name).not.toBe(b.name);
      expect(await a.stillHeld()).toBe(true);
      expect(await b.stillHeld()).toBe(true);
      await b.release();
    } finally {
      await other.drop();
    }
  });

  it('with wait, gets the lock once the holder releases it', async () => {
    const first = await take(db.pool, 'the first engine');
    let settled = false;
    const waiting = take(second, 'the waiting engine', true).finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect(settled).toBe(false);
    await first.release();
    const l = await waiting;
    expect(await l.stillHeld()).toBe(true);
    const [row] = await queryRows(db.pool, `SELECT holder FROM ${LOCK_HOLDER_TABLE}`);
    expect(row?.holder).toBe('the waiting engine');
  });

  it('with wait and a timeout, gives up after the timeout and names the holder', async () => {
    await take(db.pool, 'pid 7 on host Z, clinic-sync serve');
    const t0 = Date.now();
    const e = await lockError(take(second, 'impatient', true, 2));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(e.kind).toBe('locked');
    expect(e.message).toBe(sentence('pid 7 on host Z, clinic-sync serve'));
  });

  it('a killed engine frees the node, and its stale record is never reported as the holder', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/helpers/lock-holder.ts', db.url, 'clinic-sync serve'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const childConn = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /locked (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`lock holder exited ${code}: ${err}`)));
    });

    const holder = `pid ${child.pid} on host ${os.hostname()}, clinic-sync serve`;
    const e = await lockError(take(second, 'me'));
    expect(e.message).toBe(sentence(holder));

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    // Something else (not a ClinicSync engine) takes the lock name before we do: the record the
    // killed engine left behind must not be read as the live holder.
    const raw = await mysql.createConnection({ ...SERVER, database: db.name });
    try {
      const [[got]] = await raw.query<mysql.RowDataPacket[]>(
        'SELECT GET_LOCK(?, 10) AS got, CONNECTION_ID() AS id',
        [nodeLockName(db.name)],
      );
      expect(Number(got?.got)).toBe(1);
      const [stale] = await queryRows(db.pool, `SELECT connection_id FROM ${LOCK_HOLDER_TABLE}`);
      expect(Number(stale?.connection_id)).toBe(childConn);

      const e2 = await lockError(take(second, 'me'));
      expect(e2.kind).toBe('locked');
      expect(e2.message).not.toContain(String(child.pid));
      expect(e2.message).toContain(`database connection ${String(got?.id)}`);
    } finally {
      await raw.end();
    }

    const mine = await take(second, 'me', true, 10);
    expect(await mine.stillHeld()).toBe(true);
    const [row] = await queryRows(
      db.pool,
      `SELECT holder, connection_id FROM ${LOCK_HOLDER_TABLE}`,
    );
    expect(row?.holder).toBe('me');
    expect(Number(row?.connection_id)).toBe(mine.connectionId);
  });

  it('notices when its connection is killed, and the node is free again', async () => {
    let lostCalls = 0;
    const l = await acquireNodeLock(db.pool, db.name, {
      wait: false,
      holderInfo: 'doomed',
      onLost: () => lostCalls++,
    });
    held.push(l);
    const admin = await mysql.createConnection({ ...SERVER });
    await admin.query(`KILL CONNECTION ${l.connectionId}`);
    await admin.end();
    expect(await l.stillHeld()).toBe(false);
    expect(l.lost).toBe(true);
    expect(lostCalls).toBe(1);
    const next = await take(second, 'successor', true, 10);
    expect(await next.stillHeld()).toBe(true);
  });
});
