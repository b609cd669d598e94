import { afterEach, describe, expect, it, vi } from 'vitest';
import { SyncPause } from '../../src/api/local.js';
import { Notifier, OFFLINE_TROUBLE_MS } from '../../src/main/notifications.js';
import { BLINK_MS, TrayController } from '../../src/main/tray.js';
import { trayMenu } from '../../src/main/trayMenu.js';
import {
  TRAY_STATES,
  statusWords,
  trayStateOf,
  type EngineView,
  type TrayState,
} from '../../src/main/trayState.js';
import { StubEngine, StubTray, apiStatus } from '../helpers/electronStub.js';

const time = (iso: string) => iso.slice(11, 16);
const view = (over: Partial<EngineView> = {}): EngineView => ({
  status: apiStatus(),
  connected: true,
  problem: null,
  cloning: false,
  ...over,
});

describe('the tray state, chosen from the engine status by urgency', () => {
  it('follows each overall state of the engine', () => {
    const cases: [EngineView, TrayState][] = [
      [view(), 'up-to-date'],
      [view({ status: apiStatus({}, { syncing: true }) }), 'working'],
      [view({ status: apiStatus({ pendingOut: 3 }) }), 'waiting'],
      [view({ status: apiStatus({ pendingIn: 1 }) }), 'waiting'],
      [view({ status: apiStatus({}, { syncPaused: true }) }), 'paused'],
      [view({ status: apiStatus({ capturePaused: true }) }), 'paused'],
      [
        view({ status: apiStatus({ lastError: 'no answer' }, { lastErrorKind: 'unreachable' }) }),
        'offline',
      ],
      [view({ status: apiStatus({ parked: 2 }) }), 'needs-attention'],
      [view({ status: apiStatus({ clockWarning: 'centre is 3 h ahead' }) }), 'needs-attention'],
      [
        view({ status: apiStatus({ lastError: 'denied' }, { lastErrorKind: 'privileges' }) }),
        'needs-attention',
      ],
    ];
    for (const [v, expected] of cases)
      expect(trayStateOf(v), JSON.stringify(v.status)).toBe(expected);
  });

  it('lets the most urgent condition win when several hold at once', () => {
    // Syncing while received changes are parked: the person must still be told.
    expect(
      trayStateOf(view({ status: apiStatus({ parked: 1, pendingOut: 4 }, { syncing: true }) })),
    ).toBe('needs-attention');
    // Paused with changes waiting: the changes matter more than the pause.
    expect(trayStateOf(view({ status: apiStatus({ pendingOut: 4 }, { syncPaused: true }) }))).toBe(
      'waiting',
    );
    // A lost service beats whatever its last status said.
    expect(trayStateOf(view({ connected: false, status: apiStatus({}, { syncing: true }) }))).toBe(
      'offline',
    );
    // No engine at all beats a lost connection.
    expect(trayStateOf(view({ connected: false, problem: 'The database does not answer.' }))).toBe(
      'needs-attention',
    );
    expect(trayStateOf(view({ cloning: true, status: null }))).toBe('working');
    expect(trayStateOf(view({ status: null }))).toBe('working');
  });

  it('says each state in words a clinic clerk reads', () => {
    const words = (v: EngineView) => statusWords(v, trayStateOf(v), time);
    expect(words(view())).toEqual({ headline: 'Up to date', detail: 'Last synced at 10:00' });
    expect(words(view({ status: apiStatus({ pendingOut: 1, pendingIn: 12 }) })).headline).toBe(
      'Waiting: 1 change to send, 12 changes to receive',
    );
    expect(
      words(
        view({
          status: apiStatus({}, { syncPaused: true, syncPausedUntil: '2026-11-26T16:30:00Z' }),
        }),
      ),
    ).toEqual({ headline: 'Paused until 16:30', detail: 'Syncing resumes by itself.' });
    expect(words(view({ status: apiStatus({ parked: 1 }) })).headline).toBe(
      'Needs attention: 1 received change is waiting',
    );
    expect(words(view({ problem: 'This computer is not set up yet.' }))).toEqual({
      headline: 'Needs attention',
      detail: 'This computer is not set up yet.',
    });
    expect(words(view({ connected: false })).headline).toBe("Can't reach the ClinicSync service");
    expect(
      words(view({ status: apiStatus({ lastError: 'x' }, { lastErrorKind: 'unreachable' }) }))
        .headline,
    ).toBe("Can't reach the main server");
    expect(
      words(
        view({
          status: apiStatus({
            role: 'root',
            parent: null,
            pendingOut: 2,
            children: [
              { name: 'c', nodeId: 'n', lastContactAt: null, pendingOut: 2, pendingIn: 0 },
            ],
          }),
        }),
      ).headline,
    ).toBe('Changes waiting for the clinics to fetch them');
  });
});

describe('the tray menu', () => {
  const menuFor = (v: EngineView, warning: string | null = null) => {
    const tray = new StubTray('working');
    const state = trayStateOf(v);
    tray.setMenu(trayMenu(v, state, statusWords(v, state, time), warning), () => undefined);
    return tray.labels();
  };

  it('starts with the status in words, then Open, Sync now, Pause, Save to USB key, Quit', () => {
    expect(menuFor(view())).toEqual([
      '(Up to date)',
      '(Last synced at 10:00)',
      '---',
      'Open ClinicSync',
      'Sync now',
      'Pause syncing >',
      '  For 2 hours',
      '  For 8 hours',
      '  For 24 hours',
      'Save to USB key…',
      '---',
      'Quit ClinicSync',
    ]);
  });

  it('has the same shape in every state; only what cannot act now is greyed', () => {
    const views: Record<TrayState, EngineView> = {
      'up-to-date': view(),
      working: view({ status: apiStatus({}, { syncing: true }) }),
      waiting: view({ status: apiStatus({ pendingOut: 2 }) }),
      offline: view({ status: apiStatus({ lastError: 'x' }, { lastErrorKind: 'unreachable' }) }),
      paused: view({
        status: apiStatus({}, { syncPaused: true, syncPausedUntil: '2026-11-26T12:00:00Z' }),
      }),
      'needs-attention': view({ problem: 'The database does not answer.' }),
    };
    const menus = Object.fromEntries(TRAY_STATES.map((s) => [s, menuFor(views[s])])) as Record<
      TrayState,
      string[]
    >;
    for (const s of TRAY_STATES) {
      expect(trayStateOf(views[s])).toBe(s);
      const m = menus[s];
      expect(m[0]).toMatch(/^\(/);
      expect(m.at(-1)).toBe('Quit ClinicSync');
      expect(m).toContain('Open ClinicSync');
    }
    expect(menus.working).toContain('(Sync now)');
    expect(menus.waiting).toContain('Sync now');
    expect(menus.offline).toContain('Sync now');
    expect(menus.paused.slice(0, 2)).toEqual([
      '(Paused until 12:00)',
      '(Syncing resumes by itself.)',
    ]);
    expect(menus.paused).toContain('Resume syncing');
    expect(menus.paused).toContain('(Sync now)');
    expect(menus.paused).not.toContain('Pause syncing >');
    // Without an engine only Open and Quit act.
    expect(
      menus['needs-attention'].filter(
        (l) => !l.startsWith('(') && !l.startsWith(' ') && l !== '---',
      ),
    ).toEqual(['Open ClinicSync', 'Quit ClinicSync']);
  });

  it('greys Sync now and Pause on a root, which has no parent to sync with', () => {
    const m = menuFor(view({ status: apiStatus({ role: 'root', parent: null }) }));
    expect(m).toContain('(Sync now)');
    expect(m).toContain('(Pause syncing) >');
  });

  it('shows the keyring warning as a line of its own', () => {
    expect(menuFor(view(), 'No keyring on this computer.')[2]).toBe(
      '(⚠ No keyring on this computer.)',
    );
  });
});

describe('notifications', () => {
  const w = {
    headline: 'Needs attention: 2 received changes are waiting',
    detail: 'Open ClinicSync to see why.',
  };
  const calm = { headline: 'Up to date', detail: null };

  it('come only for needs attention, and for up to date again after trouble', () => {
    const n = new Notifier(() => 0);
    expect(n.next('working', calm)).toBeNull();
    expect(n.next('up-to-date', calm)).toBeNull();
    expect(n.next('waiting', calm)).toBeNull();
    expect(n.next('needs-attention', w)).toEqual({
      title: 'ClinicSync needs attention',
      body: '2 received changes are waiting Open ClinicSync to see why.',
    });
    expect(n.next('needs-attention', w)).toBeNull();
    expect(n.next('working', calm)).toBeNull();
    expect(n.next('up-to-date', calm)?.title).toBe('ClinicSync is up to date again');
    expect(n.next('waiting', calm)).toBeNull();
    expect(n.next('up-to-date', calm)).toBeNull();
  });

  it('count a short loss of the main server as no trouble, and a long one as trouble', () => {
    let now = 0;
    const n = new Notifier(() => now);
    n.next('offline', calm);
    now = 5 * 60_000;
    expect(n.next('up-to-date', calm)).toBeNull();
    n.next('offline', calm);
    now += OFFLINE_TROUBLE_MS;
    expect(n.next('working', calm)).toBeNull();
    expect(n.next('up-to-date', calm)?.title).toBe('ClinicSync is up to date again');
  });
});

describe('the tray controller', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function controller(engine: StubEngine) {
    const tray = new StubTray('working');
    const notices: string[] = [];
    const opened: string[] = [];
    const c = new TrayController({
      tray,
      keyringWarning: null,
      notify: (n) => notices.push(n.title),
      time,
      actions: {
        open: () => opened.push('window'),
        saveToUsb: () => opened.push('usb'),
        syncNow: () => engine.api.syncNow(),
        pause: (hours) => engine.api.pauseSync({ hours }),
        resume: () => engine.api.resumeSync(),
        quit: () => opened.push('quit'),
      },
    });
    engine.api.subscribe((e) => {
      if (e.type === 'status')
        c.update({ status: e.status, connected: true, problem: null, cloning: false });
    });
    return { tray, notices, opened, c };
  }

  it('rebuilds the menu on every change and changes the icon only with the state', () => {
    const engine = new StubEngine();
    const { tray } = controller(engine);
    expect(tray.state).toBe('up-to-date');
    const icons = tray.icons.length;
    engine.set({ pendingOut: 1 });
    expect(tray.menu[0]).toEqual({ kind: 'line', label: 'Waiting: 1 change to send' });
    engine.set({ pendingOut: 2 });
    expect(tray.menu[0]).toEqual({ kind: 'line', label: 'Waiting: 2 changes to send' });
    expect(tray.toolTip).toBe('ClinicSync: Waiting: 2 changes to send');
    expect(tray.icons.length).toBe(icons + 1);
    expect(tray.state).toBe('waiting');
  });

  it('acts on clicks: open, USB, sync now, quit; a click on the icon opens the window', async () => {
    const engine = new StubEngine();
    const { tray, opened } = controller(engine);
    tray.click('Open ClinicSync');
    tray.click('Save to USB key…');
    tray.click('Sync now');
    tray.leftClick();
    tray.click('Quit ClinicSync');
    await Promise.resolve();
    expect(opened).toEqual(['window', 'usb', 'window', 'quit']);
    expect(engine.calls).toEqual(['syncNow']);
  });

  it('pauses for 2, 8 or 24 hours and resumes by itself when the time is up', async () => {
    vi.useFakeTimers({ now: new Date('2026-11-26T08:00:00Z') });
    const engine = new StubEngine(new SyncPause());
    const { tray, notices } = controller(engine);
    for (const [label, hours] of [
      ['For 2 hours', 2],
      ['For 8 hours', 8],
      ['For 24 hours', 24],
    ] as const) {
      tray.click(label);
      await vi.advanceTimersByTimeAsync(0);
      expect(tray.state).toBe('paused');
      const until = new Date(Date.parse('2026-11-26T08:00:00Z') + hours * 3_600_000);
      expect(engine.status().syncPausedUntil).toBe(until.toISOString());
      expect(tray.labels()).toContain('Resume syncing');
      // One minute before the end it still waits; at the end it resumes by itself.
      await vi.advanceTimersByTimeAsync(hours * 3_600_000 - 60_000);
      expect(tray.state).toBe('paused');
      await vi.advanceTimersByTimeAsync(60_000);
      expect(tray.state).toBe('up-to-date');
      expect(tray.labels()).toContain('Pause syncing >');
      vi.setSystemTime(new Date('2026-11-26T08:00:00Z'));
    }
    // Resume by hand ends a pause at once, and its timer does nothing later.
    tray.click('For 24 hours');
    await vi.advanceTimersByTimeAsync(0);
    tray.click('Resume syncing');
    await vi.advanceTimersByTimeAsync(0);
    expect(tray.state).toBe('up-to-date');
    expect(engine.calls).toEqual(['pause 2', 'pause 8', 'pause 24', 'pause 24', 'resume']);
    await vi.advanceTimersByTimeAsync(25 * 3_600_000);
    expect(tray.state).toBe('up-to-date');
    expect(notices).toEqual([]);
  });

  it('is calm: only needs-attention blinks, and only for a minute', async () => {
    vi.useFakeTimers();
    const engine = new StubEngine();
    const { tray, notices } = controller(engine);
    engine.set({}, { syncing: true });
    engine.set({ pendingOut: 3 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(tray.icons.every((i) => !i.dim)).toBe(true);
    const before = tray.icons.length;
    engine.set({ parked: 2 });
    await vi.advanceTimersByTimeAsync(5_000);
    const blinking = tray.icons.slice(before);
    expect(blinking.every((i) => i.state === 'needs-attention')).toBe(true);
    expect(blinking.some((i) => i.dim)).toBe(true);
    await vi.advanceTimersByTimeAsync(BLINK_MS);
    const settled = tray.icons.length;
    expect(tray.icons.at(-1)).toEqual({ state: 'needs-attention', dim: false });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(tray.icons.length).toBe(settled);
    expect(notices).toEqual(['ClinicSync needs attention']);
    engine.set({});
    expect(notices).toEqual(['ClinicSync needs attention', 'ClinicSync is up to date again']);
  });
});
