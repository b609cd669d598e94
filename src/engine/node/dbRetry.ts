import type { DbTarget } from '../db/url.js';
import { SyncError, isSyncError } from '../errors.js';

/*
 * A database that goes away for a moment is not a failure of the sync (issue 8, items 3 and 8).
 * InnoDB picks a victim in a deadlock and rolls its transaction back; a server restart or a cut
 * network drops the connection. Every step retried here is one transaction of the engine (apply a
 * batch, build a batch), so a retry either finds the work undone and does it, or finds it done
 * (the commit got through before the connection died) and the version vectors make it a no-op.
 */

/** Driver errors worth another try: the transaction was rolled back or never reached the server. */
const LOCK_CODES = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);
const GONE_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_CON_COUNT_ERROR',
  'ER_QUERY_INTERRUPTED',
]);
/** CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED */
const GONE_ERRNOS = new Set([2006, 2013, 1053, 1927]);

export type DbTrouble = 'lock' | 'gone';

/** What kind of passing trouble a driver error is, looking through causes; null for others. */
export function dbTrouble(e: unknown): DbTrouble | null {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    const err = cur as { code?: unknown; errno?: unknown; cause?: unknown; message?: unknown };
    if (typeof err.code === 'string' && LOCK_CODES.has(err.code)) return 'lock';
    if (typeof err.code === 'string' && GONE_CODES.has(err.code)) return 'gone';
    if (typeof err.errno === 'number' && GONE_ERRNOS.has(err.errno)) return 'gone';
    // mysql2's message when a pooled connection died and a query was queued on it
    if (typeof err.message === 'string' && /connection is in closed state/i.test(err.message))
      return 'gone';
    cur = err.cause;
  }
  return null;
}

/**
 * Whether the error took the whole transaction with it, so no savepoint is left to return to: a
 * deadlock's victim is rolled back whole, a lost connection loses everything. A lock wait timeout
 * undoes only its statement (unless the server runs with innodb_rollback_on_timeout).
 */
export function transactionLost(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    if ((cur as { code?: unknown }).code === 'ER_LOCK_DEADLOCK') return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return dbTrouble(e) === 'gone';
}

export interface DbRetryOptions {
  /** tries in all (default 4) */
  attempts?: number;
  /** first pause, doubled each time (default 250 ms) */
  delayMs?: number;
  /** for the sentence when the database stays away */
  db?: DbTarget;
}

/**
 * Runs `fn`, again after a deadlock or a dropped connection, a few times with growing pauses.
 * When the database stays away the error becomes one sentence of kind 'database', so the
 * schedule waits and tries again later; any other error passes through unchanged.
 */
export async function withDbRetry<T>(fn: () => Promise<T>, opts: DbRetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 4;
  let delay = opts.delayMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const trouble = dbTrouble(e);
      if (trouble === null) throw e;
      if (attempt >= attempts) throw databaseAway(e, trouble, opts.db);
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
      delay *= 2;
    }
  }
}

/** The sentence for a database that did not come back within the retries. */
export function databaseAway(e: unknown, trouble: DbTrouble, db?: DbTarget): SyncError {
  if (isSyncError(e)) return e;
  const where = db ? ` at ${db.host}:${db.port}` : '';
  return new SyncError(
    'database',
    trouble === 'lock'
      ? `The database${where} kept this work waiting behind other work (a deadlock or a long lock); ClinicSync will try again.`
      : `The database${where} is not answering (stopped, restarting or cut off); ClinicSync carries on by itself when it is back.`,
    { cause: e },
  );
}
