import fs from 'node:fs';
import type { Home } from '../engine/config/home.js';

/**
 * The first line of a secret file the desktop app sealed with Electron's safeStorage (the
 * user's keyring); base64 follows. Only the app, run by that user, can open it.
 */
export const KEYRING_MARK = 'clinicsync-safestorage-v1';

/** The secrets of a home that only the desktop app can read (sealed in a user's keyring). */
export function sealedSecrets(home: Home): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(home.secretsDir);
  } catch {
    return [];
  }
  return names
    .filter((name) => !name.endsWith('.tmp'))
    .filter((name) => {
      try {
        return fs
          .readFileSync(`${home.secretsDir}/${name}`, 'utf8')
          .startsWith(`${KEYRING_MARK}\n`);
      } catch {
        return false;
      }
    })
    .sort();
}
