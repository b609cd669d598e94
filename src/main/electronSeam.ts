/*
 * The seam between the desktop shell's logic and Electron. Everything in src/main except index.ts
 * talks to Electron only through these interfaces; index.ts implements them with the real
 * electron module, and the unit tests with stubs (the Electron binary cannot run in CI).
 *
 * The shapes are ours, kept to what the shell uses, so a stub stays small and the logic never
 * reaches for an Electron object it was not handed.
 */
import type { TrayState } from './trayState.js';

/** What a tray menu item does when clicked. */
export type MenuAction =
  'open' | 'sync-now' | 'pause-2' | 'pause-8' | 'pause-24' | 'resume' | 'usb' | 'quit';

/** A tray menu as plain data; index.ts turns it into an Electron Menu. */
export type MenuItemSpec =
  | { kind: 'line'; label: string }
  | { kind: 'action'; action: MenuAction; label: string; enabled: boolean }
  | { kind: 'submenu'; label: string; enabled: boolean; items: MenuItemSpec[] }
  | { kind: 'separator' };

export interface TraySeam {
  /** shows the icon of a state; `dim` is the second frame of the needs-attention blink */
  setIcon(state: TrayState, dim: boolean): void;
  setToolTip(text: string): void;
  /** replaces the whole menu (Linux trays show a menu only as it was when last set) */
  setMenu(items: MenuItemSpec[], onAction: (action: MenuAction) => void): void;
  /** a left click, where the platform reports one (Windows); Linux trays ignore clicks */
  onClick(fn: () => void): void;
  destroy(): void;
}

/** The one window: the React UI (issue "The React window") served from app://clinicsync/. */
export interface WindowSeam {
  /** the id of its web contents: IPC from any other sender is refused */
  readonly webContentsId: number;
  show(): void;
  focus(): void;
  restore(): void;
  isMinimized(): boolean;
  hide(): void;
  /** loads a page of our protocol, like app://clinicsync/index.html#/usb */
  load(url: string): void;
  /**
   * the user asks to close it; `prevent()` keeps it alive (hidden to the tray instead), and the
   * shell calls it unless the app is quitting
   */
  onCloseRequested(fn: (prevent: () => void) => void): void;
}

/** What the window is made with: the security defaults live in security.ts. */
export interface WindowOptions {
  width: number;
  height: number;
  minWidth: number;
  minHeight: number;
  title: string;
  show: boolean;
  /** the icon file (Linux shows it in the task bar) */
  icon: string;
  webPreferences: {
    preload: string;
    contextIsolation: true;
    sandbox: true;
    nodeIntegration: false;
    nodeIntegrationInWorker: false;
    nodeIntegrationInSubFrames: false;
    webSecurity: true;
    allowRunningInsecureContent: false;
    experimentalFeatures: false;
    webviewTag: false;
    spellcheck: false;
  };
}

/** Who sent an IPC message, as the sender check needs it. */
export interface IpcSender {
  /** the id of the web contents that sent it */
  webContentsId: number;
  /** the URL of the frame that sent it, or null when the frame is gone */
  frameUrl: string | null;
  /** whether that frame is its web contents' main frame (not an iframe) */
  isMainFrame: boolean;
  /** sends a message back to that web contents */
  send(channel: string, ...args: unknown[]): void;
  /** called once when that web contents is destroyed (its subscriptions end) */
  onDestroyed(fn: () => void): void;
}

export interface IpcMainSeam {
  /** answers ipcRenderer.invoke(channel, …args) */
  handle(channel: string, fn: (sender: IpcSender, args: unknown[]) => Promise<unknown>): void;
  /** receives ipcRenderer.send(channel, …args) */
  on(channel: string, fn: (sender: IpcSender, args: unknown[]) => void): void;
}

/** Electron's safeStorage, as secrets.ts uses it. */
export interface SafeStorageSeam {
  isEncryptionAvailable(): boolean;
  /**
   * Linux only: which keyring encrypts; 'basic_text' means none (a fixed key in the code), so
   * encryption protects nothing. Elsewhere undefined.
   */
  selectedBackend(): string | undefined;
  encryptString(text: string): Buffer;
  decryptString(data: Buffer): string;
}

export interface AppSeam {
  /** false when another instance holds the lock: this one must quit */
  requestSingleInstanceLock(): boolean;
  /** another launch of the app was refused the lock (it asks this one to show itself) */
  onSecondInstance(fn: () => void): void;
  /**
   * the app is asked to quit (Quit, the OS ending the session, an update); `prevent()` holds it
   * until the shell has stopped the engine, and the shell then quits again
   */
  onBeforeQuit(fn: (prevent: () => void) => void): void;
  quit(): void;
  /** Windows and macOS login items */
  setLoginItemSettings(settings: { openAtLogin: boolean; args: string[] }): void;
  getLoginItemSettings(): { openAtLogin: boolean };
  /** the running executable (the packaged app, or electron in development) */
  exePath(): string;
}

export interface ElectronSeam {
  platform: NodeJS.Platform;
  app: AppSeam;
  createTray(state: TrayState): TraySeam;
  createWindow(options: WindowOptions): WindowSeam;
  /** a desktop notification; it never steals focus */
  notify(title: string, body: string): void;
  ipcMain: IpcMainSeam;
  safeStorage: SafeStorageSeam;
}
