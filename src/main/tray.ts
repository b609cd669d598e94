import type { MenuAction, TraySeam } from './electronSeam.js';
import { Notifier, type Notice } from './notifications.js';
import { trayMenu } from './trayMenu.js';
import {
  localTime,
  statusWords,
  trayStateOf,
  type EngineView,
  type TimeFormat,
  type TrayState,
} from './trayState.js';

/** What the tray's menu items do; the shell provides them. */
export interface TrayActions {
  open(): void;
  saveToUsb(): void;
  syncNow(): Promise<unknown>;
  pause(hours: 2 | 8 | 24): Promise<unknown>;
  resume(): Promise<unknown>;
  quit(): void;
}

export interface TrayControllerOptions {
  tray: TraySeam;
  actions: TrayActions;
  notify(notice: Notice): void;
  /** shown as a menu line where the OS offers no keyring (secrets.ts) */
  keyringWarning: string | null;
  now?: () => number;
  time?: TimeFormat;
}

/** The needs-attention icon blinks this long after the state begins, then stays still. */
export const BLINK_MS = 60_000;
const BLINK_STEP_MS = 800;

/**
 * Keeps the tray in step with the engine: on every change it picks the state by urgency, sets
 * the icon (calm: only "needs attention" blinks, and only for a minute), the tooltip and a fresh
 * menu, and raises the notifications Notifier allows.
 */
export class TrayController {
  private state: TrayState | null = null;
  private readonly notifier: Notifier;
  private blink: ReturnType<typeof setInterval> | null = null;
  private blinkStop: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly opts: TrayControllerOptions) {
    this.notifier = new Notifier(opts.now);
    opts.tray.onClick(() => opts.actions.open());
  }

  /** The state shown now (null before the first update). */
  get current(): TrayState | null {
    return this.state;
  }

  update(view: EngineView): void {
    const state = trayStateOf(view);
    const words = statusWords(view, state, this.opts.time ?? localTime);
    const { tray } = this.opts;
    if (state !== this.state) {
      this.stopBlink();
      tray.setIcon(state, false);
      if (state === 'needs-attention') this.startBlink();
    }
    this.state = state;
    tray.setToolTip(`ClinicSync: ${words.headline}`);
    tray.setMenu(trayMenu(view, state, words, this.opts.keyringWarning), (a) => this.act(a));
    const notice = this.notifier.next(state, words);
    if (notice) this.opts.notify(notice);
  }

  /** What a click on a menu item does. Failures show up in the next status, not here. */
  act(action: MenuAction): void {
    const a = this.opts.actions;
    const quietly = (p: Promise<unknown>) => void p.catch(() => undefined);
    switch (action) {
      case 'open':
        return a.open();
      case 'usb':
        return a.saveToUsb();
      case 'quit':
        return a.quit();
      case 'sync-now':
        return quietly(a.syncNow());
      case 'pause-2':
        return quietly(a.pause(2));
      case 'pause-8':
        return quietly(a.pause(8));
      case 'pause-24':
        return quietly(a.pause(24));
      case 'resume':
        return quietly(a.resume());
    }
  }

  dispose(): void {
    this.stopBlink();
    this.opts.tray.destroy();
  }

  private startBlink(): void {
    let dim = false;
    this.blink = setInterval(() => {
      dim = !dim;
      this.opts.tray.setIcon('needs-attention', dim);
    }, BLINK_STEP_MS);
    this.blinkStop = setTimeout(() => {
      this.stopBlink();
      this.opts.tray.setIcon('needs-attention', false);
    }, BLINK_MS);
  }

  private stopBlink(): void {
    if (this.blink) clearInterval(this.blink);
    if (this.blinkStop) clearTimeout(this.blinkStop);
    this.blink = null;
    this.blinkStop = null;
  }
}
