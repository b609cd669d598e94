import type { ApiEvent } from '../api/types.js';
import type { ElectronSeam, WindowSeam } from './electronSeam.js';
import { registerApiHandlers } from './ipc.js';
import { appPageUrl, isTrustedSender, windowOptions } from './security.js';
import type { SwitchableApi } from './switchableApi.js';
import { TrayController } from './tray.js';
import type { EngineView } from './trayState.js';

/** What the shell remembers between runs (desktop.json in the app's own folder). */
export interface ShellPrefs {
  closeNoticeShown: boolean;
}

export interface ShellOptions {
  seam: ElectronSeam;
  /** the api the window and the tray use, whatever engine stands behind it */
  switchable: SwitchableApi;
  preloadPath: string;
  windowIcon: string;
  /** started at login: stay in the tray until asked */
  hidden: boolean;
  keyringWarning: string | null;
  prefs: { read(): ShellPrefs; write(p: ShellPrefs): void };
  /** stops the engine (or lets go of the one attached) before the app quits */
  closeEngine(): Promise<void>;
  log?(message: string): void;
}

export const CLOSE_NOTICE = {
  title: 'ClinicSync is still running',
  body: 'It keeps syncing in the background. Open it again from its icon in the tray; Quit is in the same menu.',
};

/**
 * The desktop app around the window: one instance, a tray that follows the engine, a window that
 * hides to the tray when closed, and the IPC bridge. Returns null when another instance already
 * runs (this one then quits, and the other shows its window).
 */
export function startShell(opts: ShellOptions): Shell | null {
  const { app } = opts.seam;
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return null;
  }
  return new Shell(opts);
}

export class Shell {
  private window: WindowSeam | null = null;
  private quitting = false;
  readonly tray: TrayController;
  private view: EngineView = { status: null, connected: true, problem: null, cloning: false };

  constructor(private readonly opts: ShellOptions) {
    const { seam, switchable } = opts;
    const api = switchable.api;
    seam.app.onSecondInstance(() => this.showWindow());
    // However the quit comes, the engine stops first (it finishes a sync in progress).
    seam.app.onBeforeQuit((prevent) => {
      if (this.quitting) return;
      prevent();
      void this.quit();
    });
    this.tray = new TrayController({
      tray: seam.createTray('working'),
      keyringWarning: opts.keyringWarning,
      notify: (n) => seam.notify(n.title, n.body),
      actions: {
        open: () => this.showWindow(),
        saveToUsb: () => this.showWindow('usb'),
        syncNow: () => api.syncNow(),
        pause: (hours) => api.pauseSync({ hours }),
        resume: () => api.resumeSync(),
        quit: () => void this.quit(),
      },
    });
    registerApiHandlers({
      ipcMain: seam.ipcMain,
      api,
      trusted: (sender) => isTrustedSender(sender, this.window?.webContentsId ?? null),
      onRefused: (sender, channel) =>
        opts.log?.(`refused ${channel} from ${sender.frameUrl ?? 'a closed frame'}`),
    });
    api.subscribe((e) => this.onEvent(e));
    this.tray.update(this.view);
    if (!opts.hidden) this.showWindow();
  }

  /** A sentence when there is no engine to show (EngineSupervisor's onProblem). */
  setProblem(problem: string | null): void {
    this.view = { ...this.view, problem, ...(problem === null ? {} : { status: null }) };
    this.tray.update(this.view);
  }

  /** Shows the window (made on first use), at one of its screens if named. */
  showWindow(screen?: string): void {
    let w = this.window;
    if (w === null) {
      w = this.opts.seam.createWindow(windowOptions(this.opts.preloadPath, this.opts.windowIcon));
      w.onCloseRequested((prevent) => this.onClose(prevent));
      w.load(appPageUrl(screen));
      this.window = w;
    } else if (screen) {
      w.load(appPageUrl(screen));
    }
    if (w.isMinimized()) w.restore();
    w.show();
    w.focus();
  }

  async quit(): Promise<void> {
    if (this.quitting) return;
    this.quitting = true;
    try {
      await this.opts.closeEngine();
    } finally {
      this.tray.dispose();
      this.opts.seam.app.quit();
    }
  }

  private onClose(prevent: () => void): void {
    if (this.quitting) return;
    prevent();
    this.window?.hide();
    const prefs = this.opts.prefs.read();
    if (!prefs.closeNoticeShown) {
      this.opts.seam.notify(CLOSE_NOTICE.title, CLOSE_NOTICE.body);
      this.opts.prefs.write({ ...prefs, closeNoticeShown: true });
    }
  }

  private onEvent(e: ApiEvent): void {
    switch (e.type) {
      case 'status':
        this.view = { ...this.view, status: e.status, connected: true };
        break;
      case 'connection':
        this.view = { ...this.view, connected: e.connected };
        break;
      case 'clone-progress':
        this.view = {
          ...this.view,
          cloning: e.progress.phase !== 'done' && e.progress.phase !== 'failed',
        };
        break;
      default:
        return;
    }
    this.tray.update(this.view);
  }
}
