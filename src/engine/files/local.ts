import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { hasColumns } from '../db/schema.js';
import type { Settings } from '../config/settings.js';
import { fileOfComplexValue } from './fileName.js';

/*
 * The complex obs files on this computer: where OpenMRS keeps them, and which of them belong to an
 * obs row here. The table and columns are OpenMRS's own (obs.uuid, obs.value_complex,
 * global_property); each is checked to exist before it is queried.
 */

/** Where the files of one node live, or null when the node does not handle files. */
export interface FilePlaces {
  /** OpenMRS's complex obs folder */
  complexDir: string;
  /** ClinicSync's folder for files on their way in (beside complex_obs: same disk, atomic moves) */
  stagingDir: string;
  /** the largest file carried, bytes */
  maxBytes: number;
  chunkBytes: number;
  /** free space kept on the data folder's disk (storage.minFreeMegabytes): no piece goes below */
  minFreeBytes: number;
}

export interface LocalFile {
  obs: string;
  name: string;
  size: number;
  sha256: string;
}

/**
 * The node's file folders, from the setting complexObs.dataDir and OpenMRS's global property
 * obs.complex_obs_dir (a folder inside the application data folder, or an absolute one; default
 * complex_obs). Null when the setting is empty or the database has no obs table with files.
 */
export async function filePlaces(db: Queryable, settings: Settings): Promise<FilePlaces | null> {
  const dataDir = settings.complexObs.dataDir?.trim();
  if (!dataDir) return null;
  if (!(await hasColumns(db, 'obs', ['uuid', 'value_complex']))) return null;
  let sub = 'complex_obs';
  if (await hasColumns(db, 'global_property', ['property', 'property_value'])) {
    const [gp] = await queryRows(
      db,
      "SELECT property_value AS v FROM global_property WHERE property = 'obs.complex_obs_dir'",
    );
    const v = gp?.v == null ? '' : String(gp.v).trim();
    if (v) sub = v;
  }
  return {
    complexDir: path.isAbsolute(sub) ? sub : path.join(dataDir, sub),
    stagingDir: path.join(dataDir, 'clinicsync-staging'),
    maxBytes: settings.complexObs.maxFileMegabytes * 1024 * 1024,
    chunkBytes: settings.complexObs.chunkBytes,
    minFreeBytes: settings.storage.minFreeMegabytes * 1024 * 1024,
  };
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const part of createReadStream(file)) hash.update(part as Buffer);
  return hash.digest('hex');
}

/**
 * The last list of files per database, with what it was read at: a full read of obs (millions
 * of rows on a district server) runs again only when a change was captured or picked up since,
 * or a file was added to or removed from the complex obs folder (OpenMRS never rewrites one).
 */
const lastList = new WeakMap<Queryable, { at: string; files: LocalFile[] }>();

async function listedAt(db: Queryable, places: FilePlaces): Promise<string> {
  const [log] = await queryRows(db, 'SELECT MAX(lsn) AS n FROM clinicsync_log');
  const [cap] = await queryRows(db, 'SELECT MAX(id) AS n FROM clinicsync_capture');
  const dir = await fs.stat(places.complexDir).catch(() => null);
  return [places.complexDir, places.maxBytes, log?.n, cap?.n, dir?.mtimeMs].map(String).join(':');
}

/**
 * Every complex obs file here whose obs row is here too, at most `places.maxBytes` each. Hashes
 * are kept in clinicsync_file_hash by size and modification time, so a file is read once.
 */
export async function localFiles(db: Queryable, places: FilePlaces): Promise<LocalFile[]> {
  const at = await listedAt(db, places);
  const last = lastList.get(db);
  if (last?.at === at) return last.files;
  const files = await readLocalFiles(db, places);
  lastList.set(db, { at, files });
  return files;
}

async function readLocalFiles(db: Queryable, places: FilePlaces): Promise<LocalFile[]> {
  const rows = await queryRows(
    db,
    "SELECT uuid, value_complex FROM obs WHERE value_complex IS NOT NULL AND value_complex <> ''",
  );
  const cached = new Map(
    (await queryRows(db, 'SELECT name, size, mtime_ms, sha256 FROM clinicsync_file_hash')).map(
      (r) => [String(r.name), r],
    ),
  );
  const out: LocalFile[] = [];
  for (const r of rows) {
    const value = Buffer.isBuffer(r.value_complex)
      ? r.value_complex.toString('utf8')
      : String(r.value_complex);
    const name = fileOfComplexValue(value);
    if (!name) continue;
    const file = path.join(places.complexDir, name);
    const stat = await fs.stat(file).catch(() => null);
    if (!stat?.isFile() || stat.size > places.maxBytes) continue;
    const mtime = Math.floor(stat.mtimeMs);
    const c = cached.get(name);
    let sha256: string;
    if (c && Number(c.size) === stat.size && Number(c.mtime_ms) === mtime) {
      sha256 = String(c.sha256);
    } else {
      sha256 = await sha256OfFile(file);
      await rememberHash(db, name, stat.size, mtime, sha256);
    }
    out.push({ obs: String(r.uuid), name, size: stat.size, sha256 });
  }
  return out;
}

export async function rememberHash(
  db: Queryable,
  name: string,
  size: number,
  mtimeMs: number,
  sha256: string,
): Promise<void> {
  await execute(
    db,
    `INSERT INTO clinicsync_file_hash (name, size, mtime_ms, sha256) VALUES (?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE size = VALUES(size), mtime_ms = VALUES(mtime_ms), sha256 = VALUES(sha256)`,
    [name, size, mtimeMs, sha256],
  );
}

/** Free bytes on the disk of the data folder, or null when the system does not say. */
export async function freeBytesAt(dir: string): Promise<number | null> {
  const stat = await fs.statfs(dir).catch(() => null);
  return stat ? Number(stat.bavail) * Number(stat.bsize) : null;
}
