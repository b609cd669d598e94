import { SyncPause } from '../../src/api/local.js';
import {
  API_OPERATIONS,
  ApiError,
  overallState,
  type ApiEvent,
  type ApiStatus,
  type SyncApi,
} from '../../src/api/types.js';
import type { NodeStatus } from '../../src/engine/node/types.js';
import type {
  AppSeam,
  ElectronSeam,
  IpcMainSeam,
  IpcSender,
  MenuAction,
  MenuItemSpec,
  SafeStorageSeam,
  TraySeam,
  WindowOptions,
  WindowSeam,
} from '../../src/main/electronSeam.js';
import type { IpcRendererSeam } from '../../src/preload/bridge.js';
import { appPageUrl } from '../../src/main/security.js';
import type { TrayState } from '../../src/main/trayState.js';
import { quietStatus } from './status.js';

/*
 * Stubs of Electron at the desktop shell's seam (src/main/electronSeam.ts): the binary cannot run
 * in CI, so the shell's logic is tested against these. They copy values the way Electron does
 * (structured clone over IPC; only an Error's message across contextBridge).
 */

type Handler = (sender: IpcSender, args: unknown[]) => Promise<unknown>;
type Listener = (sender: IpcSender, args: unknown[]) => void;

/** The page a stub renderer shows: which web contents, which frame, which URL. */
export interface StubPage {
  webContentsId: number;
  frameUrl: string | null;
  isMainFrame: boolean;
}

export const OUR_PAGE: StubPage = { webContentsId: 7, frameUrl: appPageUrl(), isMainFrame: true };

/** ipcMain in memory; renderers are made with renderer(page). */
export class StubIpc {
  readonly handlers = new Map<string, Handler>();
  readonly listeners = new Map<string, Listener[]>();

  readonly main: IpcMainSeam = {
    handle: (channel, fn) => {
      if (this.handlers.has(channel)) throw new Error(`second handler for ${channel}`);
      this.handlers.set(channel, fn);
    },
    on: (channel, fn) => {
      this.listeners.set(channel, [...(this.listeners.get(channel) ?? []), fn]);
    },
  };

  /** A renderer showing `page`, with its ipcRenderer; destroy() closes its web contents. */
  renderer(page: StubPage): { ipc: IpcRendererSeam; destroy(): void } {
    const incoming = new Map<string, ((event: unknown, ...args: unknown[]) => void)[]>();
    const destroyed: (() => void)[] = [];
    let alive = true;
    const sender: IpcSender = {
      ...page,
      send: (channel, ...args) => {
        if (!alive) return;
        const copy = structuredClone(args);
        for (const fn of incoming.get(channel) ?? []) fn({}, ...copy);
      },
      onDestroyed: (fn) => destroyed.push(fn),
    };
    const ipc: IpcRendererSeam = {
      invoke: async (channel, ...args) => {
        const fn = this.handlers.get(channel);
        if (!fn) throw new Error(`Error invoking remote method '${channel}': no handler`);
        return structuredClone(await fn(sender, structuredClone(args)));
      },
      send: (channel, ...args) => {
        for (const fn of this.listeners.get(channel) ?? []) fn(sender, structuredClone(args));
      },
      on: (channel, fn) => incoming.set(channel, [...(incoming.get(channel) ?? []), fn]),
    };
    return {
      ipc,
      destroy: () => {
        alive = false;
        for (const fn of destroyed.splice(0)) fn();
      },
    };
  }
}

/**
 * What contextBridge does to an object the preload exposes: functions stay callable; values are
 * copied; an Error crosses as a new Error with its message only.
 */
export function acrossContextBridge<T extends object>(exposed: T): T {
  const copy = (v: unknown): unknown =>
    typeof v === 'function' ? bridgeFn(v as (...a: unknown[]) => unknown) : structuredClone(v);
  const bridgeFn =
    (fn: (...a: unknown[]) => unknown) =>
    (...args: unknown[]): unknown => {
      const result = fn(...args.map(copy));
      if (result instanceof Promise) {
        return result.then(copy, (e: unknown) => {
          throw e instanceof Error ? new Error(e.message) : structuredClone(e);
        });
      }
      return copy(result);
    };
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(exposed)) out[key] = copy(value);
  return out as T;
}

export class StubTray implements TraySeam {
  icons: { state: TrayState; dim: boolean }[] = [];
  toolTip = '';
  menu: MenuItemSpec[] = [];
  private onAction: (a: MenuAction) => void = () => undefined;
  private clicked: (() => void) | null = null;
  destroyed = false;

  constructor(initial: TrayState) {
    this.icons.push({ state: initial, dim: false });
  }
  setIcon(state: TrayState, dim: boolean): void {
    this.icons.push({ state, dim });
  }
  setToolTip(text: string): void {
    this.toolTip = text;
  }
  setMenu(items: MenuItemSpec[], onAction: (a: MenuAction) => void): void {
    this.menu = items;
    this.onAction = onAction;
  }
  onClick(fn: () => void): void {
    this.clicked = fn;
  }
  destroy(): void {
    this.destroyed = true;
  }
  /** The menu's labels, one line each: disabled ones in (), submenus with their items. */
  labels(items: MenuItemSpec[] = this.menu): string[] {
    return items.flatMap((i) => {
      if (i.kind === 'separator') return ['---'];
      if (i.kind === 'line') return [`(${i.label})`];
      const label = i.enabled ? i.label : `(${i.label})`;
      if (i.kind === 'submenu') return [`${label} >`, ...this.labels(i.items).map((l) => `  ${l}`)];
      return [label];
    });
  }
  /** Clicks the item with this label, as a person would. */
  click(label: string, items: MenuItemSpec[] = this.menu): void {
    for (const i of items) {
      if (i.kind === 'action' && i.label === label) {
        if (!i.enabled) throw new Error(`"${label}" is disabled`);
        return this.onAction(i.action);
      }
      if (i.kind === 'submenu' && i.enabled) {
        try {
          return this.click(label, i.items);
        } catch {
          // not in this submenu
        }
      }
    }
    throw new Error(`no enabled item "${label}" in ${this.labels().join(' | ')}`);
  }
  leftClick(): void {
    this.clicked?.();
  }
  get state(): TrayState {
    return this.icons.at(-1)!.state;
  }
}

export class StubWindow implements WindowSeam {
  shown = 0;
  focused = 0;
  hidden = 0;
  minimized = false;
  loaded: string[] = [];
  private closeHandler: ((prevent: () => void) => void) | null = null;

  constructor(
    readonly webContentsId: number,
    readonly options: WindowOptions,
  ) {}
  show(): void {
    this.shown++;
  }
  focus(): void {
    this.focused++;
  }
  restore(): void {
    this.minimized = false;
  }
  isMinimized(): boolean {
    return this.minimized;
  }
  hide(): void {
    this.hidden++;
  }
  load(url: string): void {
    this.loaded.push(url);
  }
  onCloseRequested(fn: (prevent: () => void) => void): void {
    this.closeHandler = fn;
  }
  /** The user clicks the close box; true when the window really closed. */
  close(): boolean {
    let prevented = false;
    this.closeHandler?.(() => (prevented = true));
    return !prevented;
  }
}

/** A fake keyring: "encrypts" by reversing and tagging, so a test sees it was used. */
export function stubSafeStorage(backend: string | undefined = 'gnome_libsecret'): SafeStorageSeam {
  return {
    isEncryptionAvailable: () => true,
    selectedBackend: () => backend,
    encryptString: (t) => Buffer.from(`sealed:${[...t].reverse().join('')}`),
    decryptString: (b) => [...b.toString().replace(/^sealed:/, '')].reverse().join(''),
  };
}

/** A whole electron at the seam; `lockHeld` plays another instance holding the lock. */
export class StubElectron implements ElectronSeam {
  platform: NodeJS.Platform = 'linux';
  readonly ipc = new StubIpc();
  readonly ipcMain = this.ipc.main;
  readonly safeStorage = stubSafeStorage();
  trays: StubTray[] = [];
  windows: StubWindow[] = [];
  notices: { title: string; body: string }[] = [];
  quits = 0;
  loginItem = { openAtLogin: false, args: [] as string[] };
  private secondInstance: (() => void)[] = [];
  private beforeQuit: ((prevent: () => void) => void)[] = [];

  constructor(private readonly lockHeld = false) {}

  readonly app: AppSeam = {
    requestSingleInstanceLock: () => !this.lockHeld,
    onSecondInstance: (fn) => this.secondInstance.push(fn),
    onBeforeQuit: (fn) => this.beforeQuit.push(fn),
    quit: () => {
      this.quits++;
    },
    setLoginItemSettings: (s) => {
      this.loginItem = { ...s };
    },
    getLoginItemSettings: () => ({ openAtLogin: this.loginItem.openAtLogin }),
    exePath: () => '/opt/ClinicSync/clinicsync',
  };

  createTray(state: TrayState): StubTray {
    const t = new StubTray(state);
    this.trays.push(t);
    return t;
  }
  createWindow(options: WindowOptions): StubWindow {
    const w = new StubWindow(OUR_PAGE.webContentsId, options);
    this.windows.push(w);
    return w;
  }
  notify(title: string, body: string): void {
    this.notices.push({ title, body });
  }
  /** Something asks the app to quit (the OS, an update): true when nothing held it. */
  askToQuit(): boolean {
    let held = false;
    for (const fn of this.beforeQuit) fn(() => (held = true));
    return !held;
  }
  /** Another launch of the app, refused the lock, asks this one to show itself. */
  launchAgain(): void {
    for (const fn of this.secondInstance) fn();
  }
}

// ---------------------------------------------------------------------------------------------
// An engine behind SyncApi for the shell's tests: its status is whatever the test sets; pausing
// uses the real SyncPause (src/api/local.ts), whose timer resumes by itself.

export function nodeStatus(over: Partial<NodeStatus> = {}): NodeStatus {
  return quietStatus({
    name: 'Rwinkwavu',
    parent: 'http://district.example.org:8750',
    lastSuccessAt: '2026-11-26T10:00:00.000Z',
    nodeId: 'aaaaaaaaaaaaaaaa',
    incarnation: 'bbbbbbbb',
    ...over,
  });
}

/** An ApiStatus as the engine would report it, its state chosen by overallState. */
export function apiStatus(
  over: Partial<NodeStatus> = {},
  extra: Partial<
    Pick<ApiStatus, 'syncing' | 'syncPaused' | 'syncPausedUntil' | 'lastErrorKind'>
  > = {},
): ApiStatus {
  const s = nodeStatus(over);
  const syncing = extra.syncing ?? false;
  const syncPaused = extra.syncPaused ?? false;
  const lastErrorKind = extra.lastErrorKind ?? null;
  return {
    ...s,
    state: overallState(s, { syncing, syncPaused, lastErrorKind, clockWarning: s.clockWarning }),
    lastContactAt: s.lastSuccessAt,
    nextSyncAt: null,
    syncing,
    syncPaused,
    syncPausedUntil: extra.syncPausedUntil ?? null,
    lastErrorKind,
    clockWarning: s.clockWarning,
  };
}

export class StubEngine {
  node: Partial<NodeStatus> = {};
  syncing = false;
  lastErrorKind: ApiStatus['lastErrorKind'] = null;
  readonly calls: string[] = [];
  private readonly listeners = new Set<(e: ApiEvent) => void>();
  readonly api: SyncApi;

  constructor(readonly pause: SyncPause = new SyncPause()) {
    pause.onChange(() => this.emitStatus());
    const refuse = () => Promise.reject(new ApiError('state', 'not in this stub'));
    const ops = Object.fromEntries(API_OPERATIONS.map((op) => [op, refuse])) as unknown as SyncApi;
    this.api = {
      ...ops,
      getStatus: async () => this.status(),
      syncNow: async () => {
        this.calls.push('syncNow');
        return { sent: 0, received: 0, rounds: 1, bytesUp: 0, bytesDown: 0, ms: 1 };
      },
      pauseSync: async (req) => {
        this.calls.push(`pause ${req.hours}`);
        return pause.pause(req.hours);
      },
      resumeSync: async () => {
        this.calls.push('resume');
        return pause.resume();
      },
      subscribe: (listener) => {
        this.listeners.add(listener);
        listener({ type: 'status', status: this.status() });
        return () => this.listeners.delete(listener);
      },
    };
  }

  status(): ApiStatus {
    const p = this.pause.state();
    return apiStatus(this.node, {
      syncing: this.syncing,
      syncPaused: p.paused,
      syncPausedUntil: p.until,
      lastErrorKind: this.lastErrorKind,
    });
  }

  /** Changes the engine's status and tells subscribers, as the engine does. */
  set(
    node: Partial<NodeStatus>,
    more: { syncing?: boolean; lastErrorKind?: ApiStatus['lastErrorKind'] } = {},
  ): void {
    this.node = node;
    this.syncing = more.syncing ?? false;
    this.lastErrorKind = more.lastErrorKind ?? null;
    this.emitStatus();
  }

  emit(e: ApiEvent): void {
    for (const l of [...this.listeners]) l(e);
  }

  emitStatus(): void {
    this.emit({ type: 'status', status: this.status() });
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}
