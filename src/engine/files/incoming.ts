import fs from 'node:fs/promises';
import path from 'node:path';
import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { fileOfComplexValue } from './fileName.js';
import { freeBytesAt, rememberHash, sha256OfFile, type FilePlaces } from './local.js';
import type { FileChunk, FileMessage, FileOffer } from './message.js';

/*
 * A neighbour's complex obs files arriving here. Each file grows as a partial file in the staging
 * folder, only ever by the next contiguous piece; clinicsync_file_in says how far it got, written
 * after the piece is on disk, so a cut link or a killed process resumes from the last piece. A
 * complete file whose fingerprint matches waits in staging until its obs row is here, then moves
 * into the complex obs folder in one step; it never replaces a different file of the same name.
 */

export interface ReceiveSummary {
  /** bytes of files written here */
  bytes: number;
  /** files that became complete */
  completed: number;
}

function partialPath(places: FilePlaces, name: string): string {
  return path.join(places.stagingDir, `${name}.part`);
}

/** Applies one message from `peer`: its word on our offers, its offers, its pieces. */
export async function receiveFiles(
  db: Queryable,
  places: FilePlaces,
  peer: string,
  msg: FileMessage,
): Promise<ReceiveSummary> {
  for (const h of msg.have) {
    await execute(
      db,
      `UPDATE clinicsync_file_out SET next_offset = ?, done = ?, reported = 1
        WHERE peer = ? AND name = ? AND sha256 = ?`,
      [h.offset, h.done ? 1 : 0, peer, h.name, h.sha256],
    );
  }
  for (const o of msg.offers) await takeOffer(db, places, peer, o);
  const summary: ReceiveSummary = { bytes: 0, completed: 0 };
  // Pieces wait while the disk is nearly full, as rows do; nothing is lost: they are asked again.
  const free = await freeBytesAt(path.dirname(places.stagingDir));
  const incoming = msg.chunks.reduce((n, c) => n + c.data.length, 0);
  if (free !== null && free - incoming < places.minFreeBytes) return summary;
  for (const c of msg.chunks) await takeChunk(db, places, peer, c, summary);
  await placeStaged(db, places);
  return summary;
}

async function takeOffer(
  db: Queryable,
  places: FilePlaces,
  peer: string,
  o: FileOffer,
): Promise<void> {
  const [row] = await queryRows(
    db,
    'SELECT sha256, state, peer FROM clinicsync_file_in WHERE name = ?',
    [o.name],
  );
  const replaced = row && row.state === 'partial' && row.peer === peer;
  if (replaced && String(row.sha256) !== o.sha256) {
    // The file changed at its source before it was all here: start again on the new one.
    await fs.rm(partialPath(places, o.name), { force: true });
    await execute(db, 'DELETE FROM clinicsync_file_in WHERE name = ?', [o.name]);
  } else if (row) {
    // Offered again (our answer was lost): answer again. Another file under the same name is
    // left alone: OpenMRS names its files uniquely, so this one is not ours to take.
    if (String(row.sha256) === o.sha256) {
      await execute(db, 'UPDATE clinicsync_file_in SET answered = 0 WHERE name = ?', [o.name]);
    }
    return;
  }
  let state = 'partial';
  let have = 0;
  if (o.size > places.maxBytes) {
    state = 'refused';
  } else {
    const existing = path.join(places.complexDir, o.name);
    const stat = await fs.stat(existing).catch(() => null);
    if (stat?.isFile()) {
      state = (await sha256OfFile(existing)) === o.sha256 ? 'placed' : 'clash';
      have = o.size;
    }
  }
  await execute(
    db,
    `INSERT INTO clinicsync_file_in (name, sha256, obs_uuid, size, have, state, peer, answered)
     VALUES (?, ?, ?, ?, ?, ?, ?, 0)`,
    [o.name, o.sha256, o.obs, o.size, have, state, peer],
  );
}

async function takeChunk(
  db: Queryable,
  places: FilePlaces,
  peer: string,
  c: FileChunk,
  summary: ReceiveSummary,
): Promise<void> {
  const [row] = await queryRows(
    db,
    "SELECT size, have FROM clinicsync_file_in WHERE name = ? AND sha256 = ? AND state = 'partial'",
    [c.name, c.sha256],
  );
  if (!row) {
    // A piece of a file already complete here: our word on it was lost, so it is given again.
    await execute(
      db,
      "UPDATE clinicsync_file_in SET answered = 0 WHERE name = ? AND sha256 = ? AND state <> 'partial'",
      [c.name, c.sha256],
    );
    return;
  }
  const size = Number(row.size);
  const file = partialPath(places, c.name);
  await fs.mkdir(places.stagingDir, { recursive: true });
  // What is on disk counts only as far as the table says (a write may have outlived its record).
  const onDisk = (await fs.stat(file).catch(() => null))?.size ?? 0;
  const have = Math.min(Number(row.have), onDisk);
  // Only the next contiguous bytes are taken: a piece sent ahead of a lost one is dropped.
  if (c.offset > have) return;
  const from = have - c.offset;
  const to = Math.min(c.data.length, size - c.offset);
  if (from >= to) return;
  const handle = await fs.open(file, onDisk === 0 ? 'w' : 'r+');
  try {
    await handle.write(c.data, from, to - from, have);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const now = have + (to - from);
  summary.bytes += to - from;
  if (now < size) {
    await execute(db, 'UPDATE clinicsync_file_in SET have = ?, peer = ? WHERE name = ?', [
      now,
      peer,
      c.name,
    ]);
    return;
  }
  await fs.truncate(file, size);
  if ((await sha256OfFile(file)) !== c.sha256) {
    // Damaged on the way or on disk: start the file again rather than keep wrong bytes.
    await fs.truncate(file, 0);
    await execute(
      db,
      'UPDATE clinicsync_file_in SET have = 0, answered = 0, peer = ? WHERE name = ?',
      [peer, c.name],
    );
    return;
  }
  await execute(
    db,
    "UPDATE clinicsync_file_in SET have = ?, state = 'staged', answered = 0, peer = ? WHERE name = ?",
    [size, peer, c.name],
  );
  summary.completed++;
}

/**
 * Moves each complete file whose obs row has arrived into the complex obs folder: linked under
 * its name (refused if the name is taken, so nothing is ever overwritten), then the staged copy
 * removed. A file whose row is not here yet stays staged for the next call.
 */
export async function placeStaged(db: Queryable, places: FilePlaces): Promise<number> {
  const staged = await queryRows(
    db,
    "SELECT name, sha256, obs_uuid, size FROM clinicsync_file_in WHERE state = 'staged'",
  );
  let placed = 0;
  for (const s of staged) {
    const name = String(s.name);
    const [obs] = await queryRows(db, 'SELECT value_complex FROM obs WHERE uuid = ?', [
      String(s.obs_uuid),
    ]);
    if (!obs || obs.value_complex == null) continue;
    const value = Buffer.isBuffer(obs.value_complex)
      ? obs.value_complex.toString('utf8')
      : String(obs.value_complex);
    if (fileOfComplexValue(value) !== name) continue;
    const from = partialPath(places, name);
    const to = path.join(places.complexDir, name);
    await fs.mkdir(places.complexDir, { recursive: true });
    let state = 'placed';
    try {
      await putInPlace(from, to);
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'EEXIST') throw e;
      if ((await sha256OfFile(to)) !== String(s.sha256)) state = 'clash';
    }
    if (state === 'placed') {
      await fs.rm(from, { force: true });
      const stat = await fs.stat(to);
      await rememberHash(db, name, stat.size, Math.floor(stat.mtimeMs), String(s.sha256));
      placed++;
    }
    await execute(db, 'UPDATE clinicsync_file_in SET state = ? WHERE name = ?', [state, name]);
  }
  return placed;
}

/**
 * Makes `from` appear at `to` whole or not at all, never over an existing file (EEXIST): a hard
 * link on the same disk; where OpenMRS keeps complex obs on another disk (EXDEV), a copy under a
 * temporary name beside `to`, flushed, then linked into place.
 */
async function putInPlace(from: string, to: string): Promise<void> {
  try {
    await fs.link(from, to);
    return;
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EXDEV') throw e;
  }
  const temp = path.join(path.dirname(to), `.clinicsync-${path.basename(to)}.part`);
  await fs.copyFile(from, temp);
  try {
    const handle = await fs.open(temp, 'r+');
    await handle.sync().finally(() => handle.close());
    await fs.link(temp, to);
  } finally {
    await fs.rm(temp, { force: true });
  }
}
