/*
 * SyncApi: the one typed contract between ClinicSync's engine and every front end (DESIGN §2).
 * The desktop window reaches it through the preload bridge, a browser through the admin HTTP API
 * (src/api/adminServer.ts and src/api/httpClient.ts), tests in-process (src/api/local.ts).
 *
 * Everything here is plain JSON: arguments, results and events survive JSON.stringify, Electron's
 * structured clone and Server-Sent Events unchanged. Failures reject with an ApiError carrying a
 * kind (for the UI's plain-language catalogue) and one sentence.
 *
 * This file is loaded by the renderer too: it imports engine modules as types only, and nothing
 * from Node.
 */
import type { Settings, SettingValue } from '../engine/config/settings.js';
import type { ErrorKind } from '../engine/errors.js';
import type { ChildStatus, NodeStatus } from '../engine/node/types.js';
import type { ExchangeRecord } from '../engine/node/history.js';
import type { SyncSummary } from '../engine/node/service.js';
import type {
  ExportRequest,
  ExportSummary,
  ImportRequest,
  ImportSummary,
  RemovableDrive,
  TransferFileInfo,
  TransferFileUse,
  TransferParty,
} from '../engine/transfer/types.js';

export type { Settings, SettingValue, ChildStatus, NodeStatus };

// ---------------------------------------------------------------------------------------------
// Status

/**
 * The one overall state a user sees (tray icon, status line), most urgent first:
 * Needs attention › Can't reach the main server › Sending/receiving › Changes waiting › Paused ›
 * Up to date. See overallState() for the rule.
 */
export type ApiState =
  'needs-attention' | 'offline' | 'syncing' | 'waiting' | 'paused' | 'up-to-date';

/** Every state, most urgent first. */
export const API_STATES: readonly ApiState[] = [
  'needs-attention',
  'offline',
  'syncing',
  'waiting',
  'paused',
  'up-to-date',
];

/** What overallState() needs beyond the engine's NodeStatus: what the host knows right now. */
export interface StateContext {
  /** an exchange with the parent is running */
  syncing: boolean;
  /** the user paused syncing (pauseSync) */
  syncPaused: boolean;
  /**
   * the kind of the last failed exchange when it is known (it is lost on restart: the history
   * keeps only the sentence); null when unknown or when the last exchange succeeded
   */
  lastErrorKind: ApiErrorKind | null;
  /** a sentence when this node's clock disagrees with its parent's, else null */
  clockWarning: string | null;
}

/**
 * Chooses the overall state by urgency; the first rule that holds wins:
 *
 * 1. `needs-attention` — something a person must fix; waiting will not help:
 *    received changes are parked (`parked > 0`: they wait for a row or a decision), the clock
 *    warning is on, or the last exchange failed for a reason other than the network
 *    (protocol, privileges, configuration, state, database, …).
 * 2. `offline` — a child whose last exchange failed because the parent could not be reached, or
 *    failed for a reason no longer known (after a restart): the next attempt will tell.
 * 3. `syncing` — an exchange is running.
 * 4. `waiting` — changes wait to travel: on a child, in either direction (`pendingOut`,
 *    `pendingIn`); on a parent with children, changes some child has not fetched yet. A root
 *    with no children has nobody to wait for.
 * 5. `paused` — the user paused syncing, or capture is paused (around an OpenMRS upgrade).
 * 6. `up-to-date` — none of the above.
 */
export function overallState(status: NodeStatus, context: StateContext): ApiState {
  const failed = status.lastError !== null;
  const networkOrUnknown =
    context.lastErrorKind === null || context.lastErrorKind === 'unreachable';
  if (status.parked > 0 || context.clockWarning !== null || (failed && !networkOrUnknown)) {
    return 'needs-attention';
  }
  if (failed && status.role === 'child') return 'offline';
  if (context.syncing) return 'syncing';
  const waiting =
    status.role === 'child'
      ? status.pendingOut > 0 || status.pendingIn > 0
      : status.children.length > 0 && status.pendingOut > 0;
  if (waiting) return 'waiting';
  if (context.syncPaused || status.capturePaused) return 'paused';
  return 'up-to-date';
}

/** The engine's status plus what a front end shows (issue "The React window", Status). */
export interface ApiStatus extends NodeStatus {
  /** the overall state, chosen by overallState() */
  state: ApiState;
  /** ISO time this node last heard from a neighbour: its parent on a child, any child on a root */
  lastContactAt: string | null;
  /** ISO time of the next scheduled exchange, or null (no schedule, paused, or a root) */
  nextSyncAt: string | null;
  /** an exchange is running now */
  syncing: boolean;
  /** the user paused syncing */
  syncPaused: boolean;
  /** ISO time the pause ends by itself; null when not paused or paused until resumed */
  syncPausedUntil: string | null;
  /** kind of the last failure when known (see StateContext.lastErrorKind) */
  lastErrorKind: ApiErrorKind | null;
  /** a sentence naming the node whose clock is off and by how much, or null */
  clockWarning: string | null;
}

/** How recently a child was heard from: amber after 24 hours, red after 3 days. */
export type ChildContact = 'never' | 'recent' | 'late' | 'silent';

export interface ApiChild extends ChildStatus {
  contact: ChildContact;
}

const HOUR_MS = 3_600_000;

/** 'late' after 24 hours without contact, 'silent' after 3 days, 'never' if never heard from. */
export function childContact(lastContactAt: string | null, nowMs: number): ChildContact {
  if (lastContactAt === null) return 'never';
  const age = nowMs - Date.parse(lastContactAt);
  if (age > 72 * HOUR_MS) return 'silent';
  if (age > 24 * HOUR_MS) return 'late';
  return 'recent';
}

// ---------------------------------------------------------------------------------------------
// Operations' arguments and results

/** The result of syncNow: what one sync (exchanges until quiet) moved. */
export type { SyncSummary };

/** USB transfer (issue 7): drives, files on them, and what saving or loading one did. */
export type {
  ExportRequest,
  ExportSummary,
  ImportRequest,
  ImportSummary,
  RemovableDrive,
  TransferFileInfo,
  TransferFileUse,
  TransferParty,
};

/** Pause for 2, 8 or 24 hours (resumes by itself), or null: until resumed. */
export interface PauseRequest {
  hours: 2 | 8 | 24 | null;
}

export interface PauseState {
  paused: boolean;
  /** ISO time the pause ends by itself, or null */
  until: string | null;
}

export interface PairingRequest {
  /** how long the code stays valid, in minutes (1 to 10080) */
  ttlMinutes: number;
}

export interface PairingCode {
  /** the one-time code to give to the child, as the person types it */
  code: string;
  /** ISO time the code stops working */
  expiresAt: string;
  /**
   * the fingerprint of the certificate this node serves HTTPS with ("SHA256:…"), for the clinic
   * to compare when it first connects; null where it has none (plain HTTP)
   */
  fingerprint?: string | null;
}

export interface ListRequest {
  /** how many entries at most, newest first (1 to 10000; default 100) */
  limit?: number;
}

/** A database value as the log keeps it: text, null, or bytes as base64 in {b}. */
export type ApiValue = string | null | { b: string };

/** A value that lost to a concurrent one (DESIGN §6), newest first. */
export interface ApiConflict {
  table: string;
  identity: string;
  columns: string[];
  winner: Record<string, ApiValue>;
  loser: Record<string, ApiValue>;
  /** node ids of the changes that won and lost */
  winnerOrigin: string;
  loserOrigin: string;
  /** their names where this node knows them (itself and its neighbours), else null */
  winnerName: string | null;
  loserName: string | null;
  /** ISO time the losing change was made */
  at: string;
  /** for a value two rows could not share (a username): what happened and what a person can do */
  explanation?: string;
}

/** One exchange with a neighbour, newest first, with the neighbour's name where known. */
export interface ApiExchange extends ExchangeRecord {
  peerName: string | null;
}

/** A received change that waits here (DESIGN §4), oldest first. */
export interface ApiParked {
  /** why, in plain words */
  reason: string;
  table: string;
  /** the row's global identity */
  identity: string;
  /** the table of the row it waits for, or null when it waits for a person */
  waitingForTable: string | null;
  /** node id where the change was made, and its name where known */
  origin: string;
  originName: string | null;
  /** ISO time it was parked */
  since: string;
}

/** Make this computer's empty database a child of a parent (setup wizard, `clinic-sync clone`). */
export interface CloneRequest {
  /** the parent's address, like http://district.example.org:8750 */
  parentUrl: string;
  /** the one-time pairing code the parent showed */
  code: string;
  /** the empty database to fill, like mysql://openmrs@127.0.0.1:3306/openmrs */
  dbUrl: string;
  /** this clinic's name under its parent */
  name: string;
  /**
   * over HTTPS, the main server's certificate fingerprint the person confirmed (checkParent):
   * the clone trusts that one only. Absent or null: the first one met is trusted.
   */
  fingerprint?: string | null;
}

export type ClonePhase =
  'starting' | 'pairing' | 'schema' | 'rows' | 'state' | 'finishing' | 'done' | 'failed';

export interface CloneProgress {
  phase: ClonePhase;
  tablesDone: number;
  tablesTotal: number;
  rowsDone: number;
  bytesDone: number;
  /** estimated seconds left, or null while unknown */
  etaSeconds: number | null;
  /** the parent's estimate of all rows, or null while unknown */
  rowsTotal?: number | null;
  /** of rowsDone, rows an earlier attempt had loaded (checked, not copied again) */
  rowsKept?: number;
  /** rows and bytes received per second lately, or null while unknown */
  rowsPerSecond?: number | null;
  bytesPerSecond?: number | null;
  /** why it failed (phase 'failed'), else null */
  error: ApiErrorBody | null;
}

// ---------------------------------------------------------------------------------------------
// Setup (the window's wizard on a computer with no node yet, issue "The React window")

/**
 * Where the setup wizard stands, kept in the home so a person can leave at any step and come
 * back. Never a password or a pairing code: those are asked again.
 */
export interface SetupProgress {
  /** the wizard's step, as the window names it (letters, digits and dashes) */
  step: string;
  role: 'root' | 'child' | null;
  /** the database address without its password */
  dbUrl: string | null;
  /** this node's name */
  name: string | null;
  /** a child's main server, like http://district.example.org:8750 */
  parentUrl: string | null;
}

export interface SetupState {
  /** the node this home holds, or null while it holds none (the engine runs in setup mode) */
  node: { name: string; role: 'root' | 'child' } | null;
  /** the wizard's saved progress, or null when none is saved (not started, or finished) */
  progress: SetupProgress | null;
  /** the running or last clone started here, or null */
  clone: CloneProgress | null;
}

/** OpenMRS found on this computer through its openmrs-runtime.properties. */
export interface OpenmrsDetection {
  /** the file read, or null when none was found */
  file: string | null;
  /** its database as mysql://user@host:port/database (no password), or null */
  dbUrl: string | null;
  /** the password OpenMRS uses, or null */
  password: string | null;
  /** OpenMRS's application data folder (complex obs files, modules), or null */
  appDataDir?: string | null;
}

export interface DatabaseTestRequest {
  /** mysql://user[:password]@host[:port]/database */
  dbUrl: string;
  /** create the database, empty, when the server has none of that name */
  create?: boolean;
}

/** What a connection test found, for the wizard to explain. */
export interface DatabaseTest {
  /** the server answered and let the user in */
  connected: boolean;
  /** why not ('database': no server, wrong password…), else null */
  error: ApiErrorBody | null;
  /** the server version, like "10.11.6-MariaDB" */
  server: string | null;
  /** the database exists (after creating it, when asked to) */
  exists: boolean;
  /** it was created by this test */
  created: boolean;
  /** tables and views in it */
  tables: number;
  /** it holds OpenMRS (its patient, person and encounter tables) */
  openmrs: boolean;
  /** it is already a ClinicSync node */
  clinicSync: boolean;
  /**
   * the privileges check (DESIGN §3): what is missing, as MySQL spells it, and one sentence with
   * the statement an administrator runs; null when not connected
   */
  privileges: { ok: boolean; missing: string[]; sentence: string | null } | null;
}

/** Make this computer's database the main server of a new tree (`clinic-sync init`). */
export interface InitRequest {
  /** mysql://user[:password]@host[:port]/database; the password is kept in the home's secrets */
  dbUrl: string;
  name: string;
  /** which tables to sync (setting tables.preset; default 'all'): 'openmrs' for an OpenMRS database */
  preset?: 'openmrs' | 'all';
}

/** Who answers at a main server's address, before its pairing code is used. */
export interface ParentCheck {
  /** the main server's node name and id */
  name: string;
  nodeId: string;
  /**
   * the fingerprint of its HTTPS certificate ("SHA256:…", as `clinic-sync pair` prints it there),
   * for the person to compare; null over plain HTTP
   */
  fingerprint: string | null;
}

// ---------------------------------------------------------------------------------------------
// Events

export type ApiEvent =
  /** the current status: first on every subscription, then after every change of it */
  | { type: 'status'; status: ApiStatus }
  | { type: 'sync-started'; at: string }
  | { type: 'sync-finished'; at: string; summary: SyncSummary }
  | { type: 'sync-failed'; at: string; error: ApiErrorBody }
  | { type: 'clone-progress'; progress: CloneProgress }
  /** in setup mode (no node yet): the setup state, first on every subscription, then on change */
  | { type: 'setup'; state: SetupState }
  /**
   * only from front ends that reach the engine remotely (the HTTP client): the event stream was
   * lost (false) or is back (true); it reconnects by itself until unsubscribed
   */
  | { type: 'connection'; connected: boolean };

export type ApiEventType = ApiEvent['type'];

// ---------------------------------------------------------------------------------------------
// Errors

/** The engine's error kinds, plus those of the API itself. */
export type ApiErrorKind = ErrorKind | 'unauthorized' | 'not-found' | 'internal';

export const API_ERROR_KINDS: readonly ApiErrorKind[] = [
  'usage',
  'config',
  'database',
  'privileges',
  'state',
  'locked',
  'unreachable',
  'protocol',
  'unauthorized',
  'not-found',
  'internal',
];

/** An error as it travels: over HTTP it is the JSON body of every failed request. */
export interface ApiErrorBody {
  kind: ApiErrorKind;
  message: string;
}

/** What every SyncApi operation rejects with, in every implementation. */
export class ApiError extends Error implements ApiErrorBody {
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toJSON(): ApiErrorBody {
    return { kind: this.kind, message: this.message };
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

export function isApiErrorKind(k: unknown): k is ApiErrorKind {
  return typeof k === 'string' && (API_ERROR_KINDS as readonly string[]).includes(k);
}

/** Rebuilds an ApiError from its JSON body (HTTP, IPC); anything else becomes 'internal'. */
export function apiErrorFrom(body: unknown, fallback: string): ApiError {
  if (typeof body === 'object' && body !== null) {
    const { kind, message } = body as Record<string, unknown>;
    if (isApiErrorKind(kind) && typeof message === 'string') return new ApiError(kind, message);
  }
  return new ApiError('internal', fallback);
}

// ---------------------------------------------------------------------------------------------
// The contract

export interface SyncApi {
  /** the node's state as a front end shows it */
  getStatus(): Promise<ApiStatus>;
  /** on a parent: its children with their last contact; [] on a node without children */
  listChildren(): Promise<ApiChild[]>;
  /**
   * exchange with the parent now until nothing is pending both ways; joins a sync already
   * running. Rejects with 'state' on a root or while paused, 'unreachable' when the parent does
   * not answer.
   */
  syncNow(): Promise<SyncSummary>;
  /** stop scheduled and manual syncs for 2, 8 or 24 hours, or until resumed */
  pauseSync(req: PauseRequest): Promise<PauseState>;
  resumeSync(): Promise<PauseState>;
  /** the settings file, as the engine reads it */
  getSettings(): Promise<Settings>;
  /**
   * sets one setting from its text form (as `clinic-sync config set KEY VALUE`), validated by the
   * shared settings schema; a bad key or value rejects with 'usage'. Returns the new settings.
   */
  updateSetting(key: string, value: string): Promise<Settings>;
  /**
   * names the OpenMRS this node refreshes after applied batches (openmrs.url, openmrs.user) and
   * keeps its password with the node's other secrets; an empty url names none. A null password
   * keeps the one saved. Returns the new settings (which never hold the password).
   */
  setOpenmrsLogin(req: OpenmrsLogin): Promise<Settings>;
  /** a one-time code a child presents once to register with this node */
  createPairingCode(req: PairingRequest): Promise<PairingCode>;
  listConflicts(req: ListRequest): Promise<ApiConflict[]>;
  listHistory(req: ListRequest): Promise<ApiExchange[]>;
  listParked(req: ListRequest): Promise<ApiParked[]>;
  /** starts a clone in the background; progress comes as 'clone-progress' events */
  startClone(req: CloneRequest): Promise<CloneProgress>;
  /** the running or last clone's progress, or null when none was started */
  cloneProgress(): Promise<CloneProgress | null>;
  /**
   * events as they happen; the first is always the current status (in setup mode, the setup
   * state). Returns the function that stops them.
   */
  subscribe(listener: (e: ApiEvent) => void): () => void;

  // Setup: on a computer with no node yet the engine offers only these (and startClone,
  // cloneProgress and subscribe); every other operation rejects with 'state'.

  /** whether this home holds a node, and the wizard's saved progress */
  getSetupState(): Promise<SetupState>;
  /** keeps the wizard's progress; null forgets it (the wizard finished). Refuses a password. */
  saveSetupProgress(progress: SetupProgress | null): Promise<SetupState>;
  /** reads OpenMRS's runtime properties from their usual places */
  detectOpenmrs(): Promise<OpenmrsDetection>;
  /** connects, checks privileges and what the database holds; failures come in the result */
  testDatabase(req: DatabaseTestRequest): Promise<DatabaseTest>;
  /** makes the database the main server of a new tree; rejects 'state' where a node exists */
  initRoot(req: InitRequest): Promise<SetupState>;
  /** asks who answers at a main server's address ('unreachable', 'protocol' otherwise) */
  checkParent(req: { parentUrl: string }): Promise<ParentCheck>;

  // USB keys (issue 7): "Save to USB key" and "Load from USB key".

  /** the removable drives mounted now (USB keys), where files can be saved or found */
  listDrives(): Promise<RemovableDrive[]>;
  /** the transfer files in a folder (a drive's path), newest first, with what each is for */
  findTransferFiles(req: { dir: string }): Promise<TransferFileInfo[]>;
  /**
   * writes the file for this node's parent into a folder: everything the parent has not
   * acknowledged, as far as the drive holds. Rejects 'state' on a root or a full drive.
   */
  exportTransfer(req: ExportRequest): Promise<ExportSummary>;
  /**
   * loads a transfer file meant for this node; for a child's file, writes the reply next to it
   * (or in replyDir). A file for another node, damaged or cut short is refused ('usage',
   * 'protocol' or 'state', one sentence) with nothing applied.
   */
  importTransfer(req: ImportRequest): Promise<ImportSummary>;
}

export type ApiOperation = keyof SyncApi;

/** The running OpenMRS ClinicSync refreshes (issue 12): its address, a user and its password. */
export interface OpenmrsLogin {
  /** like http://localhost:8080/openmrs; empty for none */
  url: string;
  user: string;
  /** null keeps the password saved before */
  password: string | null;
}

/**
 * Every operation's name, in one list: the HTTP server, the HTTP client and the preload bridge
 * are each checked against it (a test asserts each implementation has exactly these methods).
 */
export const API_OPERATIONS = [
  'getStatus',
  'listChildren',
  'syncNow',
  'pauseSync',
  'resumeSync',
  'getSettings',
  'updateSetting',
  'setOpenmrsLogin',
  'createPairingCode',
  'listConflicts',
  'listHistory',
  'listParked',
  'startClone',
  'cloneProgress',
  'subscribe',
  'getSetupState',
  'saveSetupProgress',
  'detectOpenmrs',
  'testDatabase',
  'initRoot',
  'checkParent',
  'listDrives',
  'findTransferFiles',
  'exportTransfer',
  'importTransfer',
] as const satisfies readonly ApiOperation[];

// The list names every operation: this line fails to compile when one is missing from it.
type Missing = Exclude<ApiOperation, (typeof API_OPERATIONS)[number]>;
const everyOperationListed: [Missing] extends [never] ? true : Missing = true;
void everyOperationListed;
