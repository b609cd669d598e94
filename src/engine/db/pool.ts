import mysql from 'mysql2/promise';
import type { Pool, PoolConnection, RowDataPacket, ResultSetHeader } from 'mysql2/promise';
import { SyncError } from '../errors.js';
import type { DbTarget } from './url.js';

export type { Pool, PoolConnection, RowDataPacket, ResultSetHeader };
export type Queryable = Pool | PoolConnection;

/**
 * One pool per database. Values come back as strings for dates and big numbers (no precision or
 * time-zone surprises), and every session runs in UTC so NOW(6) means the same on every node.
 */
export function openPool(t: DbTarget, opts: { connectionLimit?: number } = {}): Pool {
  const pool = mysql.createPool({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password ?? '',
    database: t.database,
    connectionLimit: opts.connectionLimit ?? 4,
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    timezone: '+00:00',
    charset: 'utf8mb4_general_ci',
    multipleStatements: false,
    enableKeepAlive: true,
    jsonStrings: true,
    // The server allows 16,382 prepared statements in all (max_prepared_stmt_count); the driver
    // would keep 16,000 per connection. Apply's multi-row writes vary in row count, so each
    // connection keeps its most recent few and closes the rest.
    maxPreparedStatements: 64,
  });
  pool.on('connection', (conn) => {
    // The callback-style connection underneath the promise pool.
    conn.query("SET time_zone = '+00:00'");
  });
  return pool;
}

/** Runs fn in one transaction on one connection; rolls back on any error. */
export async function inTransaction<T>(
  pool: Pool,
  fn: (conn: PoolConnection) => Promise<T>,
  opts: { isolation?: 'READ COMMITTED' | 'REPEATABLE READ' } = {},
): Promise<T> {
  const conn = await pool.getConnection();
  try {
    if (opts.isolation) await conn.query(`SET TRANSACTION ISOLATION LEVEL ${opts.isolation}`);
    await conn.beginTransaction();
    try {
      const result = await fn(conn);
      await conn.commit();
      return result;
    } catch (e) {
      await conn.rollback().catch(() => undefined);
      throw e;
    }
  } finally {
    conn.release();
  }
}

export async function queryRows<T extends RowDataPacket = RowDataPacket>(
  db: Queryable,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const [rows] = await db.query<T[]>(sql, params);
  return rows;
}

export async function execute(
  db: Queryable,
  sql: string,
  params: unknown[] = [],
): Promise<ResultSetHeader> {
  const [res] = await db.query<ResultSetHeader>(sql, params);
  return res;
}

/** Splits a list into pieces of at most `size` (IN lists, multi-row statements). */
export function chunks<T>(xs: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/**
 * A write as a prepared statement: the values travel in binary beside the statement instead of
 * being escaped into its text. For the large multi-row writes of apply this halves the client's
 * work (escaping and hex-encoding every value) and the bytes sent. The driver keeps each
 * connection's statements prepared, keyed by their text. Values must be text, bytes or null.
 */
export async function executePrepared(
  db: Queryable,
  sql: string,
  params: (string | number | Buffer | null)[],
): Promise<ResultSetHeader> {
  const [res] = await db.execute<ResultSetHeader>(sql, params);
  return res;
}

/** Turns a driver error into one plain sentence. */
export function explainDbError(e: unknown, t: DbTarget): SyncError {
  const err = e as { code?: string; message?: string };
  const where = `${t.host}:${t.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return new SyncError(
        'database',
        `No database server answers at ${where}; start MariaDB/MySQL and try again.`,
        { cause: e },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SyncError(
        'database',
        `The database host "${t.host}" cannot be found; check its name.`,
        { cause: e },
      );
    case 'ER_ACCESS_DENIED_ERROR':
      return new SyncError(
        'database',
        `The database refused user "${t.user}" at ${where}; check the user name and password.`,
        { cause: e },
      );
    case 'ER_BAD_DB_ERROR':
      return new SyncError(
        'database',
        `The database "${t.database}" does not exist at ${where}; create it or check its name.`,
        { cause: e },
      );
    case 'ER_DBACCESS_DENIED_ERROR':
      return new SyncError(
        'privileges',
        `User "${t.user}" may not use database "${t.database}"; grant it access and try again.`,
        { cause: e },
      );
    default:
      return new SyncError(
        'database',
        `The database at ${where} failed: ${err.message ?? String(e)}.`,
        { cause: e },
      );
  }
}
