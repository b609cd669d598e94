import { describe, expect, it } from 'vitest';
import { SyncError } from '../../src/engine/errors.js';
import { LinkError } from '../../src/engine/node/pace.js';
import {
  retryDelayMs,
  SyncSchedule,
  type PauseSource,
  type ScheduleSettings,
} from '../../src/engine/node/schedule.js';
import type { SyncSummary } from '../../src/engine/node/service.js';

/*
 * The schedule's decisions on a clock the test moves (issue 8, item 1): slots on the interval,
 * retries within a slot with growing pauses chosen by what failed, then the next slot; it never
 * stops for good; pause and resume; and once with node-cron ticking for real.
 */

const SUMMARY: SyncSummary = { rounds: 1, sent: 0, received: 0, bytesUp: 0, bytesDown: 0, ms: 1 };
const SETTINGS: ScheduleSettings = {
  intervalSeconds: 600,
  retries: 3,
  retryDelaySeconds: 10,
  retryMaxDelaySeconds: 120,
};

class FakePause implements PauseSource {
  paused = false;
  private fns = new Set<() => void>();
  isPaused() {
    return this.paused;
  }
  onChange(fn: () => void) {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  set(p: boolean) {
    this.paused = p;
    for (const f of this.fns) f();
  }
}

/** A schedule over a fake clock and a sync whose outcomes the test scripts. */
function harness(outcomes: (Error | null)[], settings: ScheduleSettings = SETTINGS) {
  let now = 600_000 * 1_700_000; // a slot boundary for 600 s and 60 s (spread 0)
  const calls: number[] = [];
  const pause = new FakePause();
  const logs: string[] = [];
  const schedule = new SyncSchedule({
    service: {
      syncNow() {
        calls.push(now);
        const o = outcomes.shift() ?? null;
        return o ? Promise.reject(o) : Promise.resolve(SUMMARY);
      },
    },
    settings: () => settings,
    pause,
    log: (_l, m) => logs.push(m),
    now: () => now,
    random: () => 0.5,
    ticking: false,
  });
  /** Moves the clock second by second, ticking like node-cron would. */
  async function advance(ms: number) {
    const end = now + ms;
    while (now < end) {
      now += 1000;
      schedule.tick();
      await schedule.idle();
    }
  }
  return { schedule, calls, pause, logs, advance, at: () => now };
}

const unreachable = () => new SyncError('unreachable', 'The main server did not answer.');

describe('sync schedule', () => {
  it('syncs at start, then once per interval slot', async () => {
    const h = harness([]);
    const start = h.at();
    h.schedule.start();
    await h.schedule.idle();
    await h.advance(30 * 60_000);
    expect(h.calls.map((t) => (t - start) / 1000)).toEqual([0, 600, 1200, 1800]);
    await h.schedule.stop();
  });

  it('retries within the slot with doubling pauses, then waits for the next slot; never stops', async () => {
    // Every attempt of three slots fails; the fourth slot's first attempt succeeds.
    const h = harness(Array.from({ length: 12 }, unreachable));
    const start = h.at();
    h.schedule.start();
    await h.schedule.idle();
    await h.advance(31 * 60_000);
    const offsets = h.calls.map((t) => (t - start) / 1000);
    // Pauses of 7.5, 15 and 30 s (10 s doubling, half of it fixed and half jitter at 0.5).
    expect(offsets.slice(0, 4)).toEqual([0, 8, 23, 53]);
    expect(offsets.slice(4, 8)).toEqual([600, 608, 623, 653]);
    expect(offsets[12]).toBe(1800);
    expect(h.calls).toHaveLength(13);
    expect(h.logs.filter((l) => /The next try is at/.test(l))).toHaveLength(3);
    expect(h.logs[0]).toMatch(/did not answer\. Trying again in 8 s\./);
    await h.schedule.stop();
  });

  it('chooses the pause by what failed', () => {
    const s = { retryDelaySeconds: 20, retryMaxDelaySeconds: 300 };
    const half = () => 0.5;
    const cut = new LinkError('cut', 'cut');
    expect(retryDelayMs(cut, 0, s, half)).toBe(3_750);
    expect(retryDelayMs(new LinkError('timeout', 't'), 1, s, half)).toBe(7_500);
    expect(retryDelayMs(new LinkError('connect', 'c'), 0, s, half)).toBe(15_000);
    expect(retryDelayMs(new SyncError('database', 'd'), 0, s, half)).toBe(30_000);
    expect(
      retryDelayMs(Object.assign(new Error('x'), { code: 'ER_LOCK_DEADLOCK' }), 0, s, half),
    ).toBe(30_000);
    expect(retryDelayMs(new SyncError('locked', 'l'), 0, s, half)).toBe(7_500);
    // Growing, capped, and jittered between half and all of it.
    expect(retryDelayMs(unreachable(), 10, s, half)).toBe(225_000);
    expect(retryDelayMs(unreachable(), 10, s, () => 0)).toBe(150_000);
    expect(retryDelayMs(unreachable(), 10, s, () => 0.999_999)).toBe(300_000);
    // What a person must fix is not tried again within the slot.
    for (const kind of ['protocol', 'state', 'config', 'privileges', 'usage'] as const)
      expect(retryDelayMs(new SyncError(kind, 'x'), 0, s, half)).toBeNull();
  });

  it('waits for the next slot after a refusal, and lets a late retry give way to the slot', async () => {
    const refused = new SyncError('protocol', 'The main server refused the batch.');
    const h = harness([refused, unreachable(), unreachable()], {
      ...SETTINGS,
      intervalSeconds: 60,
      retryDelaySeconds: 40,
    });
    const start = h.at();
    h.schedule.start();
    await h.schedule.idle();
    await h.advance(3 * 60_000);
    // 0: refused → next slot at 60; 60: fails, retry at 90; 90: fails, the next retry (120 s
    // later) would pass the slot at 120, which runs instead.
    expect(h.calls.map((t) => (t - start) / 1000)).toEqual([0, 60, 90, 120, 180]);
    await h.schedule.stop();
  });

  it('does nothing while paused, says no next time, and syncs at once when resumed', async () => {
    const h = harness([]);
    h.schedule.start();
    await h.schedule.idle();
    expect(h.calls).toHaveLength(1);
    h.pause.set(true);
    expect(h.schedule.nextSyncAt()).toBeNull();
    await h.advance(2 * 3_600_000);
    expect(h.calls).toHaveLength(1);
    h.pause.set(false);
    await h.schedule.idle();
    expect(h.calls).toHaveLength(2);
    expect(h.calls[1]).toBe(h.at());
    expect(Date.parse(h.schedule.nextSyncAt()!)).toBeGreaterThan(h.at());
    // Sync now: at once, whatever the slot.
    h.schedule.syncSoon();
    await h.schedule.idle();
    expect(h.calls).toHaveLength(3);
    await h.schedule.stop();
  });

  it('spreads nodes over the interval by their offset', async () => {
    let now = 600_000 * 1_700_000;
    const calls: number[] = [];
    const schedule = new SyncSchedule({
      service: {
        syncNow() {
          calls.push(now);
          return Promise.resolve(SUMMARY);
        },
      },
      settings: () => SETTINGS,
      spread: 125_000,
      now: () => now,
      ticking: false,
    });
    schedule.start();
    await schedule.idle();
    expect(new Date(schedule.nextSyncAt()!).getTime() - now).toBe(125_000);
    now += 125_000;
    schedule.tick();
    await schedule.idle();
    expect(calls).toHaveLength(2);
    await schedule.stop();
  });

  it('ticks by itself with node-cron', async () => {
    let n = 0;
    const schedule = new SyncSchedule({
      service: {
        syncNow() {
          n++;
          return Promise.resolve(SUMMARY);
        },
      },
      settings: () => ({ ...SETTINGS, intervalSeconds: 1 }),
    });
    schedule.start();
    await new Promise((r) => setTimeout(r, 2_600));
    await schedule.stop();
    expect(n).toBeGreaterThanOrEqual(2);
    const after = n;
    await new Promise((r) => setTimeout(r, 1_200));
    expect(n).toBe(after);
  });
});
