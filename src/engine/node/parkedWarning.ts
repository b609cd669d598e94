import type { Queryable } from '../db/pool.js';
import { queryRows } from '../db/pool.js';

/** A received change waiting longer than this is reported: a day, as clinics sync several times a day. */
export const PARKED_TOO_LONG_MS = 24 * 3600_000;

/**
 * Null, or a sentence for status when received changes have waited too long (DESIGN §6): how many,
 * since when, and the oldest one's reason as apply wrote it, so a data manager knows where to look.
 */
export async function parkedWarning(db: Queryable, nowMs: number): Promise<string | null> {
  const cutoff = new Date(nowMs - PARKED_TOO_LONG_MS).toISOString().slice(0, 19).replace('T', ' ');
  const [r] = await queryRows(
    db,
    `SELECT COUNT(*) AS n, MIN(since) AS oldest,
            (SELECT reason FROM clinicsync_parked WHERE since < ? ORDER BY pid LIMIT 1) AS reason
       FROM clinicsync_parked WHERE since < ?`,
    [cutoff, cutoff],
  );
  const n = Number(r!.n);
  if (n === 0) return null;
  const since = String(r!.oldest).slice(0, 16);
  const what = n === 1 ? '1 received change has' : `${n} received changes have`;
  return `${what} waited more than a day (the oldest since ${since} UTC). The oldest: ${String(r!.reason)} Open "Waiting rows" to see them all.`;
}
