/*
 * SyncApi over the admin HTTP API (adminServer.ts): for a browser window, for the desktop app
 * attached to a running service, and for `clinic-sync sync` while `serve` runs. Browser-safe: no
 * Node imports; global fetch, and events through an SSE reader over fetch streams.
 */
import { ROUTES, kindOfStatus } from './routes.js';
import { SseParser, readEventStream } from './sse.js';
import {
  ApiError,
  apiErrorFrom,
  type ApiEvent,
  type ApiOperation,
  type ListRequest,
  type SyncApi,
} from './types.js';

export interface HttpApiOptions {
  /** the admin address, like http://127.0.0.1:8751 */
  baseUrl: string;
  /**
   * the admin token; leave it out in a page the admin server itself served, where the cookie
   * set on the first load (the address with ?token=) carries it
   */
  token?: string;
  fetch?: typeof globalThis.fetch;
  /** first wait before reconnecting a lost event stream, in ms (default 1000; doubles to 30 s) */
  reconnectMs?: number;
}

type FetchInit = NonNullable<Parameters<typeof globalThis.fetch>[1]>;

export function createHttpApi(opts: HttpApiOptions): SyncApi {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const auth: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const firstRetry = opts.reconnectMs ?? 1000;

  const unreachable = () =>
    new ApiError(
      'unreachable',
      `The ClinicSync engine at ${base} does not answer; check that "clinic-sync serve" (or the ClinicSync app) is running.`,
    );

  async function request<T>(
    op: Exclude<ApiOperation, 'subscribe'>,
    input: { key?: string; body?: unknown; query?: ListRequest } = {},
  ): Promise<T> {
    const route = ROUTES[op];
    let path = route.path;
    if (input.key !== undefined) path = path.replace(':key', encodeURIComponent(input.key));
    const params = new URLSearchParams();
    if (input.query?.limit !== undefined) params.set('limit', String(input.query.limit));
    const query = params.toString() ? `?${params.toString()}` : '';
    const init: FetchInit = {
      method: route.method,
      headers: { ...auth, accept: 'application/json' },
    };
    if (input.body !== undefined) {
      init.headers = { ...auth, accept: 'application/json', 'content-type': 'application/json' };
      init.body = JSON.stringify(input.body);
    }
    let res: Response;
    try {
      res = await doFetch(`${base}${path}${query}`, init);
    } catch {
      throw unreachable();
    }
    let parsed: unknown = null;
    let text = '';
    try {
      text = await res.text();
      parsed = text === '' ? null : (JSON.parse(text) as unknown);
    } catch {
      if (res.ok) throw new ApiError('protocol', `The engine at ${base} answered with no JSON.`);
    }
    if (!res.ok) {
      const fallback = `The engine at ${base} refused ${route.method} ${path} (HTTP ${res.status}).`;
      throw isErrorBody(parsed)
        ? apiErrorFrom(parsed, fallback)
        : new ApiError(kindOfStatus(res.status), fallback);
    }
    return parsed as T;
  }

  return {
    getStatus: () => request('getStatus'),
    listChildren: () => request('listChildren'),
    syncNow: () => request('syncNow'),
    pauseSync: (req) => request('pauseSync', { body: req }),
    resumeSync: () => request('resumeSync'),
    getSettings: () => request('getSettings'),
    updateSetting: (key, value) => request('updateSetting', { key, body: { value } }),
    setOpenmrsLogin: (req) => request('setOpenmrsLogin', { body: req }),
    createPairingCode: (req) => request('createPairingCode', { body: req }),
    listConflicts: (req) => request('listConflicts', { query: req }),
    listHistory: (req) => request('listHistory', { query: req }),
    listParked: (req) => request('listParked', { query: req }),
    startClone: (req) => request('startClone', { body: req }),
    cloneProgress: () => request('cloneProgress'),
    getSetupState: () => request('getSetupState'),
    // JSON null travels as the body "null": forget the progress.
    saveSetupProgress: (progress) => request('saveSetupProgress', { body: progress }),
    detectOpenmrs: () => request('detectOpenmrs'),
    testDatabase: (req) => request('testDatabase', { body: req }),
    initRoot: (req) => request('initRoot', { body: req }),
    checkParent: (req) => request('checkParent', { body: req }),
    listDrives: () => request('listDrives'),
    findTransferFiles: (req) => request('findTransferFiles', { body: req }),
    exportTransfer: (req) => request('exportTransfer', { body: req }),
    importTransfer: (req) => request('importTransfer', { body: req }),

    subscribe(listener) {
      const controller = new AbortController();
      let connected: boolean | null = null;
      const setConnected = (now: boolean) => {
        // The first successful connection is not an event (the status that follows says it all).
        if (connected === now || (connected === null && now)) {
          connected = now;
          return;
        }
        connected = now;
        safe(() => listener({ type: 'connection', connected: now }));
      };

      const run = async () => {
        let wait = firstRetry;
        const parser = new SseParser();
        while (!controller.signal.aborted) {
          try {
            const res = await doFetch(`${base}${ROUTES.subscribe.path}`, {
              headers: { ...auth, accept: 'text/event-stream' },
              signal: controller.signal,
            });
            if (!res.ok || !res.body) {
              await res.body?.cancel().catch(() => undefined);
              throw new Error(`HTTP ${res.status}`);
            }
            setConnected(true);
            wait = parser.retryMs ?? firstRetry;
            await readEventStream(res.body, parser, (m) => {
              let e: ApiEvent;
              try {
                e = JSON.parse(m.data) as ApiEvent;
              } catch {
                return;
              }
              if (!controller.signal.aborted) safe(() => listener(e));
            });
          } catch {
            // Lost, refused or never reached: said once, then tried again below.
          }
          if (controller.signal.aborted) return;
          setConnected(false);
          await sleep(wait, controller.signal);
          wait = Math.min(wait * 2, 30_000);
        }
      };
      void run();
      return () => controller.abort();
    },
  };
}

function isErrorBody(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'kind' in v && 'message' in v;
}

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // A listener's failure is its own.
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
