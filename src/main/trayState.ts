import type { ApiStatus } from '../api/types.js';

/**
 * What the tray icon shows: one colour each, most urgent first. They follow the engine's overall
 * state (ApiState in src/api/types.ts), with 'working' for its 'syncing', plus what only the shell
 * knows: that it has no engine to show, or lost the one it attached to.
 */
export type TrayState =
  'needs-attention' | 'offline' | 'working' | 'waiting' | 'paused' | 'up-to-date';

/** Every tray state, most urgent first. */
export const TRAY_STATES: readonly TrayState[] = [
  'needs-attention',
  'offline',
  'working',
  'waiting',
  'paused',
  'up-to-date',
];

/** What the shell knows about its engine at one moment. */
export interface EngineView {
  /** the engine's latest status, or null before the first one arrives */
  status: ApiStatus | null;
  /**
   * whether the engine answers: always true for an engine in this process; for one the app
   * attached to (a service, a `clinic-sync serve`), whether its event stream is up
   */
  connected: boolean;
  /**
   * a sentence when there is no engine to show: this computer is not set up yet, the node cannot
   * be opened, another program runs it without an admin address; else null
   */
  problem: string | null;
  /** a clone (setup) is copying the parent's data */
  cloning: boolean;
}

/**
 * The tray state by urgency: every condition that holds is a candidate and the most urgent wins,
 * so a sync running while something needs attention still shows "needs attention".
 */
export function trayStateOf(view: EngineView): TrayState {
  const candidates = new Set<TrayState>();
  const s = view.status;
  if (view.problem !== null) candidates.add('needs-attention');
  if (!view.connected) candidates.add('offline');
  if (view.cloning) candidates.add('working');
  if (s === null) {
    // Starting: the first status is on its way.
    if (view.problem === null && view.connected) candidates.add('working');
  } else {
    candidates.add(s.state === 'syncing' ? 'working' : s.state);
    if (s.syncing) candidates.add('working');
  }
  return TRAY_STATES.find((t) => candidates.has(t)) ?? 'up-to-date';
}

/** The state in words: the tray menu's first line (and the tooltip), and one line of detail. */
export interface StatusWords {
  headline: string;
  detail: string | null;
}

export type TimeFormat = (iso: string) => string;

/** Local time as hours and minutes, like 14:05. */
export const localTime: TimeFormat = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Says the state in the words a nurse or data clerk reads in the tray menu. */
export function statusWords(
  view: EngineView,
  state: TrayState,
  time: TimeFormat = localTime,
): StatusWords {
  const s = view.status;
  const lastSync = s?.lastSuccessAt ? `Last synced at ${time(s.lastSuccessAt)}` : null;
  switch (state) {
    case 'needs-attention': {
      if (view.problem !== null) return { headline: 'Needs attention', detail: view.problem };
      if (s && s.parked > 0) {
        return {
          headline: `Needs attention: ${count(s.parked, 'received change is', 'received changes are')} waiting`,
          detail: 'Open ClinicSync to see why.',
        };
      }
      if (s?.clockWarning) {
        return { headline: "Needs attention: a computer's clock is wrong", detail: s.clockWarning };
      }
      return { headline: 'Needs attention: the last sync failed', detail: s?.lastError ?? null };
    }
    case 'offline':
      if (!view.connected) {
        return {
          headline: "Can't reach the ClinicSync service",
          detail: 'It will be found again as soon as it answers.',
        };
      }
      return { headline: "Can't reach the main server", detail: lastSync ?? 'It will try again.' };
    case 'working':
      if (view.cloning) return { headline: "Copying the main server's data…", detail: null };
      if (s === null) return { headline: 'Starting…', detail: null };
      return { headline: 'Sending and receiving changes…', detail: lastSync };
    case 'waiting': {
      if (s === null) return { headline: 'Changes waiting', detail: null };
      if (s.role === 'root') {
        return { headline: 'Changes waiting for the clinics to fetch them', detail: lastSync };
      }
      const parts: string[] = [];
      if (s.pendingOut > 0) parts.push(`${count(s.pendingOut, 'change', 'changes')} to send`);
      if (s.pendingIn > 0) parts.push(`${count(s.pendingIn, 'change', 'changes')} to receive`);
      return { headline: `Waiting: ${parts.join(', ')}`, detail: lastSync };
    }
    case 'paused':
      if (s?.syncPaused) {
        return {
          headline: s.syncPausedUntil ? `Paused until ${time(s.syncPausedUntil)}` : 'Paused',
          detail: s.syncPausedUntil ? 'Syncing resumes by itself.' : null,
        };
      }
      return {
        headline: 'Paused: changes are not being recorded',
        detail: 'Your IT person resumes it after the OpenMRS upgrade.',
      };
    case 'up-to-date':
      return { headline: 'Up to date', detail: lastSync };
  }
}
