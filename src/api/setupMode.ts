import type { Home } from '../engine/config/home.js';
import { isSyncError } from '../engine/errors.js';
import { adminToken, startAdminServer } from './adminServer.js';
import { CloneJob, type CloneRunner } from './cloneJob.js';
import type { AdminApiHost } from './host.js';
import { createLocalApi, type LocalApiOptions } from './local.js';
import {
  checkParent,
  detectOpenmrs,
  initRootNode,
  loadProgress,
  saveProgress,
  testDatabase,
} from './setup.js';
import {
  API_OPERATIONS,
  ApiError,
  isApiError,
  type ApiEvent,
  type ApiOperation,
  type SetupState,
  type SyncApi,
} from './types.js';

/*
 * Setup mode: the engine on a computer with no node yet (issue "The React window", item 1).
 * `clinic-sync serve` (or the desktop app) serves the window on the admin address; the api then
 * offers only what the setup wizard needs. Once the wizard has made the node (initRoot, or a
 * clone that finished), the host opens it and hands the same address, with the same token, to
 * the node's own api: the open window carries on without reconnecting by hand.
 */

export interface SetupApiOptions {
  home: Home;
  /** the clone flow (the engine's cloneRunner(home)); without it startClone rejects */
  cloneRunner?: CloneRunner;
  /** called once, when the wizard has made the node in the home */
  onNodeReady: () => void;
}

const SETUP_ONLY = new Set<ApiOperation>([
  'getSetupState',
  'saveSetupProgress',
  'detectOpenmrs',
  'testDatabase',
  'initRoot',
  'checkParent',
  'startClone',
  'cloneProgress',
  'subscribe',
]);

/** The api of a home with no node: setup operations work, every other one rejects 'state'. */
export function createSetupApi(opts: SetupApiOptions): SyncApi {
  const { home } = opts;
  const listeners = new Set<(e: ApiEvent) => void>();
  let ready = false;
  let initRunning = false;

  const emit = (e: ApiEvent) => {
    for (const l of [...listeners]) {
      try {
        l(e);
      } catch {
        // A listener's failure is its own.
      }
    }
  };
  const state = (): SetupState => {
    const settings = home.load();
    return {
      node: settings ? { name: settings.name, role: settings.role } : null,
      progress: loadProgress(home),
      clone: cloneJob.progress(),
    };
  };
  const changed = () => emit({ type: 'setup', state: state() });
  const nodeReady = () => {
    if (ready) return;
    ready = true;
    changed();
    opts.onNodeReady();
  };
  const cloneJob = new CloneJob({
    runner: opts.cloneRunner,
    report: (progress) => emit({ type: 'clone-progress', progress }),
    explain: toApiError,
    onDone: nodeReady,
  });

  async function guard<T>(fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw toApiError(e);
    }
  }

  const notYet = () =>
    Promise.reject(
      new ApiError(
        'state',
        'This computer is not set up yet; finish the setup in the ClinicSync window first.',
      ),
    );
  // Every other operation refuses; the setup ones below replace theirs.
  const refused = Object.fromEntries(
    API_OPERATIONS.filter((op) => !SETUP_ONLY.has(op)).map((op) => [op, notYet]),
  ) as unknown as SyncApi;

  return {
    ...refused,
    getSetupState: () => guard(state),
    saveSetupProgress: (progress) =>
      guard(() => {
        saveProgress(home, progress);
        const s = state();
        emit({ type: 'setup', state: s });
        return s;
      }),
    detectOpenmrs: () => guard(() => detectOpenmrs()),
    testDatabase: (req) => guard(() => testDatabase(req)),
    checkParent: (req) => guard(() => checkParent(req)),
    initRoot: (req) =>
      guard(async () => {
        if (initRunning || ready) {
          throw new ApiError('state', 'This computer is already being set up.');
        }
        initRunning = true;
        try {
          await initRootNode(home, req);
        } finally {
          initRunning = false;
        }
        nodeReady();
        return state();
      }),
    startClone: (req) =>
      guard(() => {
        if (initRunning || ready) {
          throw new ApiError('state', 'This computer is already being set up.');
        }
        return cloneJob.start(req);
      }),
    cloneProgress: () => guard(() => cloneJob.progress()),
    subscribe(listener) {
      listeners.add(listener);
      queueMicrotask(() => {
        if (!listeners.has(listener)) return;
        try {
          listener({ type: 'setup', state: state() });
        } catch {
          // A listener's failure is its own.
        }
      });
      return () => listeners.delete(listener);
    },
  };
}

function toApiError(e: unknown): ApiError {
  if (isApiError(e)) return e;
  if (isSyncError(e)) return new ApiError(e.kind, e.message);
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError('internal', `ClinicSync stopped on an unexpected error: ${message}`);
}

/**
 * A SyncApi that forwards to another one, which can be replaced: the admin server keeps its
 * address while the setup-mode api gives way to the node's. Subscribers move with it (their next
 * event is the new api's first: the node's status).
 */
export function switchableApi(initial: SyncApi): { api: SyncApi; use(next: SyncApi): void } {
  let current = initial;
  const subscriptions = new Set<{ listener: (e: ApiEvent) => void; stop: () => void }>();
  const forward = Object.fromEntries(
    API_OPERATIONS.filter((op) => op !== 'subscribe').map((op) => [
      op,
      (...args: unknown[]) => (current[op] as (...a: unknown[]) => Promise<unknown>)(...args),
    ]),
  ) as unknown as SyncApi;
  const api: SyncApi = {
    ...forward,
    subscribe(listener) {
      const sub = { listener, stop: current.subscribe(listener) };
      subscriptions.add(sub);
      return () => {
        sub.stop();
        subscriptions.delete(sub);
      };
    },
  };
  return {
    api,
    use(next) {
      current = next;
      for (const sub of subscriptions) {
        sub.stop();
        sub.stop = next.subscribe(sub.listener);
      }
    },
  };
}

export interface SetupHost {
  url: string;
  port: number;
  /** the address a browser on this computer opens: the url with the token */
  pageUrl: string;
  /** resolves when the wizard has made the node in the home */
  nodeReady: Promise<void>;
  /**
   * serves the node's own api on the same address from now on (after nodeReady); returns it as
   * startAdminApi would have
   */
  attach(opts: LocalApiOptions): AdminApiHost;
  close(): Promise<void>;
}

/** The admin server of a home with no node yet, in setup mode. */
export async function startSetupHost(opts: {
  home: Home;
  host: string;
  port: number;
  staticDir?: string;
  cloneRunner?: CloneRunner;
}): Promise<SetupHost> {
  const token = adminToken(opts.home);
  let markReady: () => void = () => undefined;
  const nodeReady = new Promise<void>((resolve) => (markReady = resolve));
  const setupApi = createSetupApi({
    home: opts.home,
    cloneRunner: opts.cloneRunner,
    onNodeReady: () => markReady(),
  });
  const switcher = switchableApi(setupApi);
  const server = await startAdminServer({
    api: switcher.api,
    host: opts.host,
    port: opts.port,
    token,
    staticDir: opts.staticDir,
  });
  const pageUrl = `${server.url}/?token=${encodeURIComponent(token)}`;
  let detach: AbortController | null = null;
  return {
    url: server.url,
    port: server.port,
    pageUrl,
    nodeReady,
    attach(local) {
      detach?.abort();
      const controller = new AbortController();
      detach = controller;
      const api = createLocalApi({ ...local, signal: controller.signal });
      switcher.use(api);
      return {
        url: server.url,
        port: server.port,
        api,
        pageUrl,
        async close() {
          await server.close();
          controller.abort();
        },
      };
    },
    async close() {
      await server.close();
      detach?.abort();
    },
  };
}
