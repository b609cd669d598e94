import cron, { type ScheduledTask } from 'node-cron';
import type { Settings } from '../config/settings.js';
import { isSyncError } from '../errors.js';
import { dbTrouble } from './dbRetry.js';
import { linkFailureOf } from './pace.js';
import type { SyncSummary } from './service.js';

/*
 * A child's sync schedule (issue 8, item 1; DESIGN §1). Slots come every sync.intervalSeconds,
 * on the wall clock (every 10 minutes: :00, :10, … shifted by a per-node offset so a district's
 * children do not all call at the same second). Within a slot a failed sync is tried again up to
 * sync.retries times, after a pause that doubles each time, with jitter, and whose length
 * depends on what failed: a cut or timed-out exchange is tried again soon (its batch shrank), an
 * unreachable parent later, a database coming back from a restart later still; a refusal a person
 * must act on (a changed certificate, a clinic the parent no longer knows) waits for the next
 * slot. Then the next slot comes as usual: the schedule never stops for good.
 *
 * node-cron ticks once a second and the schedule decides whether something is due. Intervals
 * are any number of seconds, which cron patterns cannot say (every 7 minutes, every 90 minutes).
 */

export interface PauseSource {
  isPaused(): boolean;
  onChange(fn: () => void): () => void;
}

export interface Syncer {
  syncNow(): Promise<SyncSummary>;
}

export type ScheduleSettings = Pick<
  Settings['sync'],
  'intervalSeconds' | 'retries' | 'retryDelaySeconds' | 'retryMaxDelaySeconds'
>;

export interface ScheduleOptions {
  service: Syncer;
  /** read at every decision, so changed settings apply at once */
  settings: () => ScheduleSettings;
  pause?: PauseSource;
  log?: (level: 'info' | 'warn', message: string) => void;
  /** spreads nodes over the interval: any number, e.g. from the node id (default 0) */
  spread?: number;
  now?: () => number;
  random?: () => number;
  /** false: nothing ticks by itself; the caller calls tick() (tests) */
  ticking?: boolean;
}

/** How long to wait before trying again within the slot, or null to wait for the next slot. */
export function retryDelayMs(
  e: unknown,
  retryIndex: number,
  s: Pick<ScheduleSettings, 'retryDelaySeconds' | 'retryMaxDelaySeconds'>,
  random: () => number = Math.random,
): number | null {
  let factor: number;
  const link = linkFailureOf(e);
  if (link === 'timeout' || link === 'cut') factor = 0.25;
  else if (dbTrouble(e) !== null) factor = 2;
  else if (!isSyncError(e)) factor = 1;
  else {
    switch (e.kind) {
      case 'unreachable':
        factor = 1;
        break;
      case 'database':
        factor = 2;
        break;
      case 'locked':
        factor = 0.5;
        break;
      default:
        // protocol, state, config, usage, privileges: the same try would fail the same way
        return null;
    }
  }
  const cap = s.retryMaxDelaySeconds * 1000;
  const exp = Math.min(cap, s.retryDelaySeconds * 1000 * factor * 2 ** retryIndex);
  return Math.round(exp / 2 + (random() * exp) / 2);
}

export class SyncSchedule {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: NonNullable<ScheduleOptions['log']>;
  private task: ScheduledTask | null = null;
  private offPause: (() => void) | null = null;
  private nextSlotAt = 0;
  private retryAt: number | null = null;
  private retryIndex = 0;
  private running: Promise<void> | null = null;
  private stopped = true;

  constructor(private readonly opts: ScheduleOptions) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? (() => undefined);
  }

  /** Starts ticking; the first slot is now. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.nextSlotAt = this.now();
    this.offPause =
      this.opts.pause?.onChange(() => {
        if (this.opts.pause?.isPaused()) this.retryAt = null;
        // Back from a pause: sync at once rather than at the next slot.
        else this.syncSoon();
      }) ?? null;
    if (this.opts.ticking !== false) {
      this.task = cron.schedule('* * * * * *', () => this.tick(), {
        name: 'clinicsync-schedule',
        noOverlap: true,
      });
    }
    this.tick();
  }

  /** Stops ticking; a sync in progress may finish within `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    this.stopped = true;
    this.offPause?.();
    this.offPause = null;
    await this.task?.destroy();
    this.task = null;
    if (this.running) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.running,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
  }

  /** Makes a slot due now (the next tick runs it). */
  syncSoon(): void {
    this.retryAt = null;
    this.retryIndex = 0;
    this.nextSlotAt = Math.min(this.nextSlotAt, this.now());
    this.tick();
  }

  /** When the next sync is due (ISO), or null while paused or stopped. */
  nextSyncAt(): string | null {
    if (this.stopped || this.opts.pause?.isPaused()) return null;
    return new Date(this.retryAt ?? this.nextSlotAt).toISOString();
  }

  /** Settles once no sync started by the schedule is running (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Runs what is due: a retry within the slot, else a new slot. */
  tick(): void {
    if (this.stopped || this.running || this.opts.pause?.isPaused()) return;
    const now = this.now();
    if (this.retryAt !== null && now >= this.retryAt) {
      this.retryAt = null;
      this.run();
    } else if (this.retryAt === null && now >= this.nextSlotAt) {
      this.retryIndex = 0;
      this.nextSlotAt = this.slotAfter(now);
      this.run();
    } else if (this.retryAt !== null && now >= this.nextSlotAt) {
      // A retry that would run into the next slot gives way to it.
      this.retryAt = null;
      this.tick();
    }
  }

  /** The first slot boundary after `t`: multiples of the interval, shifted by the node's spread. */
  private slotAfter(t: number): number {
    const interval = this.opts.settings().intervalSeconds * 1000;
    const offset = (this.opts.spread ?? 0) % interval;
    return (Math.floor((t - offset) / interval) + 1) * interval + offset;
  }

  private run(): void {
    const attempt = this.retryIndex;
    this.running = this.opts.service
      .syncNow()
      .then(
        () => {
          this.retryIndex = 0;
        },
        (e: unknown) => this.failed(e, attempt),
      )
      .finally(() => {
        this.running = null;
      });
  }

  private failed(e: unknown, attempt: number): void {
    const s = this.opts.settings();
    const why = isSyncError(e) ? e.message : e instanceof Error ? e.name : String(e);
    const now = this.now();
    const delay = attempt < s.retries ? retryDelayMs(e, attempt, s, this.random) : null;
    if (delay !== null && now + delay < this.nextSlotAt && !this.stopped) {
      this.retryAt = now + delay;
      this.retryIndex = attempt + 1;
      this.log(
        'warn',
        `sync with the parent failed: ${why} Trying again in ${Math.ceil(delay / 1000)} s.`,
      );
      return;
    }
    this.retryAt = null;
    this.retryIndex = 0;
    this.log(
      'warn',
      `sync with the parent failed: ${why} The next try is at ${new Date(this.nextSlotAt).toISOString()}.`,
    );
  }
}
