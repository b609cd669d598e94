import { randomBytes } from 'node:crypto';
import type { Pool } from '../db/pool.js';
import { explainDbError, openPool, queryRows } from '../db/pool.js';
import type { DbTarget } from '../db/url.js';
import { checkPrivileges } from '../db/privileges.js';
import { SyncError, isSyncError } from '../errors.js';
import type { Home } from '../config/home.js';
import type { Settings } from '../config/settings.js';
import { Capture } from '../capture/capture.js';
import { tableFilter } from '../capture/tableFilter.js';
import { acquireNodeLock, describeThisProcess, type NodeLock } from './lock.js';
import { getMeta, setMeta } from './meta.js';
import { isInstalled, migrate } from './migrations.js';
import type { NodeStatus } from './types.js';

/**
 * 'wait' for another engine to finish, 'try' and fail at once, 'prefer' to take the lock when free
 * and otherwise read without it (status while `serve` runs), or 'none' for read-only use.
 */
export type LockMode = 'wait' | 'try' | 'prefer' | 'none';

interface OpenOptions {
  db: DbTarget;
  settings: Settings;
  home: Home;
  lock?: LockMode;
}

/** One node: its database, its capture, and (later) its neighbours. Both hosts build this. */
export class SyncNode {
  private constructor(
    readonly pool: Pool,
    readonly db: DbTarget,
    readonly settings: Settings,
    readonly home: Home,
    readonly nodeId: string,
    readonly incarnation: string,
    readonly capture: Capture,
    private lock: NodeLock | null,
  ) {}

  /** Makes a database the root of a tree: privileges checked, tables made, triggers installed. */
  static async init(opts: {
    db: DbTarget;
    name: string;
    settings: Settings;
    home: Home;
  }): Promise<SyncNode> {
    const pool = await connect(opts.db);
    try {
      const privileges = await checkPrivileges(pool, opts.db.database);
      if (!privileges.ok)
        throw new SyncError(
          'privileges',
          privileges.sentence ?? 'The database user lacks privileges ClinicSync needs.',
        );
      if (await isInstalled(pool)) {
        throw new SyncError(
          'state',
          `The database "${opts.db.database}" is already a ClinicSync node; use it as it is, or run "clinic-sync uninstall --db URL" first to start over.`,
        );
      }
      const lock = await acquireNodeLock(pool, opts.db.database, {
        wait: false,
        holderInfo: describeThisProcess('clinic-sync init'),
      });
      await migrate(pool);
      const nodeId = randomBytes(8).toString('hex');
      const incarnation = randomBytes(4).toString('hex');
      await setMeta(pool, 'node_id', nodeId);
      await setMeta(pool, 'incarnation', incarnation);
      await setMeta(pool, 'name', opts.name);
      await setMeta(pool, 'role', 'root');
      await setMeta(pool, 'seq', '0');
      await setMeta(pool, 'hlc', '0');
      await setMeta(pool, 'capture_paused', '0');
      const capture = new Capture(
        pool,
        opts.db.database,
        nodeId,
        tableFilter(opts.settings.tables),
      );
      await capture.install();
      return new SyncNode(
        pool,
        opts.db,
        opts.settings,
        opts.home,
        nodeId,
        incarnation,
        capture,
        lock,
      );
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw isSyncError(e) ? e : explainDbError(e, opts.db);
    }
  }

  /** Opens an initialised node. */
  static async open(opts: OpenOptions): Promise<SyncNode> {
    const pool = await connect(opts.db);
    try {
      if (!(await isInstalled(pool))) {
        throw new SyncError(
          'state',
          `The database "${opts.db.database}" is not a ClinicSync node; run "clinic-sync init" (or clone) first.`,
        );
      }
      const mode = opts.lock ?? 'wait';
      const lock = mode === 'none' ? null : await takeLock(pool, opts.db.database, mode);
      await migrate(pool);
      const nodeId = (await getMeta(pool, 'node_id'))!;
      const incarnation = (await getMeta(pool, 'incarnation'))!;
      const capture = new Capture(
        pool,
        opts.db.database,
        nodeId,
        tableFilter(opts.settings.tables),
      );
      return new SyncNode(
        pool,
        opts.db,
        opts.settings,
        opts.home,
        nodeId,
        incarnation,
        capture,
        lock,
      );
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw isSyncError(e) ? e : explainDbError(e, opts.db);
    }
  }

  /** Picks up every change committed so far; only the engine holding the node's lock may. */
  async pickup(): Promise<number> {
    if (!this.lock) return 0;
    if (await this.capture.isPaused()) return 0;
    return this.capture.pickupAll();
  }

  async status(): Promise<NodeStatus> {
    await this.pickup();
    const [log] = await queryRows(this.pool, 'SELECT COUNT(*) AS n FROM clinicsync_log');
    // Without the lock, changes not yet picked up are counted by the rows they touched.
    const [unpicked] = this.lock
      ? [{ n: 0 }]
      : await queryRows(this.pool, 'SELECT COUNT(DISTINCT tbl, lkey) AS n FROM clinicsync_capture');
    const [size] = await queryRows(
      this.pool,
      `SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS b FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 'clinicsync\\_%'`,
      [this.db.database],
    );
    return {
      name: (await getMeta(this.pool, 'name')) ?? this.settings.name,
      role: (await getMeta(this.pool, 'role')) === 'child' ? 'child' : 'root',
      parent: this.settings.parent,
      pendingOut: Number(log!.n) + Number(unpicked!.n),
      lastSuccessAt: null,
      lastError: null,
      journalBytes: Number(size!.b),
      capturePaused: await this.capture.isPaused(),
      nodeId: this.nodeId,
      incarnation: this.incarnation,
    };
  }

  async pauseCapture(): Promise<void> {
    await this.capture.pause();
  }

  async resumeCapture(): Promise<void> {
    await this.capture.resume();
  }

  async close(): Promise<void> {
    await this.lock?.release().catch(() => undefined);
    this.lock = null;
    await this.pool.end().catch(() => undefined);
  }
}

async function connect(db: DbTarget): Promise<Pool> {
  const pool = openPool(db);
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw explainDbError(e, db);
  }
  return pool;
}

async function takeLock(
  pool: Pool,
  database: string,
  mode: Exclude<LockMode, 'none'>,
): Promise<NodeLock | null> {
  const holderInfo = describeThisProcess(`clinic-sync ${process.argv[2] ?? 'engine'}`);
  try {
    return await acquireNodeLock(pool, database, { wait: mode === 'wait', holderInfo });
  } catch (e) {
    if (mode === 'prefer' && isSyncError(e) && e.kind === 'locked') return null;
    throw e;
  }
}
