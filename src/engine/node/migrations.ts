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
  // 2: identities, per-column clocks, neighbours, version vectors, tombstones, parked changes, conflicts
  [
    `ALTER TABLE clinicsync_row
       MODIFY ident TEXT CHARACTER SET utf8mb4 NULL,
       ADD COLUMN ihash BINARY(16) NULL,
       ADD COLUMN clocks MEDIUMTEXT NULL,
       ADD KEY tbl_ihash (tbl, ihash)`,
    // lsn: this node's own order of arrival, the order changes are passed on in
    `ALTER TABLE clinicsync_log
       MODIFY ident TEXT CHARACTER SET utf8mb4 NULL,
       ADD COLUMN old_ident TEXT CHARACTER SET utf8mb4 NULL,
       ADD COLUMN lsn BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE`,
    // What this node holds, per origin: the highest contiguous sequence.
    `CREATE TABLE clinicsync_vv (
       origin CHAR(16) CHARACTER SET ascii NOT NULL PRIMARY KEY,
       seq BIGINT UNSIGNED NOT NULL
     ) ENGINE=InnoDB`,
    `CREATE TABLE clinicsync_peer (
       node_id CHAR(16) CHARACTER SET ascii NOT NULL PRIMARY KEY,
       name VARCHAR(64) NOT NULL,
       relation VARCHAR(8) CHARACTER SET ascii NOT NULL,
       incarnation CHAR(8) CHARACTER SET ascii NULL,
       url VARCHAR(255) NULL,
       acked_lsn BIGINT UNSIGNED NOT NULL DEFAULT 0,
       last_contact_at DATETIME(3) NULL,
       UNIQUE KEY peer_name (relation, name)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // What each neighbour holds (its last version vector): its acknowledgement.
    `CREATE TABLE clinicsync_peer_vv (
       peer CHAR(16) CHARACTER SET ascii NOT NULL,
       origin CHAR(16) CHARACTER SET ascii NOT NULL,
       seq BIGINT UNSIGNED NOT NULL,
       PRIMARY KEY (peer, origin)
     ) ENGINE=InnoDB`,
    `CREATE TABLE clinicsync_tombstone (
       tbl VARCHAR(64) NOT NULL,
       ihash BINARY(16) NOT NULL,
       ident TEXT CHARACTER SET utf8mb4 NOT NULL,
       hlc BIGINT UNSIGNED NOT NULL,
       origin CHAR(16) CHARACTER SET ascii NOT NULL,
       at DATETIME NOT NULL,
       PRIMARY KEY (tbl, ihash)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // A received change that cannot be applied yet; its content stays in clinicsync_log.
    `CREATE TABLE clinicsync_parked (
       pid BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       origin CHAR(16) CHARACTER SET ascii NOT NULL,
       seq BIGINT UNSIGNED NOT NULL,
       tbl VARCHAR(64) NOT NULL,
       ihash BINARY(16) NOT NULL,
       reason VARCHAR(500) NOT NULL,
       wait_tbl VARCHAR(64) NULL,
       wait_ihash BINARY(16) NULL,
       since DATETIME NOT NULL,
       UNIQUE KEY parked_change (origin, seq),
       KEY parked_row (tbl, ihash)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    `CREATE TABLE clinicsync_conflict (
       id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       tbl VARCHAR(64) NOT NULL,
       ident TEXT CHARACTER SET utf8mb4 NOT NULL,
       columns TEXT NOT NULL,
       winner MEDIUMTEXT NOT NULL,
       loser MEDIUMTEXT NOT NULL,
       winner_origin CHAR(16) CHARACTER SET ascii NOT NULL,
       loser_origin CHAR(16) CHARACTER SET ascii NOT NULL,
       winner_hlc BIGINT UNSIGNED NOT NULL,
       loser_hlc BIGINT UNSIGNED NOT NULL,
       at DATETIME NOT NULL
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
  // 3: talking over the network: pairing codes, neighbours' secrets, replay protection, history
  [
    // On a parent: each child's node secret. On a child the parent's secret lives in its home.
    `ALTER TABLE clinicsync_peer ADD COLUMN secret VARBINARY(64) NULL`,
    // One-time pairing codes, kept only as a hash.
    `CREATE TABLE clinicsync_pairing (
       code_hash BINARY(32) NOT NULL PRIMARY KEY,
       expires_at DATETIME NOT NULL,
       used_at DATETIME NULL,
       used_by CHAR(16) CHARACTER SET ascii NULL
     ) ENGINE=InnoDB`,
    // Nonces seen within the replay window, per neighbour.
    `CREATE TABLE clinicsync_nonce (
       peer CHAR(16) CHARACTER SET ascii NOT NULL,
       nonce CHAR(32) CHARACTER SET ascii NOT NULL,
       at DATETIME NOT NULL,
       PRIMARY KEY (peer, nonce),
       KEY nonce_at (at)
     ) ENGINE=InnoDB`,
    // One row per exchange attempt, for status and history.
    `CREATE TABLE clinicsync_exchange (
       id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       peer CHAR(16) CHARACTER SET ascii NOT NULL,
       started_at DATETIME(3) NOT NULL,
       ms INT UNSIGNED NOT NULL,
       sent INT UNSIGNED NOT NULL,
       received INT UNSIGNED NOT NULL,
       bytes_up INT UNSIGNED NOT NULL,
       bytes_down INT UNSIGNED NOT NULL,
       ok TINYINT(1) NOT NULL,
       error VARCHAR(500) NULL,
       KEY exchange_peer (peer, id)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
  // 4: how far each neighbour's clock is from this node's, for the clock warning
  [`ALTER TABLE clinicsync_peer ADD COLUMN clock_ahead_ms BIGINT NULL`],
  // 5: what an update was made upon (the copy's creation clock, the clocks of the values it
  // replaced), so a delete beats updates to the old copy and concurrent overwrites are logged
  [`ALTER TABLE clinicsync_log ADD COLUMN basis TEXT CHARACTER SET ascii NULL`],
  // 6: complex obs files (files/): the hashes of files here, how far each neighbour holds each of
  // them, and the files arriving, so a cut link or a killed process resumes from the last piece
  [
    `CREATE TABLE clinicsync_file_hash (
       name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
       size BIGINT UNSIGNED NOT NULL,
       mtime_ms BIGINT NOT NULL,
       sha256 CHAR(64) CHARACTER SET ascii NOT NULL
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    `CREATE TABLE clinicsync_file_out (
       peer CHAR(16) CHARACTER SET ascii NOT NULL,
       name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
       sha256 CHAR(64) CHARACTER SET ascii NOT NULL,
       next_offset BIGINT UNSIGNED NOT NULL DEFAULT 0,
       reported TINYINT(1) NOT NULL DEFAULT 0,
       done TINYINT(1) NOT NULL DEFAULT 0,
       PRIMARY KEY (peer, name)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    `CREATE TABLE clinicsync_file_in (
       name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
       sha256 CHAR(64) CHARACTER SET ascii NOT NULL,
       obs_uuid VARCHAR(38) CHARACTER SET ascii NOT NULL,
       size BIGINT UNSIGNED NOT NULL,
       have BIGINT UNSIGNED NOT NULL DEFAULT 0,
       state ENUM('partial', 'staged', 'placed', 'clash', 'refused') NOT NULL DEFAULT 'partial',
       peer CHAR(16) CHARACTER SET ascii NOT NULL,
       answered TINYINT(1) NOT NULL DEFAULT 0,
       KEY file_in_peer (peer, state)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  ],
  // 7: what the running OpenMRS still has to refresh (cache evictions, search index updates) for
  // received changes, kept until OpenMRS confirms, so a restart or a stopped OpenMRS forgets none
  [
    `CREATE TABLE clinicsync_openmrs_refresh (
       id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       what VARCHAR(8) CHARACTER SET ascii NOT NULL,
       resource VARCHAR(64) CHARACTER SET ascii NOT NULL,
       sub_resource VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '',
       uuid VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '',
       origin CHAR(16) CHARACTER SET ascii NULL,
       seq BIGINT UNSIGNED NULL,
       tries INT UNSIGNED NOT NULL DEFAULT 0,
       UNIQUE KEY refresh_target (what, resource, sub_resource, uuid)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    // Changes received before this are not OpenMRS's news any more.
    `INSERT INTO clinicsync_meta (k, v)
       SELECT 'openmrs_refresh_lsn', COALESCE(MAX(lsn), 0) FROM clinicsync_log`,
  ],
  // 8: each neighbour's table fingerprints and OpenMRS versions as it last declared them (and the
  // fingerprint last declared to it, `told`), so rows of a table whose columns differ wait until
  // both sides match, and say why (issue 12)
  [
    `CREATE TABLE clinicsync_peer_table (
       peer CHAR(16) CHARACTER SET ascii NOT NULL,
       tbl VARCHAR(64) NOT NULL,
       fingerprint VARCHAR(64) CHARACTER SET ascii NULL,
       told VARCHAR(64) CHARACTER SET ascii NULL,
       PRIMARY KEY (peer, tbl)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    `CREATE TABLE clinicsync_peer_software (
       peer CHAR(16) CHARACTER SET ascii NOT NULL PRIMARY KEY,
       software TEXT CHARACTER SET ascii NOT NULL
     ) ENGINE=InnoDB`,
    // digests of each neighbour's identifier generators (type and prefix), to warn of two nodes
    // handing out the same patient identifiers
    `CREATE TABLE clinicsync_peer_idgen (
       peer CHAR(16) CHARACTER SET ascii NOT NULL PRIMARY KEY,
       digests TEXT CHARACTER SET ascii NOT NULL
     ) ENGINE=InnoDB`,
    // a value two rows could not share (a username): what happened and what a person can do
    `ALTER TABLE clinicsync_conflict ADD COLUMN explanation TEXT NULL`,
  ],
  // 9: row clocks may write each shared stamp once, under "@stamps" (rowState.clocksText). No
  // table changes, but an older ClinicSync would misread them, so the version marks the format.
  [
    `ALTER TABLE clinicsync_row COMMENT = 'clocks: column -> "hlc:origin", or a position in @stamps'`,
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
