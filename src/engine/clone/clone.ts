import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { DB_PASSWORD_SECRET, type Home } from '../config/home.js';
import { defaultSettings, settingRule, type Settings } from '../config/settings.js';
import { explainDbError, openPool, type PoolConnection } from '../db/pool.js';
import { checkPrivileges } from '../db/privileges.js';
import { dbUrlOf, type DbTarget } from '../db/url.js';
import { SyncError, isSyncError } from '../errors.js';
import { SyncNode } from '../node/node.js';
import { NodeService, type SyncSummary } from '../node/service.js';
import { ParentClient, readParentSecret, writeParentSecret } from '../transport/client.js';
import { readParentFingerprint, writeParentFingerprint } from '../transport/tls.js';
import { backupDatabase } from './backup.js';
import {
  clearDatabase,
  databaseContents,
  describeContents,
  inUseError,
  isEmpty,
  notEmptyError,
  otherConnections,
  type DatabaseContents,
} from './contents.js';
import { claimsOf, readProgress } from './progress.js';
import { restoreSnapshot, type RestoreProgress, type RestoreResult } from './restore.js';
import { SNAPSHOT_PATH, SNAPSHOT_VERSION } from './snapshot.js';
import {
  OpenStream,
  keyFor,
  readFileHead,
  splitPlaintext,
  type FileRegistration,
} from './snapshotFile.js';

/**
 * The child's whole clone, over the network (issue "Nodes over HTTP", item 3) or from a snapshot
 * file (issue 6): register with the parent (a pairing code, or the registration the file
 * carries), keep the registration in the home, load the parent's snapshot into the empty
 * database, adopt it as a child, then (over the network) exchange once so what the parent changed
 * during the clone arrives; from a file, the first `sync` brings it.
 *
 * An attempt cut short (link, kill, power) resumes: the registration survives in the home
 * (clone.json and the secret), so the same command with the same home reuses it and a code given
 * again is ignored; the database keeps the chunks it committed, and the next attempt loads only
 * what it misses or what changed since (see snapshot.ts). Until adopted, the database is marked
 * as an unfinished clone that no engine opens.
 *
 * A target database that holds anything is refused, saying what it holds, unless `replace` is
 * set: then, while no other application is connected to it, its contents are first saved to a
 * dump file in the home.
 */

export type ClonePhase = 'pairing' | 'schema' | 'rows' | 'finishing' | 'state' | 'done';

/** Progress as the front ends show it (the API's CloneProgress without its error). */
export interface CloneStep {
  phase: ClonePhase;
  tablesDone: number;
  tablesTotal: number;
  rowsDone: number;
  bytesDone: number;
  /** rough seconds left from the parent's row estimate and the recent rate, or null */
  etaSeconds: number | null;
  /** the parent's estimate of all rows, or null while unknown */
  rowsTotal: number | null;
  /** of rowsDone, rows an earlier attempt had loaded (checked, not copied again) */
  rowsKept: number;
  /** rows and bytes received per second over the last seconds, or null while unknown */
  rowsPerSecond: number | null;
  bytesPerSecond: number | null;
}

interface CommonOptions {
  /** the empty database to fill, with its password where it has one */
  db: DbTarget;
  /** this clinic's name under its parent */
  name: string;
  home: Home;
  /** empty a database that holds something, after saving it to a dump file in the home */
  replace?: boolean;
  /** keep the database password in the home (false where the home already holds it) */
  storeDbPassword?: boolean;
  onProgress?: (step: CloneStep) => void;
  /** one line for a person, on what happens (the CLI prints them on stderr) */
  onNote?: (line: string) => void;
}

export interface CloneOptions extends CommonOptions {
  /** the parent's address, like http://district.example.org:8750 */
  parentUrl: string;
  /** the one-time pairing code the parent showed */
  code: string;
  /** the HTTP timeout towards the parent, seconds (default: the settings' default) */
  timeoutSeconds?: number;
  /**
   * Over HTTPS: the parent certificate's fingerprint to trust ("SHA256:…", from `pair`); without
   * it the certificate met first is trusted and shown through onNote for the person to compare.
   */
  fingerprint?: string;
}

export interface FileCloneOptions extends CommonOptions {
  /** the file `clinic-sync snapshot` wrote */
  file: string;
  /** the one-time code `clinic-sync snapshot` printed with it */
  code: string;
  /** the parent's address, where the file carries none or another one is right here */
  parentUrl?: string;
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
  /** what this attempt loaded and what it kept from an earlier one */
  chunksLoaded: number;
  chunksKept: number;
  rowsKept: number;
  /** foreign keys some copied rows break (as they do on the parent) */
  brokenReferences: RestoreResult['brokenReferences'];
  /** the dump the old contents were saved to (--replace), or null */
  backupFile: string | null;
  /** the first exchange, or null where it failed or was not tried (a file clone) */
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
  /** for a file clone: the file's salt, so the same file is known again */
  fileSalt?: string;
}

const REGISTRATION_FILE = 'clone.json';
/** A file clone's key while it runs, so a resumed attempt needs no code. */
const FILE_KEY_SECRET = 'clone-file-key';
const BACKUP_DIR = 'backups';

export async function cloneFromParent(opts: CloneOptions): Promise<CloneResult> {
  const started = Date.now();
  const note = opts.onNote ?? (() => undefined);
  const report = opts.onProgress ?? (() => undefined);
  const settings = childSettings(opts.parentUrl, opts);
  const home = opts.home;
  const pending = readRegistration(home);
  const resumed =
    pending !== null &&
    pending.fileSalt === undefined &&
    pending.parentUrl === settings.parent &&
    pending.name === settings.name &&
    pending.db === settings.db &&
    readParentSecret(home) !== null
      ? pending
      : null;
  refuseOtherNode(home, resumed !== null);

  // The database first: a code is not spent on a clone that cannot be loaded.
  const target = await inspectTarget(opts.db, resumed?.nodeId ?? null, opts.replace === true);

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
      keepRegistration(home, settings, reg, paired.secret, opts);
      if (client.fingerprint) writeParentFingerprint(home, client.fingerprint);
      note(`Paired with ${reg.parentName} as "${reg.name}".`);
    }
    const backupFile = await replaceIfAsked(opts.db, target, home, note);

    let loaded: RestoreResult | null = null;
    if (target.mode !== 'adopted') {
      const claims = target.mode === 'resume' ? claimsOf(await loadedSoFar(opts.db)) : null;
      if (claims?.tables.length) {
        note(
          `Continuing the clone that did not finish: checking what it holds with ${reg.parentName}.`,
        );
      }
      const res = await client.post(
        SNAPSHOT_PATH,
        JSON.stringify({
          version: SNAPSHOT_VERSION,
          ...(onLocalNetwork(reg.parentUrl) ? { link: 'local' } : {}),
          ...(claims ? { resume: claims } : {}),
        }),
        { contentType: 'application/json' },
      );
      loaded = await restoreSnapshot(res.body, {
        db: opts.db,
        parentNodeId: reg.parentNodeId,
        resume: target.mode === 'resume',
        onProgress: progressReporter(report),
      });
      // The signature over the whole stream (its trailer) is checked once the stream has ended.
      await res.verified();
      report({ ...step('state'), tablesDone: loaded.tables, tablesTotal: loaded.tables });
    }
    node = await adopt(opts.db, settings, home, reg, loaded);

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
    // Kept until now: a clone killed during its first exchange is finished by the same command.
    removeRegistration(home);
    return finished(node, reg, loaded, backupFile, sync, syncError, started, report);
  } catch (e) {
    await node?.close();
    throw e;
  } finally {
    await client.close();
  }
}

/**
 * A child made from a snapshot file (`clone --from-file FILE --code CODE`): the file carries the
 * registration the parent made for it. No network is needed; the first `sync` with the parent
 * brings what the parent changed since the snapshot.
 */
export async function cloneFromFile(opts: FileCloneOptions): Promise<CloneResult> {
  const started = Date.now();
  const home = opts.home;
  const { head, salt } = await readFileHead(opts.file);
  const pending = readRegistration(home);
  const storedKey = home.readSecret(FILE_KEY_SECRET);
  const resumed =
    pending !== null &&
    pending.fileSalt === salt &&
    pending.name === opts.name &&
    pending.db === dbUrlOf(opts.db) &&
    storedKey !== null &&
    /^[0-9a-f]{64}$/.test(storedKey)
      ? pending
      : null;
  refuseOtherNode(home, resumed !== null);
  // A code given again is ignored: the key is the one the first attempt derived.
  const key = resumed ? Buffer.from(storedKey!, 'hex') : await keyFor(opts.code, head);

  // The registration first (the file's first segment proves the code), then the database.
  let registration: FileRegistration | null = null;
  const source = fileSource(opts.file, head, key, (r) => {
    registration = r;
  });
  const first = await source.next();
  try {
    return await fromFile(opts, { source, first, registration, salt, key, resumed, started });
  } finally {
    await source.return(undefined);
  }
}

async function fromFile(
  opts: FileCloneOptions,
  f: {
    source: AsyncGenerator<Buffer>;
    first: IteratorResult<Buffer>;
    registration: FileRegistration | null;
    salt: string;
    key: Buffer;
    resumed: Registration | null;
    started: number;
  },
): Promise<CloneResult> {
  const note = opts.onNote ?? (() => undefined);
  const report = opts.onProgress ?? (() => undefined);
  const home = opts.home;
  const { source, first, salt, key, resumed, started } = f;
  const reg0 = f.registration;
  if (!reg0) throw new SyncError('protocol', 'The snapshot file carries no registration.');
  const parentUrl = opts.parentUrl ?? reg0.parent.url;
  if (!parentUrl) {
    throw new SyncError(
      'usage',
      `The snapshot file does not say where ${reg0.parent.name} can be reached; add --parent with its address, like http://district.example.org:8750.`,
    );
  }
  const settings = childSettings(parentUrl, opts);
  if (resumed && resumed.parentUrl !== settings.parent) {
    resumed.parentUrl = settings.parent!;
  }
  const target = await inspectTarget(
    opts.db,
    reg0.child.nodeId,
    opts.replace === true,
    resumed !== null,
  );
  const reg: Registration = {
    parentUrl: settings.parent!,
    parentNodeId: reg0.parent.nodeId,
    parentName: reg0.parent.name,
    parentIncarnation: reg0.parent.incarnation,
    nodeId: reg0.child.nodeId,
    incarnation: reg0.child.incarnation,
    name: settings.name,
    db: settings.db,
    pairedAt: reg0.madeAt,
    fileSalt: salt,
  };
  if (!resumed) {
    home.writeSecret(FILE_KEY_SECRET, key.toString('hex'));
    keepRegistration(home, settings, reg, Buffer.from(reg0.child.secret, 'hex'), opts);
    note(`This clinic joins ${reg.parentName} as "${reg.name}", registered by the snapshot file.`);
  } else {
    note(`Using this clinic's registration with ${reg.parentName} from an earlier attempt.`);
  }
  let node: SyncNode | null = null;
  try {
    const backupFile = await replaceIfAsked(opts.db, target, home, note);
    let loaded: RestoreResult | null = null;
    if (target.mode !== 'adopted') {
      async function* all(): AsyncGenerator<Buffer> {
        if (!first.done) yield first.value;
        yield* source;
      }
      loaded = await restoreSnapshot(all(), {
        db: opts.db,
        parentNodeId: reg.parentNodeId,
        resume: target.mode === 'resume',
        onProgress: progressReporter(report),
      });
      report({ ...step('state'), tablesDone: loaded.tables, tablesTotal: loaded.tables });
    }
    node = await adopt(opts.db, settings, home, reg, loaded);
    home.deleteSecret(FILE_KEY_SECRET);
    removeRegistration(home);
    return finished(node, reg, loaded, backupFile, null, null, started, report);
  } catch (e) {
    await node?.close();
    throw e;
  }
}

/** The snapshot bytes of a file: decrypted, the registration taken off (reported first). */
async function* fileSource(
  file: string,
  head: Buffer,
  key: Buffer,
  onRegistration: (r: FileRegistration) => void,
): AsyncGenerator<Buffer> {
  const open = new OpenStream(key, head);
  const input = fs.createReadStream(file, { start: head.length });
  input.on('error', (e) => open.destroy(e));
  input.pipe(open);
  try {
    yield* splitPlaintext(open as AsyncIterable<Buffer>, onRegistration);
  } finally {
    input.destroy();
    open.destroy();
  }
}

/**
 * The clone as the SyncApi runs it (its CloneRunner): the request's fields, progress as it goes;
 * the new node is closed at the end (the host opens it again as it runs it).
 */
export function cloneRunner(home: Home): {
  run(
    req: {
      parentUrl: string;
      code: string;
      dbUrl: string;
      name: string;
      fingerprint?: string | null;
    },
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
        ...(req.fingerprint ? { fingerprint: req.fingerprint } : {}),
      });
      await result.node.close();
      // The clinic's OpenMRS keeps its attached files (complex obs) in its data folder.
      const { openmrsDataDirFor } = await import('../openmrs/runtimeProperties.js');
      const dataDir = await openmrsDataDirFor(target);
      const settings = home.load();
      if (dataDir && settings)
        home.save({ ...settings, complexObs: { ...settings.complexObs, dataDir } });
    },
  };
}

const LOCAL_NETWORKS = new BlockList();
for (const [net, bits] of [
  ['127.0.0.0', 8],
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['169.254.0.0', 16],
] as const) {
  LOCAL_NETWORKS.addSubnet(net, bits, 'ipv4');
}
LOCAL_NETWORKS.addAddress('::1', 'ipv6');
LOCAL_NETWORKS.addSubnet('fc00::', 7, 'ipv6');
LOCAL_NETWORKS.addSubnet('fe80::', 10, 'ipv6');

/**
 * Whether the parent's address is on this computer or a local network (by its address as
 * written; names are not looked up): there the link never limits a clone, so the parent
 * compresses lightly and keeps up with the databases.
 */
function onLocalNetwork(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.local')) return true;
  const family = isIP(host);
  return family !== 0 && LOCAL_NETWORKS.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

function refuseOtherNode(home: Home, resuming: boolean): void {
  const existing = home.load();
  if (existing && !resuming) {
    throw new SyncError(
      'state',
      `The folder ${home.dir} already holds the node "${existing.name}" (${existing.db}); choose another --home for the new clinic.`,
    );
  }
}

function keepRegistration(
  home: Home,
  settings: Settings,
  reg: Registration,
  secret: Buffer,
  opts: CommonOptions,
): void {
  // The settings last: a home with settings but no registration is a node, not a clone to go on.
  writeRegistration(home, reg);
  writeParentSecret(home, secret);
  if (opts.storeDbPassword && opts.db.password) {
    home.writeSecret(DB_PASSWORD_SECRET, opts.db.password);
  }
  home.save(settings);
}

async function adopt(
  db: DbTarget,
  settings: Settings,
  home: Home,
  reg: Registration,
  loaded: RestoreResult | null,
): Promise<SyncNode> {
  // The child syncs what its parent syncs: the same preset and lists, until someone changes them.
  if (loaded?.begin.tables) {
    settings.tables = { ...loaded.begin.tables };
    home.save(settings);
  }
  const node = loaded
    ? await SyncNode.adoptClone({
        db,
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
      })
    : // Adopted by an attempt cut short right after: it only has to be opened.
      await SyncNode.open({ db, settings: home.load() ?? settings, home, lock: 'try' });
  return node;
}

function finished(
  node: SyncNode,
  reg: Registration,
  loaded: RestoreResult | null,
  backupFile: string | null,
  sync: SyncSummary | null,
  syncError: string | null,
  started: number,
  report: (s: CloneStep) => void,
): CloneResult {
  report({
    ...step('done'),
    tablesDone: loaded?.tables ?? 0,
    tablesTotal: loaded?.tables ?? 0,
    rowsDone: loaded?.rows ?? 0,
    bytesDone: loaded?.bytes ?? 0,
    etaSeconds: 0,
    rowsTotal: loaded?.rows ?? null,
    rowsKept: loaded?.rowsKept ?? 0,
  });
  return {
    node,
    parentName: reg.parentName,
    parentNodeId: reg.parentNodeId,
    tables: loaded?.appTables ?? 0,
    rows: loaded?.appRows ?? 0,
    allTables: loaded?.tables ?? 0,
    allRows: loaded?.rows ?? 0,
    bytes: loaded?.bytes ?? 0,
    chunksLoaded: loaded?.chunksLoaded ?? 0,
    chunksKept: loaded?.chunksKept ?? 0,
    rowsKept: loaded?.rowsKept ?? 0,
    brokenReferences: loaded?.brokenReferences ?? [],
    backupFile,
    sync,
    syncError,
    ms: Date.now() - started,
  };
}

/** "Cloned 153 tables and 48,213 rows from district in 12 s; this clinic is now the child "centre"." */
export function describeClone(r: CloneResult, name: string): string {
  return `Cloned ${plural(r.tables, 'table')} and ${plural(r.rows, 'row')} from ${r.parentName} in ${duration(r.ms)}; this clinic is now the child "${name}".`;
}

/** The summary's details, one line each, for a person (the CLI prints them on stderr). */
export function describeCloneDetails(r: CloneResult): string[] {
  const lines: string[] = [];
  const seconds = Math.max(0.001, r.ms / 1000);
  lines.push(
    `Copied ${plural(r.allRows, 'row')} in ${plural(r.allTables, 'table')} (ClinicSync's own included), ${megabytes(r.bytes)} received, ${Math.round((r.allRows - r.rowsKept) / seconds).toLocaleString('en-US')} rows/s.`,
  );
  if (r.chunksKept) {
    lines.push(
      `Kept ${plural(r.rowsKept, 'row')} (${plural(r.chunksKept, 'chunk')}) loaded by the earlier attempt; loaded ${plural(r.chunksLoaded, 'chunk')} now.`,
    );
  }
  if (r.backupFile) lines.push(`The database's old contents are saved in ${r.backupFile}.`);
  if (!r.brokenReferences.length) {
    lines.push('Every foreign key of the copy was checked: every reference is there.');
  }
  for (const b of r.brokenReferences) {
    lines.push(
      `Warning: ${plural(b.rows, 'row')} of ${b.table} refer to rows of ${b.referenced} that do not exist (${b.constraint}); they are so on ${r.parentName} too.`,
    );
  }
  return lines;
}

/** "Copying rows: 57 of 153 tables, 12,345 of about 50,000 rows, 3.4 MB received, …" */
export function describeStep(s: CloneStep): string {
  switch (s.phase) {
    case 'pairing':
      return 'Pairing with the main server…';
    case 'schema':
      return `Copying the schema: ${plural(s.tablesTotal, 'table')} so far…`;
    case 'rows': {
      const rows =
        s.rowsTotal !== null && s.rowsTotal > s.rowsDone
          ? `${s.rowsDone.toLocaleString('en-US')} of about ${plural(s.rowsTotal, 'row')}`
          : plural(s.rowsDone, 'row');
      const rate =
        s.rowsPerSecond !== null
          ? `, ${Math.round(s.rowsPerSecond).toLocaleString('en-US')} rows/s (${megabytes(s.bytesPerSecond ?? 0)}/s)`
          : '';
      const kept = s.rowsKept ? `, ${s.rowsKept.toLocaleString('en-US')} kept from before` : '';
      const left = s.etaSeconds !== null ? `, about ${duration(s.etaSeconds * 1000)} left` : '';
      return `Copying rows: ${s.tablesDone.toLocaleString('en-US')} of ${plural(s.tablesTotal, 'table')}, ${rows}${kept}, ${megabytes(s.bytesDone)} received${rate}${left}…`;
    }
    case 'finishing':
      return 'Making the foreign keys, views, routines and triggers, and checking the copy…';
    case 'state':
      return 'Making this database a child node…';
    case 'done':
      return `Done: ${plural(s.tablesDone, 'table')}, ${plural(s.rowsDone, 'row')}.`;
  }
}

function step(phase: ClonePhase): CloneStep {
  return {
    phase,
    tablesDone: 0,
    tablesTotal: 0,
    rowsDone: 0,
    bytesDone: 0,
    etaSeconds: null,
    rowsTotal: null,
    rowsKept: 0,
    rowsPerSecond: null,
    bytesPerSecond: null,
  };
}

/** How far back the rate is measured. */
const RATE_WINDOW_MS = 10_000;

/** Turns the loader's progress into steps, with the recent rate and the time left. */
function progressReporter(report: (s: CloneStep) => void): (p: RestoreProgress) => void {
  const samples: { at: number; rows: number; bytes: number }[] = [];
  let rowsFrom: { at: number; rows: number } | null = null;
  return (p) => {
    const phase: ClonePhase =
      p.phase === 'schema' ? 'schema' : p.phase === 'rows' ? 'rows' : 'finishing';
    const now = Date.now();
    // Rows kept from an earlier attempt are checked, not loaded: they do not count in the rate.
    samples.push({ at: now, rows: p.rows - p.keptRows, bytes: p.bytes });
    while (samples.length > 2 && now - samples[0]!.at > RATE_WINDOW_MS) samples.shift();
    const first = samples[0]!;
    const span = (now - first.at) / 1000;
    const rowsPerSecond = span >= 1 ? (p.rows - p.keptRows - first.rows) / span : null;
    const bytesPerSecond = span >= 1 ? (p.bytes - first.bytes) / span : null;
    // The time left from the rate since the rows began: steadier than the recent one, which
    // drops while a large table's indexes are built.
    if (phase === 'rows') rowsFrom ??= { at: now, rows: p.rows - p.keptRows };
    const average =
      rowsFrom && now - rowsFrom.at >= 1000
        ? (p.rows - p.keptRows - rowsFrom.rows) / ((now - rowsFrom.at) / 1000)
        : 0;
    let eta: number | null = null;
    if (phase === 'rows' && average > 0 && p.estimatedRows > p.rows) {
      eta = Math.round((p.estimatedRows - p.rows) / average);
    }
    report({
      phase,
      tablesDone: p.tables,
      tablesTotal: p.totalTables,
      rowsDone: p.rows,
      bytesDone: p.bytes,
      etaSeconds: phase === 'finishing' ? 0 : eta,
      rowsTotal: p.estimatedRows > 0 ? Math.max(p.estimatedRows, p.rows) : null,
      rowsKept: p.keptRows,
      rowsPerSecond,
      bytesPerSecond,
    });
  };
}

function childSettings(parentUrl: string, opts: CommonOptions): Settings {
  let parent: string;
  try {
    const u = new URL(parentUrl);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) throw new Error('');
    parent = `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    throw new SyncError(
      'usage',
      `--parent must be the main server's address, like http://district.example.org:8750, not "${parentUrl}".`,
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

/** What a clone will do with its target database. */
interface Target {
  mode: 'fresh' | 'resume' | 'adopted' | 'replace';
  contents: DatabaseContents;
}

/**
 * Checks the target: reachable, privileges enough, and empty; or holding this home's unfinished
 * clone (resumed), or already adopted by it (the attempt was cut short just after); or, with
 * replace, anything while no other application uses it.
 */
async function inspectTarget(
  db: DbTarget,
  ownNodeId: string | null,
  replace: boolean,
  resuming = ownNodeId !== null,
): Promise<Target> {
  return withConnection(db, async (conn) => {
    const privileges = await checkPrivileges(conn, db.database);
    if (!privileges.ok) {
      throw new SyncError(
        'privileges',
        privileges.sentence ?? 'The database user lacks privileges ClinicSync needs.',
      );
    }
    const contents = await databaseContents(conn, db.database);
    if (resuming && contents.unfinishedClone) return { mode: 'resume', contents };
    if (resuming && !contents.unfinishedClone && contents.nodeId === ownNodeId) {
      return { mode: 'adopted', contents };
    }
    if (resuming && contents.bareMarkerTable) {
      await clearDatabase(conn, db.database);
      return { mode: 'fresh', contents };
    }
    if (isEmpty(contents)) return { mode: 'fresh', contents };
    if (!replace) throw notEmptyError(db.database, contents);
    const others = await otherConnections(conn, db.database);
    if (others.length) throw inUseError(db.database, others);
    return { mode: 'replace', contents };
  });
}

/** With --replace: the old contents saved to a dump in the home, then the database emptied. */
async function replaceIfAsked(
  db: DbTarget,
  target: Target,
  home: Home,
  note: (line: string) => void,
): Promise<string | null> {
  if (target.mode !== 'replace') return null;
  let file: string | null = null;
  // An unfinished clone holds nothing anybody used: it is not worth a dump.
  if (!target.contents.unfinishedClone) {
    const dir = path.join(home.dir, BACKUP_DIR);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    file = path.join(dir, `${db.database}-before-clone-${stamp}.sql.gz`);
    note(`Saving what ${db.database} holds (${describeContents(target.contents)}) to ${file}…`);
    const saved = await backupDatabase(db, file);
    note(
      `Saved ${plural(saved.tables, 'table')} and ${plural(saved.rows, 'row')} (${megabytes(saved.bytes)}); to put them back: gunzip < ${file} | mariadb ${db.database}`,
    );
  }
  await withConnection(db, async (conn) => {
    // Checked again just before: an application started meanwhile would lose its database.
    const others = await otherConnections(conn, db.database);
    if (others.length) throw inUseError(db.database, others);
    await clearDatabase(conn, db.database);
  });
  return file;
}

async function loadedSoFar(db: DbTarget) {
  return withConnection(db, (conn) => readProgress(conn));
}

async function withConnection<T>(
  db: DbTarget,
  fn: (conn: PoolConnection) => Promise<T>,
): Promise<T> {
  const pool = openPool(db, { connectionLimit: 1 });
  let conn: PoolConnection | null = null;
  try {
    try {
      conn = await pool.getConnection();
    } catch (e) {
      throw explainDbError(e, db);
    }
    return await fn(conn);
  } catch (e) {
    throw isSyncError(e) ? e : explainDbError(e, db);
  } finally {
    conn?.destroy();
    await pool.end().catch(() => undefined);
  }
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
  const reg = Object.fromEntries(fields.map((f) => [f, r[f]])) as unknown as Registration;
  if (typeof r.fileSalt === 'string') reg.fileSalt = r.fileSalt;
  return reg;
}

function writeRegistration(home: Home, reg: Registration): void {
  fs.mkdirSync(home.dir, { recursive: true });
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
