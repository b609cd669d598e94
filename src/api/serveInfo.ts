import fs from 'node:fs';
import path from 'node:path';
import type { Home } from '../engine/config/home.js';

/**
 * What `clinic-sync serve` writes to `serve.json` in the node's home when it is ready, so other
 * commands (`admin-url`, `sync`) and the desktop app can find the running engine.
 */
export interface ServeInfo {
  pid: number;
  /** the endpoint children call, like http://0.0.0.0:8750 (or HOST:PORT) */
  listen: string | null;
  /** the admin API, like http://127.0.0.1:8751 (or HOST:PORT); null when it is off */
  admin: string | null;
}

export const SERVE_INFO_FILE = 'serve.json';

export function serveInfoPath(home: Home): string {
  return path.join(home.dir, SERVE_INFO_FILE);
}

/** The file's contents when they are readable and well-formed, else null. */
export function readServeInfo(home: Home): ServeInfo | null {
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(serveInfoPath(home), 'utf8'));
  } catch {
    return null;
  }
  if (typeof data !== 'object' || data === null) return null;
  const { pid, listen, admin } = data as Record<string, unknown>;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return null;
  return {
    pid,
    listen: typeof listen === 'string' ? listen : null,
    admin: typeof admin === 'string' ? admin : null,
  };
}

/** True while a process with this id runs (on this computer). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, under another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `http://HOST:PORT` from either spelling serve.json may use (a URL or HOST:PORT). */
export function adminBaseUrl(admin: string): string | null {
  const text = /^https?:\/\//i.test(admin) ? admin : `http://${admin}`;
  try {
    const u = new URL(text);
    if (!u.port) return null;
    return `${u.protocol}//${u.host}`;
  } catch {
    return null;
  }
}
