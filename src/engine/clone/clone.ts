import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DB_PASSWORD_SECRET, type Home } from '../config/home.js';
import { defaultSettings, settingRule, type Settings } from '../config/settings.js';
import { explainDbError, openPool, queryRows, type PoolConnection } from '../db/pool.js';
import { checkPrivileges } from '../db/privileges.js';
import { q } from '../db/ident.js';
import { dbUrlOf, type DbTarget } from '../db/url.js';
import { SyncError, isSyncError } from '../errors.js';
import { SyncNode } from '../node/node.js';
import { NodeService, type SyncSummary } from '../node/service.js';
import { ParentClient, readParentSecret, writeParentSecret } from '../transport/client.js';
import { readParentFingerprint, writeParentFingerprint } from '../transport/tls.js';
import {
  CLONE_INCOMPLETE,
  assertEmptyDatabase,
  databaseContents,
  restoreSnapshot,
  type RestoreProgress,
} from './restore.js';
import { META_TABLE, SNAPSHOT_PATH, SNAPSHOT_VERSION } from './snapshot.js';

/**
 * The child's whole clone (issue "Nodes over HTTP", item 3): pair with the parent's one-time code,
 * keep the registration in the home, stream the parent's snapshot into the empty database, adopt
 * it as a child, then exchange once so what the parent changed during the clone arrives.
 *
 * A registration survives a failed attempt (clone.json and the secret in the home), so running
 * the same clone again with the same home reuses it: the parent already knows this clinic by its
 * node id, and a used code is not needed again. The database half-loaded by the failed attempt is
 * cleared first (it is marked as an unfinished clone, so nothing else can be using it).
 */

export type ClonePhase = 'pairing' | 'schema' | 'rows' | 'finishing' | 'state' | 'done';

/** Progress as the front ends show it (the API's CloneProgress without its error). */
export interface CloneStep {
  phase: ClonePhase;
  tablesDone: number;
  tablesTotal: number;
  rowsDone: number;
  bytesDone: number;
  /** rough seconds left from the parent's row estimate, or null while unknown */
  etaSeconds: number | null;
}

export interface CloneOptions {
  /** the parent's address, like http://district.example.org:8750 */
  parentUrl: string;
  /** the one-time pairing code the parent showed */
  code: string;
  /** the empty database to fill, with its password where it has one */
  db: DbTarget;
  /** this clinic's name under its parent */
  name: string;
  home: Home;
  /** keep the database password in the home (false where the home already holds it) */
  storeDbPassword?: boolean;
  onProgress?: (step: CloneStep) => void;
  /** one line for a person, on what happens (the CLI prints them on stderr) */
  onNote?: (line: string) => void;
  /** the HTTP timeout towards the parent, seconds (default: the settings' default) */
  timeoutSeconds?: number;
  /**
   * Over HTTPS: the parent certificate's fingerprint to trust ("SHA256:…", from `pair`); without
   * it the certificate met first is trusted and shown through onNote for the person to compare.
   */
  fingerprint?: string;
}

export interface CloneResult {
  /** the new child, open and holding its lock; the caller closes it */
  node: SyncNode;
  parentName: string;
  parentNodeId: string;
  /** the application's tables and rows copied */
  tables: number;
  rows: number;
  /** every table and row, ClinicSync's own included */
  allTables: number;
  allRows: number;
  bytes: number;
  /** the first exchange, or null where it failed (the next sync brings what it missed) */
  sync: SyncSummary | null;
  syncError: string | null;
  ms: number;
}

/** What a clone keeps in the home until it has finished: who this clinic is to its parent. */
interface Registration {
  parentUrl: string;
  parentNodeId: string;
  parentName: string;
  parentIncarnation: string;
  nodeId: string;
  incarnation: string;
  name: string;
  db: string;
  pairedAt: string;
}

const REGISTRATION_FILE = 'clone.json';

export async function cloneFromParent(opts: CloneOptions): Promise<CloneResult> {
  const started = Date.now();
  const note = opts.onNote ?? (() => undefined);
  const report = opts.onProgress ?? (() => undefined);
  const settings = childSettings(opts);
  const home = opts.home;
  const pending = readRegistration(home);
  const resumed =
    pending !== null &&
    pending.parentUrl === settings.parent &&
    pending.name === settings.name &&
    pending.db === settings.db &&
    readParentSecret(home) !== null
      ? pending
      : null;
  const resuming = resumed !== null;
  const existing = home.load();
  if (existing && !resuming) {
    throw new SyncError(
      'state',
      `The folder ${home.dir} already holds the node "${existing.name}" (${existing.db}); choose another --home for the new clinic.`,
    );
  }

  // The database first: a code is not spent on a clone that cannot be loaded.
  await prepareDatabase(opts.db, resuming, note);

  const client = new ParentClient({
    url: settings.parent!,
    timeoutSeconds: opts.timeoutSeconds ?? settings.sync.timeoutSeconds,
    compression: settings.sync.compression,
    fingerprint: opts.fingerprint ?? (resumed ? readParentFingerprint(home) : null),
    fingerprintFrom: opts.fingerprint ? 'option' : 'home',
    onFirstContact: (fp) =>
      note(
        `The main server's certificate fingerprint is ${fp}; check that it is the one "clinic-sync pair" printed there.`,
      ),
    ...(resumed
      ? {
          nodeId: resumed.nodeId,
          secret: readParentSecret(home),
          parentNodeId: resumed.parentNodeId,
        }
      : {}),
  });
  let node: SyncNode | null = null;
  try {
    let reg: Registration;
    if (resumed) {
      reg = resumed;
      note(`Using this clinic's registration with ${reg.parentName} from an earlier attempt.`);
    } else {
      report(step('pairing'));
      const nodeId = randomBytes(8).toString('hex');
      const incarnation = randomBytes(4).toString('hex');
      const paired = await client.pair(opts.code, { name: settings.name, nodeId, incarnation });
      reg = {
        parentUrl: settings.parent!,
        parentNodeId: paired.parent.nodeId,
        parentName: paired.parent.name,
        parentIncarnation: paired.parent.incarnation,
        nodeId,
        incarnation,
        name: settings.name,
        db: settings.db,
        pairedAt: new Date().toISOString(),
      };
      // The registration is kept at once: the parent now knows this clinic by its node id.
      home.save(settings);
      writeParentSecret(home, paired.secret);
      if (client.fingerprint) writeParentFingerprint(home, client.fingerprint);
      if (opts.storeDbPassword && opts.db.password) {
        home.writeSecret(DB_PASSWORD_SECRET, opts.db.password);
      }
      writeRegistration(home, reg);
      note(`Paired with ${reg.parentName} as "${reg.name}".`);
    }

    const res = await client.post(SNAPSHOT_PATH, JSON.stringify({ version: SNAPSHOT_VERSION }), {
      contentType: 'application/json',
    });
    const loaded = await restoreSnapshot(res.body, {
      db: opts.db,
      parentNodeId: reg.parentNodeId,
      onProgress: progressOf(report, Date.now()),
    });
    // The signature over the whole stream (its trailer) is checked once the stream has ended.
    await res.verified();

    report({ ...step('state'), tablesDone: loaded.tables, tablesTotal: loaded.tables });
    // The child syncs what its parent syncs: the same preset and lists, until someone changes them.
    if (loaded.begin.tables) {
      settings.tables = { ...loaded.begin.tables };
      home.save(settings);
    }
    node = await SyncNode.adoptClone({
      db: opts.db,
      name: reg.name,
      settings,
      home,
      parent: {
        nodeId: reg.parentNodeId,
        name: reg.parentName,
        incarnation: reg.parentIncarnation,
        url: reg.parentUrl,
      },
      identity: { nodeId: reg.nodeId, incarnation: reg.incarnation },
    });
    removeRegistration(home);

    // What the parent changed while the snapshot streamed comes now.
    let sync: SyncSummary | null = null;
    let syncError: string | null = null;
    try {
      sync = await new NodeService(node, client).syncNow();
    } catch (e) {
      syncError = e instanceof Error ? e.message : String(e);
      note(
        `The first exchange with ${reg.parentName} failed (${syncError.replace(/\.$/, '')}); the next sync brings what it missed.`,
      );
    }
    report({
      ...step('done'),
      tablesDone: loaded.tables,
      tablesTotal: loaded.tables,
      rowsDone: loaded.rows,
      bytesDone: loaded.bytes,
      etaSeconds: 0,
    });
    return {
      node,
      parentName: reg.parentName,
      parentNodeId: reg.parentNodeId,
      tables: loaded.appTables,
      rows: loaded.appRows,
      allTables: loaded.tables,
      allRows: loaded.rows,
      bytes: loaded.bytes,
      sync,
      syncError,
      ms: Date.now() - started,
    };
  } catch (e) {
    await node?.close();
    throw e;
  } finally {
    await client.close();
  }
}

/**
 * The clone as the SyncApi runs it (its CloneRunner): the request's fields, progress as it goes;
 * the new node is closed at the end (the host opens it again as it runs it).
 */
export function cloneRunner(home: Home): {
  run(
    req: { parentUrl: string; code: string; dbUrl: string; name: string },
    onProgress: (p: CloneStep & { error: null }) => void,
  ): Promise<void>;
} {
  return {
    async run(req, onProgress) {
      const { resolveDbTarget } = await import('../config/home.js');
      const { target, passwordSource } = resolveDbTarget(req.dbUrl, {}, home);
      const result = await cloneFromParent({
        parentUrl: req.parentUrl,
        code: req.code,
        db: target,
        name: req.name,
        home,
        storeDbPassword: passwordSource !== 'secret',
        onProgress: (s) => onProgress({ ...s, error: null }),
      });
      await result.node.close();
    },
  };
}

/** "Cloned 153 tables and 48,213 rows from district in 12 s; this clinic is now the child "centre"." */
export function describeClone(r: CloneResult, name: string): string {
  return `Cloned ${plural(r.tables, 'table')} and ${plural(r.rows, 'row')} from ${r.parentName} in ${duration(r.ms)}; this clinic is now the child "${name}".`;
}

/** "Copying rows: 57 of 153 tables, 12,345 rows, 3.4 MB received" and the like. */
export function describeStep(s: CloneStep): string {
  switch (s.phase) {
    case 'pairing':
      return 'Pairing with the main server…';
    case 'schema':
      return `Copying the schema: ${plural(s.tablesTotal, 'table')} so far…`;
    case 'rows':
      return `Copying rows: ${s.tablesDone.toLocaleString('en-US')} of ${plural(s.tablesTotal, 'table')}, ${plural(s.rowsDone, 'row')}, ${megabytes(s.bytesDone)} received${s.etaSeconds !== null ? `, about ${duration(s.etaSeconds * 1000)} left` : ''}…`;
    case 'finishing':
      return 'Making the views, routines and triggers, and checking the copy…';
    case 'state':
      return 'Making this database a child node…';
    case 'done':
      return `Done: ${plural(s.tablesDone, 'table')}, ${plural(s.rowsDone, 'row')}.`;
  }
}

function step(phase: ClonePhase): CloneStep {
  return { phase, tablesDone: 0, tablesTotal: 0, rowsDone: 0, bytesDone: 0, etaSeconds: null };
}

function progressOf(report: (s: CloneStep) => void, since: number) {
  return (p: RestoreProgress) => {
    const phase: ClonePhase =
      p.phase === 'schema' ? 'schema' : p.phase === 'rows' ? 'rows' : 'finishing';
    let eta: number | null = null;
    const elapsed = (Date.now() - since) / 1000;
    if (phase === 'rows' && p.rows > 0 && p.estimatedRows > p.rows && elapsed > 1) {
      eta = Math.round((elapsed * (p.estimatedRows - p.rows)) / p.rows);
    }
    report({
      phase,
      tablesDone: p.tables,
      tablesTotal: p.totalTables,
      rowsDone: p.rows,
      bytesDone: p.bytes,
      etaSeconds: phase === 'finishing' ? 0 : eta,
    });
  };
}

function childSettings(opts: CloneOptions): Settings {
  let parent: string;
  try {
    const u = new URL(opts.parentUrl);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) throw new Error('');
    parent = `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    throw new SyncError(
      'usage',
      `--parent must be the main server's address, like http://district.example.org:8750, not "${opts.parentUrl}".`,
    );
  }
  try {
    return defaultSettings({ db: dbUrlOf(opts.db), name: opts.name, role: 'child', parent });
  } catch (e) {
    if (isSyncError(e)) {
      throw new SyncError('usage', `--name ${settingRule('name')}, not "${opts.name}".`, {
        cause: e,
      });
    }
    throw e;
  }
}

/**
 * Checks the target: reachable, privileges enough, and empty. A clone this home started and that
 * did not finish is cleared, to start it again.
 */
async function prepareDatabase(
  db: DbTarget,
  resuming: boolean,
  note: (line: string) => void,
): Promise<void> {
  const pool = openPool(db, { connectionLimit: 1 });
  let conn: PoolConnection | null = null;
  try {
    try {
      conn = await pool.getConnection();
    } catch (e) {
      throw explainDbError(e, db);
    }
    const privileges = await checkPrivileges(conn, db.database);
    if (!privileges.ok) {
      throw new SyncError(
        'privileges',
        privileges.sentence ?? 'The database user lacks privileges ClinicSync needs.',
      );
    }
    const contents = await databaseContents(conn, db.database);
    if (resuming && contents.unfinishedClone) {
      note(`Clearing the clone that did not finish in ${db.database}, to start it again.`);
      await clearDatabase(conn, db.database);
    }
    await assertEmptyDatabase(conn, db.database);
  } catch (e) {
    throw isSyncError(e) ? e : explainDbError(e, db);
  } finally {
    conn?.destroy();
    await pool.end().catch(() => undefined);
  }
}

/** Drops everything in a database that holds an unfinished clone: nothing else can use it. */
async function clearDatabase(conn: PoolConnection, database: string): Promise<void> {
  const [marker] = await queryRows(conn, `SELECT 1 AS x FROM ${q(META_TABLE)} WHERE k = ?`, [
    CLONE_INCOMPLETE,
  ]);
  if (!marker) return;
  await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 0');
  for (const r of await queryRows(
    conn,
    'SELECT TABLE_NAME AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?',
    [database],
  )) {
    await conn.query(`DROP VIEW IF EXISTS ${q(String(r.n))}`);
  }
  for (const r of await queryRows(
    conn,
    'SELECT ROUTINE_NAME AS n, ROUTINE_TYPE AS t FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?',
    [database],
  )) {
    const kind = r.t === 'FUNCTION' ? 'FUNCTION' : 'PROCEDURE';
    await conn.query(`DROP ${kind} IF EXISTS ${q(String(r.n))}`);
  }
  const tables = await queryRows(
    conn,
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> ?",
    [database, META_TABLE],
  );
  for (const r of tables) await conn.query(`DROP TABLE IF EXISTS ${q(String(r.n))}`);
  // The marker goes last: until then a crash still leaves the database marked.
  await conn.query(`DROP TABLE IF EXISTS ${q(META_TABLE)}`);
  await conn.query('SET SESSION FOREIGN_KEY_CHECKS = 1');
}

function registrationPath(home: Home): string {
  return path.join(home.dir, REGISTRATION_FILE);
}

function readRegistration(home: Home): Registration | null {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(registrationPath(home), 'utf8'));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  const fields = [
    'parentUrl',
    'parentNodeId',
    'parentName',
    'parentIncarnation',
    'nodeId',
    'incarnation',
    'name',
    'db',
    'pairedAt',
  ] as const;
  if (!fields.every((f) => typeof r[f] === 'string')) return null;
  return Object.fromEntries(fields.map((f) => [f, r[f]])) as unknown as Registration;
}

function writeRegistration(home: Home, reg: Registration): void {
  const file = registrationPath(home);
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify(reg, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(temp, file);
}

function removeRegistration(home: Home): void {
  fs.rmSync(registrationPath(home), { force: true });
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

function megabytes(n: number): string {
  return n < 1_000_000 ? `${(n / 1000).toFixed(0)} KB` : `${(n / 1_000_000).toFixed(1)} MB`;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
