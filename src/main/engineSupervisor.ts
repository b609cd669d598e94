import { isSyncError } from '../engine/errors.js';
import type { SyncApi } from '../api/types.js';
import type { EngineChoice } from './engineChoice.js';
import type { OwnEngine } from './ownEngine.js';
import type { SwitchableApi } from './switchableApi.js';

export interface SupervisorOptions {
  switchable: SwitchableApi;
  /** looks at the node's home again (engineChoice.ts) */
  choose(): Promise<EngineChoice>;
  /** runs the node in this process (ownEngine.ts) */
  startOwn(): Promise<OwnEngine>;
  /** the admin HTTP client of a running engine */
  attach(baseUrl: string, token: string): SyncApi;
  /** the api of a home with no node yet (the setup wizard's), given what to call once it has one */
  setupApi?(onNodeReady: () => void): SyncApi;
  /** a sentence for the tray and the window when there is no engine to show, or null */
  onProblem(sentence: string | null): void;
  /** how long to wait before looking again after a failure, or while an attached engine is lost */
  retryMs: number;
}

/** Sentences for the tray when the app has no engine to show. */
export const NOT_SET_UP = 'This computer is not set up yet: open ClinicSync to set it up.';

/**
 * Keeps one engine behind the app's api: the setup wizard's before there is a node, else the
 * engine that already runs the node (attached), else its own. It looks again after a failure to
 * start, and when an attached engine stays out of reach (a service that was stopped), so the app
 * takes over the node, or hands it back, without a restart.
 */
export class EngineSupervisor {
  private own: OwnEngine | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopAttached: (() => void) | null = null;
  private closed = false;
  private running: Promise<void> | null = null;
  /** what the api stands on now */
  mode: EngineChoice['kind'] | 'none' = 'none';

  constructor(private readonly opts: SupervisorOptions) {}

  /** Looks at the home and takes the engine it calls for (one look at a time). */
  refresh(): Promise<void> {
    this.running ??= this.look().finally(() => (this.running = null));
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.clearTimer();
    await this.running?.catch(() => undefined);
    await this.leave();
    this.opts.switchable.use(null, 'ClinicSync is closing.');
  }

  private async look(): Promise<void> {
    if (this.closed) return;
    this.clearTimer();
    const { opts } = this;
    let choice: EngineChoice;
    try {
      choice = await opts.choose();
    } catch (e) {
      return this.fail(reason(e));
    }
    if (this.closed) return;
    if (choice.kind === 'setup') {
      await this.leave();
      this.mode = 'setup';
      // The window gets the wizard's api; the tray says what to do.
      opts.switchable.use(opts.setupApi?.(() => void this.refresh()) ?? null, NOT_SET_UP);
      opts.onProblem(NOT_SET_UP);
      return;
    }
    if (choice.kind === 'attach') {
      await this.leave();
      this.mode = 'attach';
      const api = opts.attach(choice.baseUrl, choice.token);
      opts.switchable.use(api);
      opts.onProblem(null);
      this.watchAttached(api);
      return;
    }
    if (this.own) return; // already running the node here
    try {
      this.own = await opts.startOwn();
    } catch (e) {
      return this.fail(reason(e));
    }
    if (this.closed) {
      await this.leave();
      return;
    }
    this.mode = 'start';
    opts.switchable.use(this.own.api);
    opts.onProblem(null);
  }

  /** An attached engine that stays lost for retryMs makes the app look again. */
  private watchAttached(api: SyncApi): void {
    let lostTimer: ReturnType<typeof setTimeout> | null = null;
    const stop = api.subscribe((e) => {
      if (e.type !== 'connection') return;
      if (e.connected) {
        if (lostTimer) clearTimeout(lostTimer);
        lostTimer = null;
      } else {
        lostTimer ??= setTimeout(() => void this.refresh(), this.opts.retryMs);
      }
    });
    this.stopAttached = () => {
      if (lostTimer) clearTimeout(lostTimer);
      stop();
    };
  }

  private fail(sentence: string): void {
    this.mode = 'none';
    this.opts.switchable.use(null, sentence);
    this.opts.onProblem(sentence);
    this.timer = setTimeout(() => void this.refresh(), this.opts.retryMs);
  }

  private async leave(): Promise<void> {
    this.stopAttached?.();
    this.stopAttached = null;
    const own = this.own;
    this.own = null;
    if (own) {
      this.opts.switchable.use(null, 'ClinicSync is restarting its engine.');
      await own.close();
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

function reason(e: unknown): string {
  if (isSyncError(e)) {
    if (e.kind === 'locked') {
      return `${e.message.replace(/;\s*stop it or let it finish, then try again\.?$/, '')}; ClinicSync shows it as soon as it answers.`;
    }
    return e.message;
  }
  return `ClinicSync could not start: ${e instanceof Error ? e.message : String(e)}`;
}
