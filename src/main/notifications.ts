import type { StatusWords, TrayState } from './trayState.js';

export interface Notice {
  title: string;
  body: string;
}

/**
 * How long the main server must stay out of reach before getting it back is worth a
 * notification: a VSAT link that drops for a few minutes at a time must not chatter.
 */
export const OFFLINE_TROUBLE_MS = 30 * 60_000;

/**
 * Decides which changes of state deserve a notification: only two do. Something needs a person
 * (entering "needs attention"), and everything is up to date again after trouble (after "needs
 * attention", or after the main server was out of reach for a while). Every other change shows
 * in the icon alone.
 */
export class Notifier {
  private last: TrayState | null = null;
  private trouble = false;
  private offlineSince: number | null = null;

  constructor(private readonly now: () => number = Date.now) {}

  /** The notice this new state deserves, or null. */
  next(state: TrayState, words: StatusWords): Notice | null {
    const prev = this.last;
    this.last = state;
    if (state === 'offline') {
      this.offlineSince ??= this.now();
    } else if (this.offlineSince !== null) {
      if (this.now() - this.offlineSince >= OFFLINE_TROUBLE_MS) this.trouble = true;
      this.offlineSince = null;
    }
    if (state === 'needs-attention') {
      this.trouble = true;
      if (prev === 'needs-attention') return null;
      return {
        title: 'ClinicSync needs attention',
        body: [words.headline.replace(/^Needs attention:?\s*/, ''), words.detail]
          .filter((t): t is string => !!t)
          .join(' ')
          .replace(/^./, (c) => c.toUpperCase()),
      };
    }
    if (state === 'up-to-date' && this.trouble) {
      this.trouble = false;
      return {
        title: 'ClinicSync is up to date again',
        body: 'Every change has been sent and received.',
      };
    }
    return null;
  }
}
