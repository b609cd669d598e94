import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import type { AppSeam } from './electronSeam.js';

/*
 * Start at login, hidden in the tray (--hidden): a Windows login item through Electron, an XDG
 * autostart entry on Linux (Electron has no login items there), written by this code.
 */

export const HIDDEN_FLAG = '--hidden';
export const AUTOSTART_FILE = 'clinicsync.desktop';

export interface AutostartEnv {
  platform: NodeJS.Platform;
  app: AppSeam;
  env: NodeJS.ProcessEnv;
}

/** ~/.config/autostart/clinicsync.desktop, or under XDG_CONFIG_HOME. */
export function autostartPath(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  const config = xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || os.homedir(), '.config');
  return path.join(config, 'autostart', AUTOSTART_FILE);
}

/** One argument of an Exec line, quoted as the Desktop Entry Specification says. */
export function execArg(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `"${arg.replace(/(["`$\\])/g, '\\$1')}"`;
}

/** The autostart entry that starts the app hidden in the tray. */
export function desktopEntry(executable: string): string {
  return [
    '[Desktop Entry]',
    'Type=Application',
    'Name=ClinicSync',
    "Comment=Keeps this clinic's database in sync",
    `Exec=${execArg(executable)} ${HIDDEN_FLAG}`,
    'Icon=clinicsync',
    'Terminal=false',
    'X-GNOME-Autostart-enabled=true',
    '',
  ].join('\n');
}

/**
 * The program to start: an AppImage runs from a temporary mount, so its entry names the AppImage
 * file itself (APPIMAGE); otherwise the running executable.
 */
export function launcherPath(e: AutostartEnv): string {
  return e.env.APPIMAGE || e.app.exePath();
}

export function setStartAtLogin(enabled: boolean, e: AutostartEnv): void {
  if (e.platform === 'linux') {
    const file = autostartPath(e.env);
    if (enabled) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, desktopEntry(launcherPath(e)));
    } else {
      fs.rmSync(file, { force: true });
    }
    return;
  }
  e.app.setLoginItemSettings({ openAtLogin: enabled, args: enabled ? [HIDDEN_FLAG] : [] });
}

export function startsAtLogin(e: AutostartEnv): boolean {
  if (e.platform === 'linux') return fs.existsSync(autostartPath(e.env));
  return e.app.getLoginItemSettings().openAtLogin;
}
