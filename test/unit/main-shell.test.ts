import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/api/types.js';
import { appPageUrl } from '../../src/main/security.js';
import { CLOSE_NOTICE, startShell, type ShellPrefs } from '../../src/main/shell.js';
import { SwitchableApi } from '../../src/main/switchableApi.js';
import { createBridgeApi } from '../../src/preload/bridge.js';
import { OUR_PAGE, StubElectron, StubEngine } from '../helpers/electronStub.js';

function shell(opts: { lockHeld?: boolean; hidden?: boolean } = {}) {
  const electron = new StubElectron(opts.lockHeld);
  const engine = new StubEngine();
  const switchable = new SwitchableApi();
  switchable.use(engine.api);
  let prefs: ShellPrefs = { closeNoticeShown: false };
  let engineClosed = 0;
  const s = startShell({
    seam: electron,
    switchable,
    preloadPath: '/app/dist/preload/index.cjs',
    windowIcon: '/app/icons/256.png',
    hidden: opts.hidden ?? false,
    keyringWarning: null,
    prefs: { read: () => prefs, write: (p) => (prefs = p) },
    closeEngine: async () => {
      engineClosed++;
    },
  });
  return { electron, engine, switchable, s, prefs: () => prefs, engineClosed: () => engineClosed };
}

describe('single instance', () => {
  it('a second launch quits at once, with no tray and no window', () => {
    const { electron, s } = shell({ lockHeld: true });
    expect(s).toBeNull();
    expect(electron.quits).toBe(1);
    expect(electron.trays).toHaveLength(0);
    expect(electron.windows).toHaveLength(0);
  });

  it('the first instance shows its one window when launched again', () => {
    const { electron } = shell({ hidden: true });
    expect(electron.windows).toHaveLength(0);
    electron.launchAgain();
    expect(electron.windows).toHaveLength(1);
    const w = electron.windows[0]!;
    w.minimized = true;
    electron.launchAgain();
    expect(electron.windows).toHaveLength(1);
    expect(w.minimized).toBe(false);
    expect(w.shown).toBe(2);
    expect(w.focused).toBe(2);
  });
});

describe('the window', () => {
  it('is made with the security defaults and loads our protocol, never file://', () => {
    const { electron } = shell();
    const w = electron.windows[0]!;
    expect(w.options.webPreferences).toMatchObject({
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      webviewTag: false,
      preload: '/app/dist/preload/index.cjs',
    });
    expect(w.loaded).toEqual(['app://clinicsync/index.html']);
  });

  it('opens at the USB screen from the tray', () => {
    const { electron } = shell({ hidden: true });
    electron.trays[0]!.click('Save to USB key…');
    expect(electron.windows[0]!.loaded).toEqual([appPageUrl('usb')]);
  });

  it('hides to the tray when closed, and says so once', () => {
    const { electron, prefs } = shell();
    const w = electron.windows[0]!;
    expect(w.close()).toBe(false);
    expect(w.hidden).toBe(1);
    expect(electron.notices).toEqual([CLOSE_NOTICE]);
    expect(prefs().closeNoticeShown).toBe(true);
    electron.trays[0]!.click('Open ClinicSync');
    expect(w.close()).toBe(false);
    expect(electron.notices).toHaveLength(1);
    expect(electron.quits).toBe(0);
  });

  it('a quit asked from outside (the OS, an update) waits for the engine to stop', async () => {
    const { electron, engineClosed } = shell();
    expect(electron.askToQuit()).toBe(false);
    await new Promise((r) => setImmediate(r));
    expect(engineClosed()).toBe(1);
    expect(electron.quits).toBe(1);
    // The shell's own quit passes through.
    expect(electron.askToQuit()).toBe(true);
    expect(electron.windows[0]!.close()).toBe(true);
  });

  it('Quit stops the engine, then the app, and the window may close', async () => {
    const { electron, s, engineClosed } = shell();
    await s!.quit();
    expect(engineClosed()).toBe(1);
    expect(electron.quits).toBe(1);
    expect(electron.trays[0]!.destroyed).toBe(true);
    expect(electron.windows[0]!.close()).toBe(true);
  });
});

describe('IPC from the window', () => {
  it('answers our window and refuses every other sender', async () => {
    const { electron, engine } = shell();
    const ours = createBridgeApi(electron.ipc.renderer(OUR_PAGE).ipc);
    expect((await ours.getStatus()).name).toBe('Rwinkwavu');

    const strangers = [
      { ...OUR_PAGE, webContentsId: 99 }, // another window
      { ...OUR_PAGE, isMainFrame: false }, // an iframe in our window
      { ...OUR_PAGE, frameUrl: 'https://evil.example.org/' }, // our window, navigated away
      { ...OUR_PAGE, frameUrl: 'file:///etc/passwd' },
      { ...OUR_PAGE, frameUrl: 'app://other/index.html' },
      { ...OUR_PAGE, frameUrl: null }, // a frame already gone
    ];
    for (const page of strangers) {
      const api = createBridgeApi(electron.ipc.renderer(page).ipc);
      const e = await api.syncNow().catch((x: unknown) => x);
      expect(e, JSON.stringify(page)).toBeInstanceOf(ApiError);
      expect((e as ApiError).kind).toBe('unauthorized');
      const heard: unknown[] = [];
      api.subscribe((ev) => heard.push(ev));
      expect(heard).toEqual([]);
    }
    expect(engine.calls).toEqual([]);
    expect(engine.subscribers).toBe(1); // the tray's own
  });

  it('refuses everyone before the window exists', async () => {
    const { electron, engine } = shell({ hidden: true });
    const api = createBridgeApi(electron.ipc.renderer(OUR_PAGE).ipc);
    await expect(api.pauseSync({ hours: 2 })).rejects.toMatchObject({ kind: 'unauthorized' });
    expect(engine.calls).toEqual([]);
  });

  it('ends a closed page’s subscriptions', async () => {
    const { electron, engine } = shell();
    const page = electron.ipc.renderer(OUR_PAGE);
    const api = createBridgeApi(page.ipc);
    const heard: string[] = [];
    api.subscribe((e) => heard.push(e.type));
    expect(engine.subscribers).toBe(2);
    engine.set({ pendingOut: 1 });
    expect(heard).toEqual(['status', 'status']);
    page.destroy();
    expect(engine.subscribers).toBe(1);
  });
});

describe('the engine behind the window and the tray', () => {
  it('can change (attach, run, lose it) while subscribers stay', () => {
    const { electron, switchable, engine } = shell();
    const tray = electron.trays[0]!;
    expect(tray.state).toBe('up-to-date');
    switchable.use(null, 'The database does not answer.');
    expect(engine.subscribers).toBe(0);
    const other = new StubEngine();
    other.node = { pendingOut: 5 };
    switchable.use(other.api);
    expect(tray.state).toBe('waiting');
    expect(other.subscribers).toBe(1);
  });
});
