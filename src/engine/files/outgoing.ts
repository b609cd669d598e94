import fs from 'node:fs/promises';
import path from 'node:path';
import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { localFiles, type FilePlaces } from './local.js';
import { placeStaged } from './incoming.js';
import {
  MAX_ENTRIES,
  PIECE_HEADER_BYTES,
  emptyMessage,
  headerBytes,
  type FileMessage,
} from './message.js';

/*
 * The next file message for a neighbour: answers to its offers, offers of files here it has not
 * answered for, and pieces of the files it wants, from where it said it holds them, within a byte
 * budget. Over the network pieces go only from what the neighbour last said it holds (its answer
 * comes back in the same round); on a USB key nobody answers until the key comes back, so the
 * pieces written are counted as sent (`optimistic`) and the next file carries the rest. A lost
 * key costs nothing: the neighbour's next answer moves the offset back to what it really holds.
 */

/** Offers per message: a few hundred bytes each, so a slow link is not spent on them. */
const MAX_OFFERS = 20;

export interface BuildOptions {
  /** the most bytes the message may take */
  budget: number;
  optimistic: boolean;
}

export async function buildFiles(
  db: Queryable,
  places: FilePlaces,
  peer: string,
  opts: BuildOptions,
): Promise<FileMessage> {
  const msg = emptyMessage();
  await placeStaged(db, places);
  // A file refused for its size is asked for again, from the start, once the limit takes it.
  await execute(
    db,
    "UPDATE clinicsync_file_in SET state = 'partial', have = 0, answered = 0 WHERE peer = ? AND state = 'refused' AND size <= ?",
    [peer, places.maxBytes],
  );

  const answers = await queryRows(
    db,
    "SELECT name, sha256, have, state FROM clinicsync_file_in WHERE peer = ? AND (answered = 0 OR state = 'partial') ORDER BY name LIMIT 1000",
    [peer],
  );
  for (const a of answers) {
    msg.have.push({
      name: String(a.name),
      sha256: String(a.sha256),
      offset: Number(a.have),
      done: a.state !== 'partial',
    });
  }

  const here = await localFiles(db, places);
  // Files that came from this neighbour are not offered back to it.
  const fromPeer = new Set(
    (
      await queryRows(
        db,
        "SELECT name FROM clinicsync_file_in WHERE peer = ? AND state = 'placed'",
        [peer],
      )
    ).map((r) => String(r.name)),
  );
  const known = new Map(
    (
      await queryRows(
        db,
        'SELECT name, sha256, next_offset, reported, done FROM clinicsync_file_out WHERE peer = ?',
        [peer],
      )
    ).map((r) => [String(r.name), r]),
  );
  const pending: {
    obs: string;
    name: string;
    size: number;
    sha256: string;
    next: number;
    reported: boolean;
  }[] = [];
  for (const f of here) {
    const k = known.get(f.name);
    if (!k || String(k.sha256) !== f.sha256) {
      const done = fromPeer.has(f.name) ? 1 : 0;
      await execute(
        db,
        `INSERT INTO clinicsync_file_out (peer, name, sha256, next_offset, reported, done) VALUES (?, ?, ?, 0, 0, ?)
         ON DUPLICATE KEY UPDATE sha256 = VALUES(sha256), next_offset = 0, reported = 0, done = VALUES(done)`,
        [peer, f.name, f.sha256, done],
      );
      if (!done) pending.push({ ...f, next: 0, reported: false });
    } else if (!Number(k.done)) {
      pending.push({ ...f, next: Number(k.next_offset), reported: Number(k.reported) === 1 });
    }
  }

  const sendable = pending.filter((p) => p.reported || opts.optimistic);
  for (const p of pending) {
    if (!p.reported && msg.offers.length < MAX_OFFERS) {
      msg.offers.push({ obs: p.obs, name: p.name, size: p.size, sha256: p.sha256 });
    }
  }
  const offered = new Set(msg.offers.map((o) => o.name));
  let room = opts.budget - headerBytes(msg, 0);
  for (const p of sendable) {
    if (!p.reported && !offered.has(p.name)) continue;
    let next = p.next;
    const handle = await fs.open(path.join(places.complexDir, p.name), 'r').catch(() => null);
    if (!handle) continue;
    try {
      while (next < p.size) {
        const length = Math.min(places.chunkBytes, p.size - next);
        // At least one piece per message, however small the budget: the file must move.
        if (msg.chunks.length && room < length + PIECE_HEADER_BYTES) break;
        if (msg.chunks.length >= MAX_ENTRIES) break;
        const data = Buffer.alloc(length);
        const { bytesRead } = await handle.read(data, 0, length, next);
        if (bytesRead !== length) break;
        msg.chunks.push({ name: p.name, sha256: p.sha256, offset: next, data });
        room -= length + PIECE_HEADER_BYTES;
        next += length;
      }
    } finally {
      await handle.close();
    }
    if (opts.optimistic && next !== p.next) {
      await execute(
        db,
        'UPDATE clinicsync_file_out SET next_offset = ? WHERE peer = ? AND name = ?',
        [next, peer, p.name],
      );
    }
    if (room <= 0 || msg.chunks.length >= MAX_ENTRIES) break;
  }
  return msg;
}

/** Marks the answers in a message as given, once the message has gone out. */
export async function answersSent(db: Queryable, peer: string, msg: FileMessage): Promise<void> {
  for (const h of msg.have) {
    await execute(
      db,
      'UPDATE clinicsync_file_in SET answered = 1 WHERE peer = ? AND name = ? AND sha256 = ?',
      [peer, h.name, h.sha256],
    );
  }
}
