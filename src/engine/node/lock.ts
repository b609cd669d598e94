import { createHash } from 'node:crypto';
import os from 'node:os';
import type { Pool, PoolConnection } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { OWN_PREFIX } from '../db/schema.js';
import { q } from '../db/ident.js';
import { SyncError } from '../errors.js';

/**
 * One engine per node (DESIGN §9). The lock is a server-side named lock (GET_LOCK) held by a
 * connection of its own: it lives exactly as long as that connection, so a process that is killed
 * or loses power frees it without anyone cleaning up. Who holds it is written next to it, in
 * `clinicsync_lock_holder`, and believed only while the lock's connection is still the one
 * recorded there.
 */

export const LOCK_HOLDER_TABLE = `${OWN_PREFIX}lock_holder`;

/** `clinicsync_` + 20 hex digits of sha256(database): short enough for GET_LOCK's 64 characters. */
export function nodeLockName(database: string): string {
  return OWN_PREFIX + createHash('sha256').update(database, 'utf8').digest('hex').slice(0, 20);
}

/** The holder text for this process, e.g. `pid 1234 on host clinic-1, clinic-sync serve`. */
export function describeThisProcess(command: string): string {
  return `pid ${process.pid} on host ${os.hostname()}, ${command}`;
}

export interface NodeLockOptions {
  /** false: fail at once if another engine holds the node; true: wait for it */
  wait: boolean;
  /** with wait: give up after this long (default: wait for ever) */
  timeoutSeconds?: number;
  /** who this is, shown to a second engine: see describeThisProcess() */
  holderInfo: string;
  /** called once if the lock is found lost (its connection died or was killed) */
  onLost?: () => void;
}

export interface NodeLock {
  readonly name: string;
  /** the server connection that holds the lock */
  readonly connectionId: number;
  /** true once the lock is known to be gone (connection lost) or released */
  readonly lost: boolean;
  /** asks the server whether this connection still holds the lock */
  stillHeld(): Promise<boolean>;
  /** frees the lock; safe to call more than once */
  release(): Promise<void>;
}

/** How often the lock's connection is checked (this also keeps it from idling out). */
const CHECK_EVERY_MS = 60_000;
/** Longest single GET_LOCK wait, so a long wait is made of short, interruptible ones. */
const WAIT_STEP_SECONDS = 5;

/**
 * Takes the node lock for `database`, or throws SyncError('locked') naming the engine that holds
 * it. The lock keeps one connection of `pool` for as long as it is held, so give the pool room
 * for it (connectionLimit of 2 or more).
 */
export async function acquireNodeLock(
  pool: Pool,
  database: string,
  opts: NodeLockOptions,
): Promise<NodeLock> {
  const name = nodeLockName(database);
  const conn = await pool.getConnection().catch((e: unknown) => {
    throw lockDbError(e);
  });
  let got = false;
  try {
    const [me] = await queryRows(conn, 'SELECT CONNECTION_ID() AS id');
    const connectionId = Number(me?.id);

    const deadline =
      opts.wait && opts.timeoutSeconds === undefined
        ? Infinity
        : Date.now() + (opts.wait ? Math.max(0, opts.timeoutSeconds ?? 0) * 1000 : 0);
    for (let freedMeanwhile = 0; ;) {
      const left = deadline - Date.now();
      const step = opts.wait ? Math.max(0, Math.min(WAIT_STEP_SECONDS, Math.ceil(left / 1000))) : 0;
      const [r] = await queryRows(conn, 'SELECT GET_LOCK(?, ?) AS got', [name, step]);
      if (r?.got == null) {
        throw new SyncError('database', 'The database could not take the node lock; try again.');
      }
      if (Number(r.got) === 1) break;
      if (Date.now() >= deadline) {
        const who = await describeHolder(conn, name);
        // Freed between GET_LOCK and the look-up: try once more rather than name nobody.
        if (who === null && freedMeanwhile++ < 3) continue;
        throw new SyncError(
          'locked',
          `${who ?? 'Another ClinicSync engine'} is running this node; stop it or let it finish, then try again.`,
        );
      }
    }
    got = true;
    // The connection idles for as long as the engine runs; the server must not close it.
    await execute(conn, 'SET SESSION wait_timeout = 2147483');

    await execute(
      conn,
      `CREATE TABLE IF NOT EXISTS ${q(LOCK_HOLDER_TABLE)} (
         lock_name VARCHAR(64) NOT NULL PRIMARY KEY,
         holder VARCHAR(255) NOT NULL,
         connection_id BIGINT UNSIGNED NOT NULL,
         since DATETIME(6) NOT NULL
       ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    );
    await execute(
      conn,
      `REPLACE INTO ${q(LOCK_HOLDER_TABLE)} (lock_name, holder, connection_id, since)
       VALUES (?, ?, ?, UTC_TIMESTAMP(6))`,
      [name, opts.holderInfo.slice(0, 255), connectionId],
    );
    return new HeldLock(conn, name, connectionId, opts.onLost);
  } catch (e) {
    // Closing the connection frees the lock whatever state it is in.
    if (got) conn.destroy();
    else conn.release();
    throw e instanceof SyncError ? e : lockDbError(e);
  }
}

/** A sentence subject naming who holds `name`, or null if nobody holds it any more. */
async function describeHolder(conn: PoolConnection, name: string): Promise<string | null> {
  const [u] = await queryRows(conn, 'SELECT IS_USED_LOCK(?) AS cid', [name]);
  if (u?.cid == null) return null;
  const cid = String(u.cid);
  try {
    const [row] = await queryRows(
      conn,
      `SELECT holder, connection_id FROM ${q(LOCK_HOLDER_TABLE)} WHERE lock_name = ?`,
      [name],
    );
    // A record left by a killed engine names a connection that no longer holds the lock.
    if (row && String(row.connection_id) === cid) {
      return `Another ClinicSync engine (${String(row.holder)})`;
    }
  } catch (e) {
    if ((e as { code?: string }).code !== 'ER_NO_SUCH_TABLE') throw e;
  }
  let from = '';
  try {
    // Visible for connections of the same user, or with the PROCESS privilege.
    const [p] = await queryRows(
      conn,
      'SELECT HOST AS host FROM information_schema.PROCESSLIST WHERE ID = ?',
      [cid],
    );
    if (p?.host) from = ` from ${String(p.host)}`;
  } catch {
    // Not needed for the sentence.
  }
  return `Another ClinicSync engine (database connection ${cid}${from}, which has not said who it is)`;
}

class HeldLock implements NodeLock {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<boolean> | undefined;
  private released = false;
  lost = false;

  constructor(
    private readonly conn: PoolConnection,
    readonly name: string,
    readonly connectionId: number,
    private readonly onLost: (() => void) | undefined,
  ) {
    this.timer = setInterval(() => void this.stillHeld(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  stillHeld(): Promise<boolean> {
    if (this.lost) return Promise.resolve(false);
    this.checking ??= queryRows(this.conn, 'SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS mine', [
      this.name,
    ])
      .then(([r]) => Number(r?.mine) === 1)
      .catch(() => false)
      .then((held) => {
        this.checking = undefined;
        if (!held && !this.lost) this.markLost();
        return held;
      });
    return this.checking;
  }

  private markLost(): void {
    this.lost = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.released) this.onLost?.();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.checking;
    try {
      await execute(
        this.conn,
        `DELETE FROM ${q(LOCK_HOLDER_TABLE)} WHERE lock_name = ? AND connection_id = CONNECTION_ID()`,
        [this.name],
      );
      await queryRows(this.conn, 'SELECT RELEASE_LOCK(?) AS r', [this.name]);
      await execute(this.conn, 'SET SESSION wait_timeout = @@GLOBAL.wait_timeout');
      this.conn.release();
    } catch {
      // The connection is gone or unusable: closing it is what frees the lock.
      this.conn.destroy();
    }
    this.lost = true;
  }
}

function lockDbError(e: unknown): SyncError {
  const msg = (e as { message?: string }).message ?? String(e);
  return new SyncError('database', `The node lock could not be taken: ${msg}.`, { cause: e });
}
