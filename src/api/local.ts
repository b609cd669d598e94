import { z } from 'zod';
import { setSetting, settingsSchema } from '../engine/config/settings.js';
import { explainDbError } from '../engine/db/pool.js';
import { parseDbUrl } from '../engine/db/url.js';
import { isSyncError } from '../engine/errors.js';
import { listConflicts } from '../engine/apply/conflicts.js';
import { exchangeHistory } from '../engine/node/history.js';
import { getMeta } from '../engine/node/meta.js';
import type { EngineEvent, NodeService } from '../engine/node/service.js';
import type { NodeStatus } from '../engine/node/types.js';
import { createPairingCode } from '../engine/transport/pairing.js';
import { listParkedRows } from './parked.js';
import {
  ApiError,
  childContact,
  isApiError,
  isApiErrorKind,
  overallState,
  type ApiErrorBody,
  type ApiErrorKind,
  type ApiEvent,
  type ApiStatus,
  type CloneProgress,
  type CloneRequest,
  type PairingCode,
  type PauseRequest,
  type PauseState,
  type SyncApi,
} from './types.js';

/**
 * The clone flow, provided by the clone engine (src/engine/clone): runs one clone of a parent
 * into an empty database to the end, reporting progress as it goes, and rejects with a SyncError
 * (or ApiError) saying why when it fails. The API only starts it and relays its progress.
 */
export interface CloneRunner {
  run(req: CloneRequest, onProgress: (p: CloneStep) => void): Promise<void>;
}

/** A runner's progress report: failures come as its rejection, not as a step. */
export type CloneStep = Omit<CloneProgress, 'error'>;

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
const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
});
const cloneSchema = z
  .object({
    parentUrl: httpUrl,
    code: z.string().trim().min(1).max(100),
    dbUrl: z.string().min(1).max(1_000),
    name: settingsSchema.shape.name,
  })
  .strict();

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
  let clone: CloneProgress | null = null;
  let cloneRunning = false;

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

  function setClone(p: CloneProgress): void {
    clone = p;
    send({ type: 'clone-progress', progress: { ...p } });
  }

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
        return next;
      }),

    createPairingCode: (req) =>
      guard(async () => {
        const { ttlMinutes } = parse(
          pairingSchema,
          req,
          "A pairing code's lifetime must be a whole number of minutes from 1 to 10080.",
        );
        return makeCode(ttlMinutes);
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

    startClone: (req: CloneRequest) =>
      guard(() => {
        const valid = parse(
          cloneSchema,
          req,
          'A clone needs the parent address (http:// or https://), the pairing code, the database address and a name of 1 to 40 letters, digits, spaces, dots, dashes or underscores.',
        );
        parseDbUrl(valid.dbUrl);
        const runner = opts.cloneRunner;
        if (!runner) {
          throw new ApiError(
            'state',
            'This engine cannot clone; run "clinic-sync clone --parent URL --code CODE --db URL --name NAME".',
          );
        }
        if (cloneRunning) {
          throw new ApiError('state', 'A clone is already running; wait for it to finish.');
        }
        cloneRunning = true;
        const first: CloneProgress = {
          phase: 'starting',
          tablesDone: 0,
          tablesTotal: 0,
          rowsDone: 0,
          bytesDone: 0,
          etaSeconds: null,
          error: null,
        };
        setClone(first);
        void runner
          .run(valid, (p) => {
            if (cloneRunning) setClone({ ...p, error: null });
          })
          .then(
            () => {
              cloneRunning = false;
              setClone({ ...(clone ?? first), phase: 'done', etaSeconds: 0, error: null });
            },
            (e: unknown) => {
              cloneRunning = false;
              const { kind, message }: ApiErrorBody = toApiError(e);
              setClone({
                ...(clone ?? first),
                phase: 'failed',
                etaSeconds: null,
                error: { kind, message },
              });
            },
          );
        return { ...first };
      }),

    cloneProgress: () => guard(() => (clone ? { ...clone } : null)),

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
