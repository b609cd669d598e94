import cron from 'node-cron';
import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { hlcFromMillis } from '../clock/hlc.js';

/*
 * Bounded growth (DESIGN §9, issue 8 item 7). Every change a node holds stays in clinicsync_log
 * until every neighbour holds it too (its version vector, the acknowledgement, says so); then
 * nobody will ever ask for it again and it is deleted. Except:
 *
 * - parked changes: their content lives in the log until they are applied;
 * - changes stamped within storage.journalKeepHours: a child whose answer was lost resends its
 *   changes, and the parent's verdict on their clocks (DESIGN §6) is read from its log;
 * - the newest row: MySQL 5.x forgets an empty table's AUTO_INCREMENT on restart, and the log's
 *   positions (lsn), which neighbours' acknowledgements point into, must never start again.
 *
 * A child silent for longer than storage.childSilentDays would hold every change since for ever:
 * it is marked as needing a re-clone and stops counting for the pruning, which releases its
 * backlog. When it comes back it is told so (transport/server.ts) and makes itself again.
 *
 * The exchange history keeps its most recent rows only.
 */

/** Rows deleted per statement, so no single transaction holds the log for long. */
const CHUNK = 5_000;
/** Exchange attempts kept for the history. */
const KEEP_EXCHANGES = 10_000;
const DAY_MS = 86_400_000;

export interface PruneOptions {
  /** days without contact after which a child must be cloned again */
  childSilentDays: number;
  /** hours a change is kept after its stamp, whatever the acknowledgements */
  journalKeepHours: number;
  /** this node's clock, ms */
  now?: number;
}

export interface PruneResult {
  /** log rows deleted */
  logRows: number;
  /** children newly marked as needing a re-clone: their names */
  silentChildren: string[];
}

const recloneKey = (nodeId: string) => `reclone_${nodeId}`;

/** When a child was marked as needing a re-clone (ISO), or null. */
export async function recloneMarkedAt(db: Queryable, nodeId: string): Promise<string | null> {
  const [r] = await queryRows(db, 'SELECT v FROM clinicsync_meta WHERE k = ?', [
    recloneKey(nodeId),
  ]);
  return r ? String(r.v) : null;
}

/** The sentence a marked child hears on every request until it is cloned again. */
export function recloneSentence(days: number): string {
  return `This clinic was out of contact with the main server for more than ${days} days, so the main server no longer keeps the changes it would need; make this clinic again with "clinic-sync clone" (a new, empty database and a new pairing code).`;
}

export async function pruneJournal(db: Queryable, opts: PruneOptions): Promise<PruneResult> {
  const now = opts.now ?? Date.now();
  const silentChildren = await markSilentChildren(db, now - opts.childSilentDays * DAY_MS, now);

  const peers = await queryRows(db, 'SELECT node_id FROM clinicsync_peer');
  const counted: string[] = [];
  for (const p of peers) {
    const id = String(p.node_id);
    if ((await recloneMarkedAt(db, id)) === null) counted.push(id);
  }
  let logRows = 0;
  // With no neighbour to count, nothing says who will need the changes; keep them.
  if (counted.length) {
    const [last] = await queryRows(db, 'SELECT COALESCE(MAX(lsn), 0) AS m FROM clinicsync_log');
    const before = hlcFromMillis(now - opts.journalKeepHours * 3_600_000).toString();
    for (;;) {
      const res = await execute(
        db,
        `DELETE FROM clinicsync_log
          WHERE lsn < ? AND hlc < ?
            AND NOT EXISTS (SELECT 1 FROM clinicsync_parked k WHERE k.origin = clinicsync_log.origin AND k.seq = clinicsync_log.seq)
            AND NOT EXISTS (
              SELECT 1 FROM clinicsync_peer p
                LEFT JOIN clinicsync_peer_vv v ON v.peer = p.node_id AND v.origin = clinicsync_log.origin
               WHERE p.node_id IN (${counted.map(() => '?').join(', ')})
                 AND (clinicsync_log.src IS NULL OR clinicsync_log.src <> p.node_id)
                 AND clinicsync_log.seq > COALESCE(v.seq, 0))
          LIMIT ${CHUNK}`,
        [String(last!.m), before, ...counted],
      );
      logRows += res.affectedRows;
      if (res.affectedRows < CHUNK) break;
    }
  }
  const [top] = await queryRows(db, 'SELECT COALESCE(MAX(id), 0) AS m FROM clinicsync_exchange');
  await execute(db, 'DELETE FROM clinicsync_exchange WHERE id <= ?', [
    Number(top!.m) - KEEP_EXCHANGES,
  ]);
  return { logRows, silentChildren };
}

/** Marks children last heard from (or paired, if never heard from) before `since`. */
async function markSilentChildren(db: Queryable, since: number, now: number): Promise<string[]> {
  const rows = await queryRows(
    db,
    `SELECT p.node_id, p.name, COALESCE(p.last_contact_at, (
         SELECT MAX(c.used_at) FROM clinicsync_pairing c WHERE c.used_by = p.node_id)) AS seen
       FROM clinicsync_peer p WHERE p.relation = 'child'`,
  );
  const marked: string[] = [];
  for (const r of rows) {
    if (r.seen == null) continue;
    const seen = Date.parse(`${String(r.seen).replace(' ', 'T')}Z`);
    if (!(seen < since)) continue;
    const id = String(r.node_id);
    if ((await recloneMarkedAt(db, id)) !== null) continue;
    await execute(db, 'INSERT IGNORE INTO clinicsync_meta (k, v) VALUES (?, ?)', [
      recloneKey(id),
      new Date(now).toISOString(),
    ]);
    marked.push(String(r.name));
  }
  return marked;
}

export interface Pruner {
  /** prunes now (and waits for a run in progress first) */
  runNow(): Promise<PruneResult | null>;
  stop(): Promise<void>;
}

/**
 * Prunes at once and then every ten minutes, for as long as the node runs (serve). A failure is
 * logged and the next run tries again; a run never overlaps the one before.
 */
export function startPruning(opts: {
  db: Queryable;
  settings: () => Pick<PruneOptions, 'childSilentDays' | 'journalKeepHours'>;
  log: (level: 'info' | 'warn', message: string) => void;
}): Pruner {
  let running: Promise<PruneResult | null> | null = null;
  const run = (): Promise<PruneResult | null> => {
    running ??= pruneJournal(opts.db, opts.settings())
      .then(
        (r) => {
          for (const name of r.silentChildren) {
            opts.log(
              'warn',
              `The clinic "${name}" has been silent for more than ${opts.settings().childSilentDays} days; the changes kept for it were released, and it must be cloned again.`,
            );
          }
          return r;
        },
        (e: unknown) => {
          opts.log(
            'warn',
            `Pruning the journal failed (${e instanceof Error ? e.message : String(e)}); it is tried again later.`,
          );
          return null;
        },
      )
      .finally(() => {
        running = null;
      });
    return running;
  };
  const task = cron.schedule('0 */10 * * * *', () => void run(), {
    name: 'clinicsync-prune',
    noOverlap: true,
  });
  void run();
  return {
    async runNow() {
      if (running) await running;
      return run();
    },
    async stop() {
      await task.destroy();
      if (running) await running;
    },
  };
}
