/*
 * The Electron main process: the only file that touches the electron module. It implements the
 * seam (electronSeam.ts) with the real Electron objects and starts the shell; everything else is
 * plain TypeScript, unit-tested with a stub of the seam.
 *
 * Modes, from the command line:
 *   (none) or --hidden   the tray app (--hidden: started at login, window closed)
 *   --prepare-service    rewrite this node's keyring secrets as 0600 files for an OS service
 *   --uninstall          run `clinic-sync uninstall` on this user's node (its password may be in
 *                        the keyring, which only this app can open); the Windows uninstaller
 *                        calls it
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  BrowserWindow,
  Menu,
  Notification,
  Tray,
  app,
  ipcMain,
  nativeImage,
  protocol,
  safeStorage,
  session,
  type IpcMainEvent,
  type IpcMainInvokeEvent,
  type MenuItemConstructorOptions,
  type WebContents,
} from 'electron';
import ElectronStore from 'electron-store';
import { createHttpApi } from '../api/httpClient.js';
import { createSetupApi } from '../api/setupMode.js';
import { cloneRunner } from '../engine/clone/clone.js';
import { resolveHome } from '../engine/config/home.js';
import { SyncError } from '../engine/errors.js';
import { installedServiceHome } from '../service/install.js';
import { appProtocolHandler } from './appProtocol.js';
import { HIDDEN_FLAG, setStartAtLogin, startsAtLogin } from './autostart.js';
import type {
  ElectronSeam,
  IpcSender,
  MenuAction,
  MenuItemSpec,
  TraySeam,
  WindowSeam,
} from './electronSeam.js';
import { chooseEngine, realProbe } from './engineChoice.js';
import { EngineSupervisor } from './engineSupervisor.js';
import { startOwnEngine } from './ownEngine.js';
import { DesktopHome, keyringWarning } from './secrets.js';
import { APP_SCHEME, mayNavigate } from './security.js';
import { SettingsStore, type StoreFactory } from './settingsStore.js';
import { startShell, type ShellPrefs } from './shell.js';
import { SwitchableApi } from './switchableApi.js';
import { uninstallNode } from './uninstallMode.js';
import type { TrayState } from './trayState.js';

const here = import.meta.dirname;
const appRoot = app.getAppPath();
const resources = app.isPackaged ? process.resourcesPath : path.join(appRoot, 'build');
const trayIconDir = path.join(resources, 'icons', 'tray');

// ---------------------------------------------------------------------------------------------
// The seam, with the real electron module

function trayImage(state: TrayState, dim: boolean): Electron.NativeImage {
  const name = dim ? `${state}-dim` : state;
  // Windows trays use 16 px at 100 % scaling; Linux panels 22 or 24.
  const sizes: [number, number][] =
    process.platform === 'win32'
      ? [
          [16, 1],
          [24, 1.5],
          [32, 2],
          [48, 3],
        ]
      : [
          [22, 1],
          [48, 2],
        ];
  const image = nativeImage.createEmpty();
  for (const [size, scaleFactor] of sizes) {
    const file = path.join(trayIconDir, `${name}-${size}.png`);
    if (fs.existsSync(file))
      image.addRepresentation({ scaleFactor, buffer: fs.readFileSync(file) });
  }
  return image;
}

function menuTemplate(
  items: MenuItemSpec[],
  onAction: (a: MenuAction) => void,
): MenuItemConstructorOptions[] {
  return items.map((item): MenuItemConstructorOptions => {
    switch (item.kind) {
      case 'line':
        return { label: item.label, enabled: false };
      case 'separator':
        return { type: 'separator' };
      case 'action':
        return { label: item.label, enabled: item.enabled, click: () => onAction(item.action) };
      case 'submenu':
        return {
          label: item.label,
          enabled: item.enabled,
          submenu: menuTemplate(item.items, onAction),
        };
    }
  });
}

function senderOf(e: IpcMainEvent | IpcMainInvokeEvent): IpcSender {
  const contents = e.sender;
  return {
    webContentsId: contents.id,
    frameUrl: e.senderFrame?.url ?? null,
    isMainFrame: e.senderFrame !== null && e.senderFrame.parent === null,
    send: (channel, ...args) => {
      if (!contents.isDestroyed()) contents.send(channel, ...args);
    },
    onDestroyed: (fn) => {
      // A reload ends the old page's subscriptions as surely as closing the window.
      let done = false;
      const once = () => {
        if (done) return;
        done = true;
        fn();
      };
      contents.once('destroyed', once);
      contents.once('did-navigate', once);
    },
  };
}

/** Navigation, new windows and webviews refused; permissions (camera, location…) denied. */
function lockDown(contents: WebContents): void {
  contents.on('will-navigate', (event) => {
    if (!mayNavigate(event.url)) event.preventDefault();
  });
  contents.on('will-redirect', (event) => {
    if (!mayNavigate(event.url)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
}

function realSeam(): ElectronSeam {
  return {
    platform: process.platform,
    app: {
      requestSingleInstanceLock: () => app.requestSingleInstanceLock(),
      onSecondInstance: (fn) => app.on('second-instance', () => fn()),
      onBeforeQuit: (fn) => app.on('before-quit', (event) => fn(() => event.preventDefault())),
      quit: () => app.quit(),
      setLoginItemSettings: (s) => app.setLoginItemSettings(s),
      getLoginItemSettings: () => app.getLoginItemSettings(),
      exePath: () => app.getPath('exe'),
    },
    createTray(state): TraySeam {
      const tray = new Tray(trayImage(state, false));
      return {
        setIcon: (s, dim) => tray.setImage(trayImage(s, dim)),
        setToolTip: (text) => tray.setToolTip(text),
        setMenu: (items, onAction) =>
          tray.setContextMenu(Menu.buildFromTemplate(menuTemplate(items, onAction))),
        onClick: (fn) => tray.on('click', () => fn()),
        destroy: () => tray.destroy(),
      };
    },
    createWindow(options): WindowSeam {
      const win = new BrowserWindow(options);
      win.removeMenu();
      lockDown(win.webContents);
      // Windows ends the session by closing windows, which would only hide this one.
      win.on('session-end', () => app.quit());
      return {
        webContentsId: win.webContents.id,
        show: () => win.show(),
        focus: () => win.focus(),
        restore: () => win.restore(),
        isMinimized: () => win.isMinimized(),
        hide: () => win.hide(),
        load: (url) => void win.loadURL(url),
        onCloseRequested: (fn) => win.on('close', (event) => fn(() => event.preventDefault())),
      };
    },
    notify(title, body) {
      if (Notification.isSupported()) new Notification({ title, body }).show();
    },
    ipcMain: {
      handle: (channel, fn) => ipcMain.handle(channel, (e, ...args) => fn(senderOf(e), args)),
      on: (channel, fn) => ipcMain.on(channel, (e, ...args) => fn(senderOf(e), args)),
    },
    safeStorage: {
      isEncryptionAvailable: () => safeStorage.isEncryptionAvailable(),
      selectedBackend: () =>
        process.platform === 'linux' ? safeStorage.getSelectedStorageBackend() : undefined,
      encryptString: (text) => safeStorage.encryptString(text),
      decryptString: (data) => safeStorage.decryptString(data),
    },
  };
}

// ---------------------------------------------------------------------------------------------

const storeFactory: StoreFactory = (o) =>
  new ElectronStore<Record<string, unknown>>({
    cwd: o.cwd,
    name: o.name,
    configFileMode: o.configFileMode,
    accessPropertiesByDotNotation: o.accessPropertiesByDotNotation,
  });

/**
 * The node's home: --home or CLINIC_SYNC_HOME as for the CLI, else the home of the OS service
 * installed on this computer (so the tray attaches to it), else this user's default.
 */
function appHome(argv: string[]): string {
  const flag = argv.find((a) => a.startsWith('--home='))?.slice('--home='.length);
  if (flag !== undefined || process.env.CLINIC_SYNC_HOME) return resolveHome(flag);
  const programData = process.env.ProgramData ?? 'C:\\ProgramData';
  const service = installedServiceHome(process.platform, undefined, [
    path.win32.join(programData, 'ClinicSync'),
  ]);
  return service ?? resolveHome();
}

/** Whether this account may read a folder that exists (a service's home may belong to another). */
function readable(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

async function start(): Promise<void> {
  const argv = process.argv.slice(1);
  protocol.registerSchemesAsPrivileged([
    { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
  ]);
  // Windows shows notifications only for an app with the id its Start-menu shortcut carries.
  if (process.platform === 'win32') app.setAppUserModelId('org.clinicsync.app');
  await app.whenReady();
  const seam = realSeam();
  const home = new DesktopHome(appHome(argv), seam.safeStorage);

  if (argv.includes('--prepare-service')) {
    const names = home.unsealForService();
    process.stdout.write(
      `Prepared ${home.dir} for a service (${names.join(', ') || 'nothing to do'}).\n`,
    );
    app.exit(0);
    return;
  }
  if (argv.includes('--uninstall')) {
    const { main } = await import('../cli/main.js');
    const code = await uninstallNode(home, (args) => main(args));
    setStartAtLogin(false, { platform: process.platform, app: seam.app, env: process.env });
    app.exit(code);
    return;
  }

  protocol.handle(APP_SCHEME, appProtocolHandler(path.join(appRoot, 'renderer', 'dist')));
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, grant) => grant(false));

  const prefs = new ElectronStore<ShellPrefs & { startAtLoginSet: boolean }>({
    name: 'desktop',
    defaults: { closeNoticeShown: false, startAtLoginSet: false },
  });
  const switchable = new SwitchableApi();
  const answers = async (baseUrl: string, token: string) => {
    const probe = createHttpApi({ baseUrl, token }).getStatus();
    const late = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('no answer')), 3000),
    );
    return Promise.race([probe, late]).then(
      () => true,
      () => false,
    );
  };
  let onProblem: (sentence: string | null) => void = () => undefined;
  const supervisor = new EngineSupervisor({
    switchable,
    retryMs: 15_000,
    onProblem: (s) => onProblem(s),
    choose: async () => {
      if (!readable(home.dir)) {
        throw new SyncError(
          'state',
          `ClinicSync runs here as a service under another account, and this account cannot read its folder ${home.dir}; ask your IT person to run the service as your account.`,
        );
      }
      return chooseEngine(home, readSettings() !== null, realProbe(answers));
    },
    startOwn: () =>
      startOwnEngine({
        home,
        settings: readSettings() ?? home.requireSettings(),
        listen: { host: '0.0.0.0', port: 8750 },
        log: (e) => console.error(`${new Date().toISOString()} ${e.level} ${e.message}`),
      }),
    attach: (baseUrl, token) => createHttpApi({ baseUrl, token }),
    setupApi: (onNodeReady) =>
      createSetupApi({ home, cloneRunner: cloneRunner(home), onNodeReady }),
  });
  function readSettings() {
    return new SettingsStore({ home, factory: storeFactory }).read();
  }

  const shell = startShell({
    seam,
    switchable,
    preloadPath: path.join(here, '..', 'preload', 'index.cjs'),
    windowIcon: path.join(resources, 'icons', 'app', '256x256.png'),
    hidden: argv.includes(HIDDEN_FLAG),
    keyringWarning: keyringWarning(seam.safeStorage),
    prefs: {
      read: () => ({ closeNoticeShown: prefs.get('closeNoticeShown') }),
      write: (p) => prefs.set('closeNoticeShown', p.closeNoticeShown),
    },
    closeEngine: () => supervisor.close(),
    log: (m) => console.error(m),
  });
  if (!shell) return;
  onProblem = (s) => shell.setProblem(s);

  // A clinic laptop must sync without anyone remembering to start ClinicSync: on by default,
  // once; a person who turns it off later is not overruled.
  const autostart = { platform: process.platform, app: seam.app, env: process.env };
  if (app.isPackaged && !prefs.get('startAtLoginSet')) {
    if (!startsAtLogin(autostart)) setStartAtLogin(true, autostart);
    prefs.set('startAtLoginSet', true);
  }
  // Closing the window keeps the app in the tray.
  app.on('window-all-closed', () => undefined);
  await supervisor.refresh();
}

void start();
