import type { Pool } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { SyncError } from '../errors.js';

/**
 * ClinicSync's own tables, in the application database (DESIGN §3). Each step runs once, in order,
 * and is never edited after release: a later change is a new step (forward only).
 */
const STEPS: string[][] = [
  // 1: node facts, the capture journal, recorded row state, the outgoing log
  [
    `CREATE TABLE IF NOT EXISTS clinicsync_meta (
       k VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
       v TEXT NOT NULL
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // Written by the triggers in the application's own transaction; rows are deleted once picked up.
    `CREATE TABLE IF NOT EXISTS clinicsync_capture (
       id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       tbl VARCHAR(64) NOT NULL,
       op CHAR(1) CHARACTER SET ascii NOT NULL,
       lkey TEXT CHARACTER SET ascii NULL,
       old_lkey TEXT CHARACTER SET ascii NULL,
       old_uuid VARCHAR(64) CHARACTER SET ascii NULL,
       at DATETIME(6) NOT NULL
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // The column lists that row-state hashes were computed over, so a schema change can be diffed.
    `CREATE TABLE IF NOT EXISTS clinicsync_colset (
       id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       tbl VARCHAR(64) NOT NULL,
       cols MEDIUMTEXT NOT NULL,
       fingerprint VARCHAR(32) CHARACTER SET ascii NOT NULL,
       UNIQUE KEY tbl_fp (tbl, fingerprint)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // What the engine last recorded of each synced row: its key, identity and per-column hashes.
    `CREATE TABLE IF NOT EXISTS clinicsync_row (
       tbl VARCHAR(64) NOT NULL,
       khash BINARY(16) NOT NULL,
       lkey TEXT CHARACTER SET ascii NOT NULL,
       ident VARCHAR(255) CHARACTER SET utf8mb4 NULL,
       colset INT UNSIGNED NOT NULL,
       hashes BLOB NOT NULL,
       n INT UNSIGNED NOT NULL DEFAULT 1,
       PRIMARY KEY (tbl, khash)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // Every change this node holds, its own and received ones, by (origin, dense sequence).
    `CREATE TABLE IF NOT EXISTS clinicsync_log (
       origin CHAR(16) CHARACTER SET ascii NOT NULL,
       seq BIGINT UNSIGNED NOT NULL,
       hlc BIGINT UNSIGNED NOT NULL,
       tbl VARCHAR(64) NOT NULL,
       op CHAR(1) CHARACTER SET ascii NOT NULL,
       lkey TEXT CHARACTER SET ascii NULL,
       old_lkey TEXT CHARACTER SET ascii NULL,
       ident VARCHAR(255) CHARACTER SET utf8mb4 NULL,
       payload MEDIUMTEXT NULL,
       src CHAR(16) CHARACTER SET ascii NULL,
       PRIMARY KEY (origin, seq)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
];

export const SCHEMA_VERSION = STEPS.length;

async function currentVersion(pool: Pool): Promise<number> {
  const t = await queryRows(
    pool,
    "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clinicsync_meta'",
  );
  if (!t.length) return 0;
  const rows = await queryRows(pool, "SELECT v FROM clinicsync_meta WHERE k = 'schema_version'");
  return rows.length ? Number(rows[0]!.v) : 0;
}

/** Brings ClinicSync's tables to the current version; refuses a database from a newer ClinicSync. */
export async function migrate(pool: Pool): Promise<number> {
  const from = await currentVersion(pool);
  if (from > SCHEMA_VERSION) {
    throw new SyncError(
      'state',
      `This database was set up by a newer ClinicSync (schema ${from}, this one knows ${SCHEMA_VERSION}); install the newer version.`,
    );
  }
  for (let v = from; v < SCHEMA_VERSION; v++) {
    for (const sql of STEPS[v]!) await execute(pool, sql);
    await execute(
      pool,
      "INSERT INTO clinicsync_meta (k, v) VALUES ('schema_version', ?) ON DUPLICATE KEY UPDATE v = VALUES(v)",
      [String(v + 1)],
    );
  }
  return from;
}

/** True when this database holds a ClinicSync node. */
export async function isInstalled(pool: Pool): Promise<boolean> {
  return (await currentVersion(pool)) > 0;
}
