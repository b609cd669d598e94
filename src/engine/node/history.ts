import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';

/** One exchange with a neighbour, as the history shows it. */
export interface ExchangeRecord {
  peer: string;
  startedAt: string;
  ms: number;
  sent: number;
  received: number;
  bytesUp: number;
  bytesDown: number;
  ok: boolean;
  error: string | null;
}

export async function recordExchange(db: Queryable, r: ExchangeRecord): Promise<void> {
  await execute(
    db,
    `INSERT INTO clinicsync_exchange (peer, started_at, ms, sent, received, bytes_up, bytes_down, ok, error)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      r.peer,
      r.startedAt.replace('T', ' ').replace('Z', ''),
      r.ms,
      r.sent,
      r.received,
      r.bytesUp,
      r.bytesDown,
      r.ok ? 1 : 0,
      r.error?.slice(0, 500) ?? null,
    ],
  );
}

export async function exchangeHistory(db: Queryable, limit = 100): Promise<ExchangeRecord[]> {
  const rows = await queryRows(
    db,
    'SELECT peer, started_at, ms, sent, received, bytes_up, bytes_down, ok, error FROM clinicsync_exchange ORDER BY id DESC LIMIT ?',
    [limit],
  );
  return rows.map((r) => ({
    peer: String(r.peer),
    startedAt: isoOf(String(r.started_at)),
    ms: Number(r.ms),
    sent: Number(r.sent),
    received: Number(r.received),
    bytesUp: Number(r.bytes_up),
    bytesDown: Number(r.bytes_down),
    ok: Number(r.ok) === 1,
    error: r.error == null ? null : String(r.error),
  }));
}

/** The last success, and the last error if it came after it. */
export async function lastExchanges(
  db: Queryable,
): Promise<{ lastSuccessAt: string | null; lastError: string | null }> {
  const [ok] = await queryRows(
    db,
    'SELECT MAX(id) AS id, MAX(started_at) AS at FROM clinicsync_exchange WHERE ok = 1',
  );
  const [bad] = await queryRows(
    db,
    'SELECT id, error FROM clinicsync_exchange WHERE ok = 0 ORDER BY id DESC LIMIT 1',
  );
  const okId = ok?.id == null ? 0 : Number(ok.id);
  return {
    lastSuccessAt: ok?.at == null ? null : isoOf(String(ok.at)),
    lastError:
      bad && Number(bad.id) > okId ? String(bad.error ?? 'The last exchange failed.') : null,
  };
}

function isoOf(sqlTime: string): string {
  return new Date(sqlTime.replace(' ', 'T') + 'Z').toISOString();
}
