import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { format, type Connection as CallbackConnection } from 'mysql2';
import { openPool, queryRows, type PoolConnection } from '../db/pool.js';
import { q } from '../db/ident.js';
import type { DbTarget } from '../db/url.js';
import { SyncError } from '../errors.js';
import { stripDefiner } from './snapshot.js';

/*
 * Before `clone --replace` empties a database, what it held is saved as a gzip'd SQL dump in the
 * node's home, readable by the standard tools: `gunzip < FILE | mariadb DATABASE` puts it back
 * into an empty database. Read from one consistent snapshot, one table at a time, streamed with
 * backpressure: memory stays bounded whatever the size.
 */

export interface BackupResult {
  file: string;
  tables: number;
  rows: number;
  bytes: number;
}

const INSERT_BYTES = 1_000_000;

export async function backupDatabase(db: DbTarget, file: string): Promise<BackupResult> {
  const pool = openPool(db, { connectionLimit: 1 });
  let conn: PoolConnection | null = null;
  const totals = { tables: 0, rows: 0 };
  const temp = `${file}.part`;
  try {
    conn = await pool.getConnection();
    await conn.query("SET SESSION sql_mode = '', net_write_timeout = 86400, wait_timeout = 86400");
    await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
    const out = fs.createWriteStream(temp, { mode: 0o600 });
    await pipeline(Readable.from(dumpLines(conn, db.database, totals)), createGzip(), out);
    await conn.query('COMMIT');
    await fs.promises.rename(temp, file);
    return { file, ...totals, bytes: fs.statSync(file).size };
  } catch (e) {
    await fs.promises.rm(temp, { force: true });
    throw new SyncError(
      'state',
      `The old contents of ${db.database} could not be saved to ${file} (${(e as Error).message.replace(/\.$/, '')}), so nothing was replaced.`,
      { cause: e },
    );
  } finally {
    conn?.destroy();
    await pool.end().catch(() => undefined);
  }
}

async function* dumpLines(
  conn: PoolConnection,
  database: string,
  totals: { tables: number; rows: number },
): AsyncGenerator<string> {
  yield `-- ClinicSync: the contents of \`${database.replace(/`/g, '``')}\` on ${new Date().toISOString()}, saved before a clone replaced them.\n`;
  yield '-- Restore into an empty database with: gunzip < FILE | mariadb DATABASE\n';
  yield "SET NAMES utf8mb4;\nSET time_zone = '+00:00';\nSET FOREIGN_KEY_CHECKS = 0;\nSET UNIQUE_CHECKS = 0;\nSET SQL_MODE = 'NO_AUTO_VALUE_ON_ZERO';\n\n";
  const tables = await queryRows(
    conn,
    "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
    [database],
  );
  for (const { t } of tables) {
    const name = String(t);
    const [show] = await queryRows(conn, `SHOW CREATE TABLE ${q(name)}`);
    yield `${String(show?.['Create Table'])};\n`;
    yield* tableInserts(conn, database, name, totals);
    totals.tables++;
  }
  // Views after the tables; a view that uses another comes after it.
  const views = await queryRows(
    conn,
    'SELECT TABLE_NAME AS t FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
    [database],
  );
  const texts = new Map<string, string>();
  for (const { t } of views) {
    const [show] = await queryRows(conn, `SHOW CREATE VIEW ${q(String(t))}`);
    texts.set(String(t), stripDefiner(String(show?.['Create View'])));
  }
  for (const name of viewOrder(texts)) yield `${texts.get(name)};\n`;
  yield '\nDELIMITER ;;\n';
  const routines = await queryRows(
    conn,
    'SELECT ROUTINE_NAME AS n, ROUTINE_TYPE AS t FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME',
    [database],
  );
  for (const r of routines) {
    const kind = r.t === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE';
    const [show] = await queryRows(conn, `SHOW CREATE ${kind} ${q(String(r.n))}`);
    const text = show?.[kind === 'FUNCTION' ? 'Create Function' : 'Create Procedure'];
    if (text == null) continue;
    yield `${format('SET SESSION sql_mode = ?', [String(show?.sql_mode ?? '')])};;\n${stripDefiner(String(text))};;\n`;
  }
  const triggers = await queryRows(
    conn,
    `SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?
      ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER`,
    [database],
  );
  for (const r of triggers) {
    const [show] = await queryRows(conn, `SHOW CREATE TRIGGER ${q(String(r.n))}`);
    const text = show?.['SQL Original Statement'];
    if (text == null) continue;
    yield `${format('SET SESSION sql_mode = ?', [String(show?.sql_mode ?? '')])};;\n${stripDefiner(String(text))};;\n`;
  }
  const events = await queryRows(
    conn,
    'SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME',
    [database],
  );
  for (const r of events) {
    const [show] = await queryRows(conn, `SHOW CREATE EVENT ${q(String(r.n))}`);
    const text = show?.['Create Event'];
    if (text == null) continue;
    yield `${format('SET SESSION sql_mode = ?', [String(show?.sql_mode ?? '')])};;\n${stripDefiner(String(text))};;\n`;
  }
  yield 'DELIMITER ;\n';
}

/** One table's rows as multi-row INSERTs of about 1 MB, read by one streaming SELECT. */
async function* tableInserts(
  conn: PoolConnection,
  database: string,
  table: string,
  totals: { rows: number },
): AsyncGenerator<string> {
  const columns = await queryRows(
    conn,
    `SELECT COLUMN_NAME AS c, DATA_TYPE AS d, EXTRA AS x FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
    [database, table],
  );
  const stored = columns.filter((c) => !/\b(virtual|stored|persistent)\b/i.test(String(c.x)));
  if (!stored.length) return;
  const select = stored
    .map((c) =>
      String(c.d).toLowerCase() === 'float' ? `(${q(String(c.c))} + 0E0)` : q(String(c.c)),
    )
    .join(', ');
  const head = `INSERT INTO ${q(table)} (${stored.map((c) => q(String(c.c))).join(', ')}) VALUES `;
  const one = `(${stored.map(() => '?').join(', ')})`;
  const raw = (conn as unknown as { connection: CallbackConnection }).connection;
  const stream = raw
    .query({
      sql: `SELECT ${select} FROM ${q(table)}`,
      rowsAsArray: true,
      typeCast: (field, next) =>
        field.type === 'GEOMETRY'
          ? field.buffer()
          : field.type === 'JSON'
            ? field.string('utf8')
            : next(),
    })
    .stream({ highWaterMark: 256 });
  let values: string[] = [];
  let size = 0;
  try {
    for await (const row of stream as AsyncIterable<(string | Buffer | number | null)[]>) {
      const v = format(one, row);
      values.push(v);
      size += v.length;
      totals.rows++;
      if (size >= INSERT_BYTES) {
        yield `${head}${values.join(',')};\n`;
        values = [];
        size = 0;
      }
    }
  } finally {
    if (!stream.destroyed) stream.destroy();
  }
  if (values.length) yield `${head}${values.join(',')};\n`;
}

/** Views in an order where each comes after the views its text names. */
function viewOrder(texts: Map<string, string>): string[] {
  const order: string[] = [];
  const placed = new Set<string>();
  const visit = (name: string, path: Set<string>) => {
    if (placed.has(name) || path.has(name)) return;
    path.add(name);
    for (const other of texts.keys()) {
      if (other !== name && texts.get(name)!.includes(q(other))) visit(other, path);
    }
    placed.add(name);
    order.push(name);
  };
  for (const name of texts.keys()) visit(name, new Set());
  return order;
}
