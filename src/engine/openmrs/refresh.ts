import type { Pool, Queryable } from '../db/pool.js';
import { execute, inTransaction, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import type { Home } from '../config/home.js';
import { OPENMRS_PASSWORD_SECRET } from './password.js';
import type { Settings } from '../config/settings.js';
import { callOpenmrs, type RefreshCall, type RefreshKind } from './restCalls.js';

/*
 * Keeps a running OpenMRS in step with the rows ClinicSync writes under it (issue "OpenMRS-aware",
 * item 1). After each applied batch, the received changes to the tables below are turned into
 * refresh calls in clinicsync_openmrs_refresh (in the node's own transaction order, from the log,
 * so a change applied later, once a row it needed arrived, is caught too). A background loop sends
 * them to OpenMRS in batches and deletes each once OpenMRS confirms it; when OpenMRS is away the
 * rest waits, retried with growing pauses. Nothing here can fail or slow down the sync itself.
 */

/** What a change to a table asks of OpenMRS: the REST resource, and whether it is searchable. */
interface Target {
  resource: string;
  subResource: string;
  /** OpenMRS searches it (patients by name and identifier, concepts by name) */
  index: boolean;
}

const TARGETS: Record<string, Target> = {
  person: { resource: 'person', subResource: '', index: true },
  patient: { resource: 'patient', subResource: '', index: true },
  person_name: { resource: 'person', subResource: 'name', index: true },
  patient_identifier: { resource: 'patient', subResource: 'identifier', index: true },
  concept: { resource: 'concept', subResource: '', index: true },
  concept_name: { resource: 'concept', subResource: 'name', index: true },
  person_address: { resource: 'person', subResource: 'address', index: false },
  person_attribute: { resource: 'person', subResource: 'attribute', index: false },
  users: { resource: 'user', subResource: '', index: false },
  provider: { resource: 'provider', subResource: '', index: false },
  location: { resource: 'location', subResource: '', index: false },
  visit: { resource: 'visit', subResource: '', index: false },
  encounter: { resource: 'encounter', subResource: '', index: false },
  obs: { resource: 'obs', subResource: '', index: false },
};

export const REFRESHED_TABLES: readonly string[] = Object.keys(TARGETS);

const WATERMARK = 'openmrs_refresh_lsn';
const PROBLEM = 'openmrs_refresh_problem';

/** A row's identity is its uuid for every table above (patient: its person's uuid). */
const UUID = /^[A-Za-z0-9-]{1,64}$/;

/** What status shows of the refresh. */
export interface OpenmrsRefreshStatus {
  /** the OpenMRS refreshed */
  url: string;
  /** refresh calls OpenMRS has not confirmed yet */
  pending: number;
  /** null, or a sentence saying OpenMRS could not be reached or refused, and what still waits */
  problem: string | null;
}

/**
 * Turns the received changes logged since the last call into refresh calls, and moves the mark,
 * in one transaction: a crash before it commits leaves the changes to the next call. With no
 * OpenMRS named, only the mark moves (nothing old is refreshed once one is named).
 */
export async function queueRefreshes(
  pool: Pool,
  nodeId: string,
  enabled: boolean,
): Promise<number> {
  return inTransaction(pool, async (conn) => {
    const [top] = await queryRows(conn, 'SELECT COALESCE(MAX(lsn), 0) AS lsn FROM clinicsync_log');
    const to = String(top!.lsn);
    const marks = await queryRows(conn, 'SELECT v FROM clinicsync_meta WHERE k = ? FOR UPDATE', [
      WATERMARK,
    ]);
    const from = marks.length ? String(marks[0]!.v) : to;
    let queued = 0;
    if (enabled && from !== to) {
      const changes = await queryRows(
        conn,
        `SELECT origin, seq, tbl, op, ident FROM clinicsync_log
          WHERE lsn > ? AND lsn <= ? AND origin <> ? AND tbl IN (${REFRESHED_TABLES.map(() => '?').join(',')})`,
        [from, to, nodeId, ...REFRESHED_TABLES],
      );
      const rows: unknown[][] = [];
      for (const c of changes) {
        const target = TARGETS[String(c.tbl)]!;
        const ident = c.ident === null ? '' : String(c.ident);
        // A row that is gone cannot be named: its whole type is refreshed instead.
        const uuid = String(c.op) !== 'D' && UUID.test(ident) ? ident : '';
        const kinds: RefreshKind[] = target.index ? ['cache', 'index'] : ['cache'];
        for (const what of kinds) {
          rows.push([what, target.resource, target.subResource, uuid, c.origin, c.seq]);
        }
      }
      for (let i = 0; i < rows.length; i += 500) {
        await execute(
          conn,
          `INSERT INTO clinicsync_openmrs_refresh (what, resource, sub_resource, uuid, origin, seq)
           VALUES ?
           ON DUPLICATE KEY UPDATE origin = VALUES(origin), seq = VALUES(seq), tries = 0`,
          [rows.slice(i, i + 500)],
        );
      }
      queued = rows.length;
    }
    await execute(
      conn,
      'INSERT INTO clinicsync_meta (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)',
      [WATERMARK, to],
    );
    return queued;
  });
}

export async function refreshStatus(
  db: Queryable,
  settings: Settings,
): Promise<OpenmrsRefreshStatus | null> {
  if (settings.openmrs.url === '') return null;
  const [n] = await queryRows(db, 'SELECT COUNT(*) AS n FROM clinicsync_openmrs_refresh');
  const [p] = await queryRows(db, 'SELECT v FROM clinicsync_meta WHERE k = ?', [PROBLEM]);
  return {
    url: settings.openmrs.url,
    pending: Number(n!.n),
    problem: p ? String(p.v) : null,
  };
}

interface Entry extends RefreshCall {
  id: string;
  origin: string | null;
  seq: string | null;
  tries: number;
}

/** How many times one refresh OpenMRS answers with an error is tried before it is widened. */
const ENTRY_TRIES = 3;

/**
 * The background loop sending the queued refreshes. `kick` after each applied batch; it never
 * throws, and `stop` waits for a call in flight to be abandoned.
 */
export class OpenmrsRefresher {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private readonly abort = new AbortController();
  private stopped = false;
  private readonly problemListeners = new Set<(sentence: string) => void>();

  constructor(
    private readonly pool: Pool,
    private readonly settings: Settings,
    private readonly home: Home,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {}

  /** Hears the sentence each time OpenMRS could not be reached (the service writes it to its log). */
  onProblem(fn: (sentence: string) => void): () => void {
    this.problemListeners.add(fn);
    return () => this.problemListeners.delete(fn);
  }

  /**
   * Sends what is queued, now or as soon as the current round ends; while OpenMRS is away, at the
   * next retry instead, so each synced batch does not knock at a stopped OpenMRS again.
   */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) {
      if (this.failures > 0) return;
      clearTimeout(this.timer);
    }
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.again = false;
      this.running = this.round()
        .catch((e: unknown) => {
          this.onError(e);
          return this.retryDelayMs();
        })
        .then((retryMs) => {
          this.running = null;
          if (this.stopped) return;
          if (retryMs !== null) this.schedule(retryMs);
          else if (this.again) this.schedule(0);
        });
    }, delayMs);
    this.timer.unref();
  }

  private retryDelayMs(): number {
    const s = this.settings.sync;
    const delay = Math.min(s.retryDelaySeconds * 2 ** this.failures, s.retryMaxDelaySeconds);
    this.failures = Math.min(this.failures + 1, 30);
    return delay * 1_000;
  }

  /** The first round, a moment after the engine starts: what a restart left queued goes out. */
  start(): void {
    if (!this.stopped && !this.timer && !this.running) this.schedule(2_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  /**
   * One round: batches until the queue is empty or only rows still waiting are left (null), or
   * until OpenMRS is away (the pause before the next try).
   */
  private async round(): Promise<number | null> {
    const o = this.settings.openmrs;
    const access = {
      url: o.url,
      user: o.user,
      password: this.home.readSecret(OPENMRS_PASSWORD_SECRET)?.trim() ?? '',
      timeoutMs: this.settings.sync.timeoutSeconds * 1_000,
      signal: this.abort.signal,
    };
    await this.widenLargeGroups(o.refreshBatch);
    let afterId = '0';
    for (;;) {
      const batch = await this.nextBatch(afterId, o.refreshBatch);
      if (!batch.length) break;
      afterId = batch[batch.length - 1]!.id;
      for (const entry of await this.ready(batch)) {
        if (this.stopped) return null;
        const outcome = await callOpenmrs(access, entry);
        if (outcome.ok) {
          await execute(this.pool, 'DELETE FROM clinicsync_openmrs_refresh WHERE id = ?', [
            entry.id,
          ]);
        } else if (outcome.entryFault) {
          await this.entryFailed(entry);
        } else {
          if (this.stopped) return null;
          await this.unreachable(outcome.reason);
          return this.retryDelayMs();
        }
      }
    }
    this.failures = 0;
    await execute(this.pool, 'DELETE FROM clinicsync_meta WHERE k = ?', [PROBLEM]);
    return null;
  }

  private async nextBatch(afterId: string, size: number): Promise<Entry[]> {
    // Caches first: an index update reads the entity, which must not come from a stale cache.
    const rows = await queryRows(
      this.pool,
      `SELECT id, what, resource, sub_resource, uuid, origin, seq, tries
         FROM clinicsync_openmrs_refresh WHERE id > ? ORDER BY id LIMIT ?`,
      [afterId, size],
    );
    const entries = rows.map((r) => ({
      id: String(r.id),
      what: String(r.what) as RefreshKind,
      resource: String(r.resource),
      subResource: String(r.sub_resource),
      uuid: String(r.uuid),
      origin: r.origin === null ? null : String(r.origin),
      seq: r.seq === null ? null : String(r.seq),
      tries: Number(r.tries),
    }));
    return [
      ...entries.filter((e) => e.what === 'cache'),
      ...entries.filter((e) => e.what === 'index'),
    ];
  }

  /**
   * Many changes to one type at once (a first sync, a new concept dictionary): one eviction of the
   * whole type replaces its per-row cache calls. Index updates stay per row: redoing a whole
   * type's index is far slower than updating a batch's rows.
   */
  private async widenLargeGroups(limit: number): Promise<void> {
    const groups = await queryRows(
      this.pool,
      `SELECT resource, sub_resource FROM clinicsync_openmrs_refresh
        WHERE what = 'cache' AND uuid <> '' GROUP BY resource, sub_resource HAVING COUNT(*) > ?`,
      [limit],
    );
    for (const g of groups) await this.widen('cache', String(g.resource), String(g.sub_resource));
    // A refresh of a whole type covers its rows queued since.
    await execute(
      this.pool,
      `DELETE r FROM clinicsync_openmrs_refresh r
         JOIN clinicsync_openmrs_refresh w
           ON w.what = r.what AND w.resource = r.resource AND w.sub_resource = r.sub_resource
              AND w.uuid = ''
        WHERE r.uuid <> ''`,
    );
  }

  private async widen(what: RefreshKind, resource: string, sub: string): Promise<void> {
    await inTransaction(this.pool, async (conn) => {
      await execute(
        conn,
        `DELETE FROM clinicsync_openmrs_refresh
          WHERE what = ? AND resource = ? AND sub_resource = ? AND uuid <> ''`,
        [what, resource, sub],
      );
      await execute(
        conn,
        `INSERT IGNORE INTO clinicsync_openmrs_refresh (what, resource, sub_resource, uuid)
         VALUES (?, ?, ?, '')`,
        [what, resource, sub],
      );
    });
  }

  /**
   * The entries whose rows are in the database now. A row still waiting among the parked changes
   * is left for a later round; one that is gone since is dropped (its delete refreshes its type).
   */
  private async ready(batch: Entry[]): Promise<Entry[]> {
    const present = new Set<string>();
    const byTable = new Map<string, string[]>();
    for (const e of batch) {
      if (e.uuid === '') continue;
      const table = tableOf(e);
      byTable.set(table, [...(byTable.get(table) ?? []), e.uuid]);
    }
    for (const [table, uuids] of byTable) {
      const marks = uuids.map(() => '?').join(',');
      const sql =
        table === 'patient'
          ? `SELECT x.uuid FROM patient p JOIN person x ON x.person_id = p.patient_id WHERE x.uuid IN (${marks})`
          : `SELECT uuid FROM ${q(table)} WHERE uuid IN (${marks})`;
      for (const r of await queryRows(this.pool, sql, uuids))
        present.add(`${table}:${String(r.uuid)}`);
    }
    const out: Entry[] = [];
    for (const e of batch) {
      if (e.uuid === '' || present.has(`${tableOf(e)}:${e.uuid}`)) {
        out.push(e);
        continue;
      }
      const parked = await queryRows(
        this.pool,
        'SELECT 1 FROM clinicsync_parked WHERE origin = ? AND seq = ?',
        [e.origin, e.seq],
      );
      if (!parked.length) {
        await execute(this.pool, 'DELETE FROM clinicsync_openmrs_refresh WHERE id = ?', [e.id]);
      }
    }
    return out;
  }

  /** OpenMRS could not do one refresh: tried again, then a cache eviction covers the whole type. */
  private async entryFailed(entry: Entry): Promise<void> {
    if (entry.tries + 1 < ENTRY_TRIES) {
      await execute(
        this.pool,
        'UPDATE clinicsync_openmrs_refresh SET tries = tries + 1 WHERE id = ?',
        [entry.id],
      );
    } else if (entry.what === 'cache' && entry.uuid !== '') {
      await this.widen('cache', entry.resource, entry.subResource);
    } else {
      await execute(this.pool, 'DELETE FROM clinicsync_openmrs_refresh WHERE id = ?', [entry.id]);
      this.onError(
        new Error(
          `OpenMRS could not ${entry.what === 'cache' ? 'clear its cache' : 'update its search index'} for ${entry.resource} ${entry.uuid}; given up after ${ENTRY_TRIES} tries.`,
        ),
      );
    }
  }

  private async unreachable(reason: string): Promise<void> {
    const [n] = await queryRows(this.pool, 'SELECT COUNT(*) AS n FROM clinicsync_openmrs_refresh');
    const sentence = `OpenMRS at ${this.settings.openmrs.url} could not be refreshed (${reason}) at ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${Number(n!.n)} refreshes of received patients, names, identifiers and concepts wait, so OpenMRS may not show or find them yet. The sync itself goes on, and ClinicSync tries again by itself.`;
    await execute(
      this.pool,
      'INSERT INTO clinicsync_meta (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)',
      [PROBLEM, sentence],
    );
    for (const fn of this.problemListeners) fn(sentence);
  }
}

function tableOf(e: RefreshCall): string {
  for (const [table, t] of Object.entries(TARGETS)) {
    if (t.resource === e.resource && t.subResource === e.subResource) return table;
  }
  return e.resource;
}
