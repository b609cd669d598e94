import type { Settings } from '../config/settings.js';
import { SyncError } from '../errors.js';
import type { Limits } from './outgoing.js';

/*
 * How big one exchange may be and how long it may take, learned from the link itself (issue 8,
 * items 1 and 2). On a VSAT link at 1 kbit/s a batch of 256 KiB needs half an hour; a fixed
 * timeout either kills it every time or waits an hour for a dead link. So:
 *
 * - the link's speed is measured from the exchanges that succeed (bytes over time, smoothed);
 * - one exchange gets sync.timeoutSeconds plus the time its bytes need at that speed, twice over,
 *   at most sync.maxTimeoutSeconds;
 * - a batch that timed out or whose connection was cut halves (records and bytes), so the next
 *   try carries less and gets through; each success grows it back towards the settings, the
 *   way TCP finds its window. Everything acknowledged before stays acknowledged: progress is kept
 *   per batch by the protocol itself.
 */

/** Where the link failed: before a connection, while waiting too long, or cut midway. */
export type LinkFailure = 'connect' | 'timeout' | 'cut';

/** A failure of the link to the parent, with where it failed (the retry policy reads it). */
export class LinkError extends SyncError {
  constructor(
    readonly failure: LinkFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('unreachable', message, options);
    this.name = 'LinkError';
  }
}

export function linkFailureOf(e: unknown): LinkFailure | null {
  return e instanceof LinkError ? e.failure : null;
}

/** What a link is assumed to carry before anything was measured: the worst the issue names. */
export const ASSUMED_BYTES_PER_SECOND = 125;
/** Request and answer headers, roughly: they cost as much as a small batch at 1 kbit/s. */
const HEADER_BYTES = 700;
/** Transfers smaller than this measure latency more than speed. */
const MEASURABLE_BYTES = 1_024;
const MIN_RECORDS = 1;
const MIN_BYTES = 1_024;
/** Successes after which a batch may grow back to the size that once failed. */
const RELAX_AFTER = 20;

type SyncSettings = Pick<
  Settings['sync'],
  'batchRecords' | 'batchBytes' | 'timeoutSeconds' | 'maxTimeoutSeconds'
>;

export class LinkPace {
  private speed: number | null;
  private records: number;
  private bytes: number;
  /** below the batch that last failed, until enough successes say the link got better */
  private ceiling: number | null = null;
  private successes = 0;
  private cuts = 0;

  /**
   * `settings` is read on every call, so a changed setting applies at once; `measured` seeds the
   * speed from earlier exchanges (bytes per second), where known.
   */
  constructor(
    private readonly settings: () => SyncSettings,
    measured: number | null = null,
  ) {
    this.speed = measured !== null && measured > 0 ? measured : null;
    this.records = settings().batchRecords;
    this.bytes = settings().batchBytes;
  }

  /** Bytes per second as measured, or null before the first measurable exchange. */
  get bytesPerSecond(): number | null {
    return this.speed;
  }

  /** The batch limits for the next exchange, both directions. */
  limits(): Limits {
    const s = this.settings();
    let bytes = Math.min(this.bytes, s.batchBytes);
    if (this.speed !== null) {
      // No batch bigger than the longest exchange can carry at the measured speed, both ways.
      const seconds = Math.max(0, s.maxTimeoutSeconds - s.timeoutSeconds);
      const fits = Math.floor(((seconds * this.speed) / 2 - 2 * HEADER_BYTES) / 2);
      bytes = Math.max(MIN_BYTES, Math.min(bytes, fits));
    }
    return { records: Math.min(this.records, s.batchRecords), bytes };
  }

  /** How long an exchange of `requestBytes` up and at most `replyBytes` down may take, ms. */
  timeoutMs(requestBytes: number, replyBytes: number): number {
    const s = this.settings();
    const speed = this.speed ?? ASSUMED_BYTES_PER_SECOND;
    const transfer = ((requestBytes + replyBytes + 2 * HEADER_BYTES) / speed) * 2;
    const ms = (s.timeoutSeconds + transfer) * 1000;
    return Math.round(Math.min(ms, s.maxTimeoutSeconds * 1000));
  }

  /** An exchange went through: learn the speed, and let batches grow again. */
  succeeded(bytes: number, ms: number): void {
    this.cuts = 0;
    if (bytes >= MEASURABLE_BYTES && ms > 0) {
      const now = (bytes * 1000) / ms;
      this.speed = this.speed === null ? now : this.speed * 0.6 + now * 0.4;
    }
    const s = this.settings();
    if (this.ceiling !== null && ++this.successes >= RELAX_AFTER) this.ceiling = null;
    const most = Math.min(s.batchRecords, this.ceiling ?? Infinity);
    this.records = Math.max(MIN_RECORDS, Math.min(most, this.records * 2));
    this.bytes = Math.min(s.batchBytes, Math.max(this.bytes * 2, MIN_BYTES));
  }

  /**
   * An exchange failed on the link. A timeout means the batch was too big for the link: the next
   * carries half as much as the one that failed (`sentRecords`, where known: a limit far above what
   * was pending would take many halvings to bite), and batches stay below it a while. A cut is
   * mostly bad luck, and on a slow link every extra round costs its headers again: only a second
   * cut in a row halves the batch (a link that drops long transfers), without a ceiling.
   */
  failed(failure: LinkFailure, sentRecords?: number): void {
    if (failure === 'connect') return;
    if (failure === 'cut' && ++this.cuts < 2) return;
    this.cuts = 0;
    const cur = this.limits();
    const records =
      sentRecords && sentRecords > 0 ? Math.min(cur.records, sentRecords) : cur.records;
    this.records = Math.max(MIN_RECORDS, Math.floor(records / 2));
    this.bytes = Math.max(MIN_BYTES, Math.floor(cur.bytes / 2));
    if (failure === 'timeout') {
      // Growing straight back to the size that failed would fail again: stay below it a while.
      this.ceiling = Math.max(MIN_RECORDS, records - 1);
      this.successes = 0;
    }
  }
}
