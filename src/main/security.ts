import { RENDERER_CSP } from '../api/adminServer.js';
import type { IpcSender, WindowOptions } from './electronSeam.js';

/*
 * The window's security defaults (Electron's security checklist): no Node in the page, an
 * isolated and sandboxed preload, a Content-Security-Policy, pages only from our own protocol
 * (never file://), every IPC sender checked, navigation and new windows refused.
 */

/** The UI's own protocol: app://clinicsync/ serves the built renderer (renderer/dist). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'clinicsync';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

/** The window's page, optionally at one of its screens (the renderer's hash route). */
export function appPageUrl(screen?: string): string {
  return `${APP_ORIGIN}/index.html${screen ? `#/${screen}` : ''}`;
}

/** The same policy the admin server sends with the renderer in a browser. */
export const WINDOW_CSP = RENDERER_CSP;

export function windowOptions(preload: string, icon: string): WindowOptions {
  return {
    width: 1100,
    height: 760,
    minWidth: 720,
    minHeight: 520,
    title: 'ClinicSync',
    show: false,
    icon,
    webPreferences: {
      preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      spellcheck: false,
    },
  };
}

/** True when a URL is a page of our own protocol. */
export function isAppUrl(url: string | null): boolean {
  if (url === null) return false;
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST;
  } catch {
    return false;
  }
}

/**
 * Only our window's main frame, showing a page of our protocol, may call the engine: not another
 * window, not an iframe, not a page that navigated elsewhere.
 */
export function isTrustedSender(sender: IpcSender, windowContentsId: number | null): boolean {
  return (
    windowContentsId !== null &&
    sender.webContentsId === windowContentsId &&
    sender.isMainFrame &&
    isAppUrl(sender.frameUrl)
  );
}

/**
 * Whether the window may go to this URL: only within our own pages (the renderer routes by hash,
 * so it never needs to). Links to anywhere else are refused, and so is every new window.
 */
export function mayNavigate(url: string): boolean {
  return isAppUrl(url);
}
