import path from 'node:path';
import { z } from 'zod';
import { setSetting } from '../engine/config/settings.js';
import { OPENMRS_PASSWORD_SECRET } from '../engine/openmrs/password.js';
import { explainDbError } from '../engine/db/pool.js';
import { isSyncError } from '../engine/errors.js';
import { listConflicts } from '../engine/apply/conflicts.js';
import { exchangeHistory } from '../engine/node/history.js';
import { getMeta } from '../engine/node/meta.js';
import type { EngineEvent, NodeService } from '../engine/node/service.js';
import type { NodeStatus } from '../engine/node/types.js';
import { createPairingCode } from '../engine/transport/pairing.js';
import { readCertificate } from '../engine/transport/tls.js';
import { listRemovableDrives } from '../engine/transfer/drives.js';
import { findTransferFiles } from '../engine/transfer/findFiles.js';
import { loadTransferFile } from '../engine/transfer/loadFile.js';
import { exportForParent } from '../engine/transfer/writeFile.js';
import { CloneJob, type CloneRunner } from './cloneJob.js';
import { listParkedRows } from './parked.js';
import { checkParent, detectOpenmrs, loadProgress, saveProgress, testDatabase } from './setup.js';
import {
  ApiError,
  childContact,
  isApiError,
  isApiErrorKind,
  overallState,
  type ApiErrorKind,
  type ApiEvent,
  type ApiStatus,
  type CloneRequest,
  type PairingCode,
  type PauseRequest,
  type PauseState,
  type SetupState,
  type SyncApi,
} from './types.js';

export type { CloneRunner, CloneStep } from './cloneJob.js';

/** What the scheduler (issue "scheduler") tells the status: when it will next exchange. */
export interface ScheduleView {
  nextSyncAt(): string | null;
}

const HOUR_MS = 3_600_000;

/**
 * The user's pause (Dropbox-style: 2, 8 or 24 hours, or until resumed), kept in memory with a
 * timer that resumes by itself. A restart forgets it, as a tray app's pause would.
 *
 * The scheduler of the later issue takes this over: it receives the same SyncPause (option
 * `pause` of createLocalApi), asks isPaused() before each scheduled exchange and listens to
 * onChange to re-plan.
 */
export class SyncPause {
  private pausedFlag = false;
  private untilMs: number | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly listeners = new Set<() => void>();

  /** `hourMs` is the length of an hour, shortened by tests. */
  constructor(
    private readonly hourMs = HOUR_MS,
    private readonly now: () => number = Date.now,
  ) {}

  pause(hours: number | null): PauseState {
    this.clearTimer();
    this.pausedFlag = true;
    this.untilMs = hours === null ? null : this.now() + hours * this.hourMs;
    if (hours !== null) {
      this.timer = setTimeout(() => this.resume(), hours * this.hourMs);
      // A pause alone never keeps a process alive.
      this.timer.unref?.();
    }
    this.changed();
    return this.state();
  }

  resume(): PauseState {
    const was = this.pausedFlag;
    this.clearTimer();
    this.pausedFlag = false;
    this.untilMs = null;
    if (was) this.changed();
    return this.state();
  }

  isPaused(): boolean {
    return this.pausedFlag;
  }

  state(): PauseState {
    return {
      paused: this.pausedFlag,
      until: this.untilMs === null ? null : new Date(this.untilMs).toISOString(),
    };
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }
}

export interface LocalApiOptions {
  service: NodeService;
  /** the clone flow; without it startClone rejects with 'state' */
  cloneRunner?: CloneRunner;
  /** makes pairing codes; defaults to the transport's (src/engine/transport/pairing.ts) */
  pairing?: (ttlMinutes: number) => Promise<PairingCode>;
  /** the scheduler's view, for nextSyncAt; without it nextSyncAt is null */
  schedule?: ScheduleView;
  /** the pause state, shared with the scheduler; a new one by default */
  pause?: SyncPause;
  now?: () => number;
  /** aborting it detaches the api from the service and the pause (a host that re-creates it) */
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------
// Input validation: every implementation's input reaches the engine through here, so the
// renderer (through IPC or HTTP) cannot hand the engine anything malformed.

const listSchema = z
  .object({ limit: z.number().int().min(1).max(10_000).optional() })
  .strict()
  .optional();
const pauseSchema = z
  .object({ hours: z.union([z.literal(2), z.literal(8), z.literal(24), z.null()]) })
  .strict();
const pairingSchema = z.object({ ttlMinutes: z.number().int().min(1).max(10_080) }).strict();
// The engine may run in another folder than the window: only full paths mean one place.
const fullPath = z
  .string()
  .min(1)
  .max(4_096)
  .refine((p) => path.isAbsolute(p) && !p.includes('\0'));
const dirSchema = z.object({ dir: fullPath }).strict();
const importSchema = z
  .object({ file: fullPath, replyDir: fullPath.nullable().optional() })
  .strict();
const openmrsLoginSchema = z
  .object({
    url: z.string().max(2_000),
    user: z.string().max(100),
    password: z.string().max(1_000).nullable(),
  })
  .strict();
const FOLDER_SENTENCE =
  'Give the folder as a full path, like /media/nurse/KEY or E:\\ (a drive from the list of USB keys).';
function parse<S extends z.ZodType>(schema: S, value: unknown, sentence: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ApiError('usage', sentence);
  return r.data;
}

const DEFAULT_LIMIT = 100;

function limitOf(req: unknown): number {
  const r = parse(
    listSchema,
    req ?? undefined,
    'The list limit must be a whole number from 1 to 10000.',
  );
  return r?.limit ?? DEFAULT_LIMIT;
}

// ---------------------------------------------------------------------------------------------

/**
 * The in-process SyncApi over one running node (the `serve` host and the desktop app's main
 * process construct it; the admin server and the preload bridge expose it).
 */
export function createLocalApi(opts: LocalApiOptions): SyncApi {
  const { service } = opts;
  const node = service.node;
  const now = opts.now ?? Date.now;
  const pause = opts.pause ?? new SyncPause(HOUR_MS, now);
  const makeCode = opts.pairing ?? ((ttl: number) => createPairingCode(node.pool, ttl));
  const listeners = new Set<(e: ApiEvent) => void>();

  let syncing = false;
  let lastErrorKind: ApiErrorKind | null = null;

  const iso = () => new Date(now()).toISOString();

  /** Every failure leaves as an ApiError with a kind and one sentence. */
  function toApiError(e: unknown): ApiError {
    if (isApiError(e)) return e;
    if (isSyncError(e)) return new ApiError(e.kind, e.message);
    if (isDriverError(e)) {
      const s = explainDbError(e, node.db);
      return new ApiError(s.kind, s.message);
    }
    const message = e instanceof Error ? e.message : String(e);
    return new ApiError('internal', `ClinicSync stopped on an unexpected error: ${message}`);
  }

  async function guard<T>(fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw toApiError(e);
    }
  }

  function emit(e: ApiEvent): void {
    for (const l of [...listeners]) {
      try {
        l(e);
      } catch {
        // A listener's failure is its own; the others still hear.
      }
    }
  }

  async function names(): Promise<Map<string, string>> {
    const map = new Map<string, string>();
    for (const p of await node.peers()) map.set(p.nodeId, p.name);
    map.set(node.nodeId, (await getMeta(node.pool, 'name')) ?? node.settings.name);
    return map;
  }

  /** What the host knows in memory, taken when something happens (the database is read after). */
  interface Moment {
    syncing: boolean;
    pause: PauseState;
    lastErrorKind: ApiErrorKind | null;
  }
  const moment = (): Moment => ({ syncing, pause: pause.state(), lastErrorKind });

  async function toApiStatus(s: NodeStatus, m: Moment): Promise<ApiStatus> {
    const peers = await node.peers();
    const contacts = peers
      .filter((p) => (s.role === 'child' ? p.relation === 'parent' : p.relation === 'child'))
      .map((p) => p.lastContactAt)
      .filter((t): t is string => t !== null)
      .sort();
    const clockWarning = s.clockWarning;
    const kind = s.lastError === null ? null : m.lastErrorKind;
    return {
      ...s,
      state: overallState(s, {
        syncing: m.syncing,
        syncPaused: m.pause.paused,
        lastErrorKind: kind,
        clockWarning,
      }),
      lastContactAt: contacts.at(-1) ?? null,
      nextSyncAt:
        s.role === 'child' && !m.pause.paused ? (opts.schedule?.nextSyncAt() ?? null) : null,
      syncing: m.syncing,
      syncPaused: m.pause.paused,
      syncPausedUntil: m.pause.until,
      lastErrorKind: kind,
      clockWarning,
    };
  }

  async function currentStatus(): Promise<ApiStatus> {
    const m = moment();
    return toApiStatus(await service.status(), m);
  }

  /*
   * Events leave in the order of what caused them, each with the host's state at that
   * moment, so a slow read cannot deliver "syncing" after "up to date". A failure to read the
   * status is not an event.
   */
  let queue: Promise<void> = Promise.resolve();
  function send(e: ApiEvent): void {
    queue = queue.then(() => emit(e));
  }
  function emitStatus(known?: NodeStatus): void {
    if (!listeners.size) return;
    const m = moment();
    const reading = (known ? Promise.resolve(known) : service.status()).then((s) =>
      toApiStatus(s, m),
    );
    reading.catch(() => undefined);
    queue = queue.then(() =>
      reading.then(
        (status) => emit({ type: 'status', status }),
        () => undefined,
      ),
    );
  }

  const offService = service.on((e: EngineEvent) => {
    switch (e.type) {
      case 'sync-started':
        syncing = true;
        send({ type: 'sync-started', at: iso() });
        emitStatus();
        break;
      case 'sync-finished':
        syncing = false;
        lastErrorKind = null;
        send({ type: 'sync-finished', at: iso(), summary: { ...e.summary } });
        // The engine follows with a status event.
        break;
      case 'sync-failed': {
        syncing = false;
        const kind: ApiErrorKind = isApiErrorKind(e.kind) ? e.kind : 'internal';
        lastErrorKind = kind;
        send({ type: 'sync-failed', at: iso(), error: { kind, message: e.message } });
        emitStatus();
        break;
      }
      case 'status':
        emitStatus(e.status);
        break;
    }
  });
  const offPause = pause.onChange(() => emitStatus());
  opts.signal?.addEventListener(
    'abort',
    () => {
      offService();
      offPause();
      listeners.clear();
    },
    { once: true },
  );

  const cloneJob = new CloneJob({
    runner: opts.cloneRunner,
    report: (progress) => send({ type: 'clone-progress', progress }),
    explain: toApiError,
  });
  const setupState = (): SetupState => ({
    node: { name: node.settings.name, role: node.settings.role },
    progress: loadProgress(node.home),
    clone: cloneJob.progress(),
  });

  return {
    getStatus: () => guard(currentStatus),

    listChildren: () =>
      guard(async () => {
        const at = now();
        return (await service.status()).children.map((c) => ({
          ...c,
          contact: childContact(c.lastContactAt, at),
        }));
      }),

    syncNow: () =>
      guard(async () => {
        if (pause.isPaused()) {
          const until = pause.state().until;
          throw new ApiError(
            'state',
            until
              ? `Syncing is paused until ${until}; resume it to sync now.`
              : 'Syncing is paused; resume it to sync now.',
          );
        }
        const s = await service.syncNow();
        return { ...s };
      }),

    pauseSync: (req: PauseRequest) =>
      guard(() => {
        const { hours } = parse(
          pauseSchema,
          req,
          'Pause for 2, 8 or 24 hours, or with hours null until resumed.',
        );
        return pause.pause(hours);
      }),

    resumeSync: () => guard(() => pause.resume()),

    getSettings: () => guard(() => node.home.load() ?? node.settings),

    updateSetting: (key: string, value: string) =>
      guard(() => {
        if (typeof key !== 'string' || typeof value !== 'string') {
          throw new ApiError('usage', 'A setting is changed with its name and its value as text.');
        }
        const next = setSetting(node.home.load() ?? node.settings, key, value);
        node.home.save(next);
        // The running engine reads its sync limits from this object: they apply at once. The
        // database and the tables take effect when the engine next starts.
        if (key.startsWith('sync.')) Object.assign(node.settings.sync, next.sync);
        // So do the limits of growth (the disk threshold, the silent-child limit, the log's size).
        if (key.startsWith('storage.')) Object.assign(node.settings.storage, next.storage);
        return next;
      }),

    setOpenmrsLogin: (req) =>
      guard(() => {
        const login = parse(
          openmrsLoginSchema,
          req,
          "OpenMRS is named by its address, a user name and that user's password, as text.",
        );
        const url = login.url.trim();
        const user = url === '' ? '' : login.user.trim();
        let next = setSetting(node.home.load() ?? node.settings, 'openmrs.url', url);
        next = setSetting(next, 'openmrs.user', user);
        const password = login.password === null ? null : login.password.trim();
        if (url !== '') {
          if (user === '') {
            throw new ApiError('usage', 'Give the OpenMRS user that ClinicSync signs in as.');
          }
          if (
            password === '' ||
            (password === null && !node.home.readSecret(OPENMRS_PASSWORD_SECRET))
          ) {
            throw new ApiError('usage', `Give the password of the OpenMRS user "${user}".`);
          }
        }
        if (password) node.home.writeSecret(OPENMRS_PASSWORD_SECRET, password);
        node.home.save(next);
        // A running refresher reads these on each round; one starts with the engine.
        Object.assign(node.settings.openmrs, next.openmrs);
        return next;
      }),

    createPairingCode: (req) =>
      guard(async () => {
        const { ttlMinutes } = parse(
          pairingSchema,
          req,
          "A pairing code's lifetime must be a whole number of minutes from 1 to 10080.",
        );
        const made = await makeCode(ttlMinutes);
        // What `clinic-sync pair` prints too: the clinic compares it on first contact (HTTPS).
        return { ...made, fingerprint: readCertificate(node.home)?.fingerprint ?? null };
      }),

    listConflicts: (req) =>
      guard(async () => {
        const limit = limitOf(req);
        const [rows, known] = await Promise.all([listConflicts(node.pool, limit), names()]);
        return rows.map((c) => ({
          ...c,
          winnerName: known.get(c.winnerOrigin) ?? null,
          loserName: known.get(c.loserOrigin) ?? null,
        }));
      }),

    listHistory: (req) =>
      guard(async () => {
        const limit = limitOf(req);
        const [rows, known] = await Promise.all([exchangeHistory(node.pool, limit), names()]);
        return rows.map((r) => ({ ...r, peerName: known.get(r.peer) ?? null }));
      }),

    listParked: (req) =>
      guard(async () => {
        const limit = limitOf(req);
        const [rows, known] = await Promise.all([listParkedRows(node.pool, limit), names()]);
        return rows.map((r) => ({ ...r, originName: known.get(r.origin) ?? null }));
      }),

    startClone: (req: CloneRequest) => guard(() => cloneJob.start(req)),

    cloneProgress: () => guard(() => cloneJob.progress()),

    getSetupState: () => guard(setupState),

    saveSetupProgress: (progress) =>
      guard(() => {
        saveProgress(node.home, progress);
        return setupState();
      }),

    detectOpenmrs: () => guard(() => detectOpenmrs()),

    testDatabase: (req) => guard(() => testDatabase(req)),

    initRoot: () =>
      guard(() => {
        throw new ApiError(
          'state',
          `This computer already holds the node "${node.settings.name}"; it cannot become another main server.`,
        );
      }),

    checkParent: (req) => guard(() => checkParent(req, node.settings.sync.timeoutSeconds)),

    listDrives: () => guard(() => listRemovableDrives()),

    findTransferFiles: (req) =>
      guard(() => {
        const { dir } = parse(dirSchema, req, FOLDER_SENTENCE);
        return findTransferFiles(dir, node.nodeId);
      }),

    exportTransfer: (req) =>
      guard(async () => {
        const { dir } = parse(dirSchema, req, FOLDER_SENTENCE);
        const summary = await exportForParent(node, dir);
        emitStatus();
        return summary;
      }),

    importTransfer: (req) =>
      guard(async () => {
        const { file, replyDir } = parse(
          importSchema,
          req,
          'Give the transfer file, and the folder for the reply if any, as full paths, like /media/nurse/KEY/clinicsync-butaro-to-district-20261126T1432Z.csync.',
        );
        const summary = await loadTransferFile(node, file, { replyDir: replyDir ?? null });
        emitStatus();
        return summary;
      }),

    subscribe(listener) {
      // The current status comes first; events that happen meanwhile wait behind it.
      let ready = false;
      let active = true;
      const queued: ApiEvent[] = [];
      const deliver = (e: ApiEvent) => {
        if (!active) return;
        if (ready) listener(e);
        else queued.push(e);
      };
      listeners.add(deliver);
      const flush = () => {
        ready = true;
        for (const e of queued.splice(0)) if (active) listener(e);
      };
      currentStatus().then(
        (status) => {
          if (active) listener({ type: 'status', status });
          flush();
        },
        () => flush(),
      );
      return () => {
        active = false;
        listeners.delete(deliver);
      };
    },
  };
}

function isDriverError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  return (
    'sqlState' in e ||
    (typeof code === 'string' && /^(ER_|PROTOCOL_|ECONN|ETIMEDOUT|ENOTFOUND|EAI_)/.test(code))
  );
}
