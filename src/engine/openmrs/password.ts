import fs from 'node:fs';
import type { Home } from '../config/home.js';
import { SyncError } from '../errors.js';

/** The secret holding the password of the OpenMRS user named by openmrs.user. */
export const OPENMRS_PASSWORD_SECRET = 'openmrs-password';

/**
 * `config set openmrs.user NAME --password-file F`: the password is kept like the database's, in
 * the node's secrets (the desktop app seals them in the keyring), never in the settings.
 */
export function storeOpenmrsPassword(home: Home, key: string, file: string): void {
  if (key !== 'openmrs.user') {
    throw new SyncError(
      'usage',
      '--password-file goes with openmrs.user: "config set openmrs.user NAME --password-file FILE".',
    );
  }
  let password: string;
  try {
    password = fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new SyncError(
      'usage',
      `The password file ${file} cannot be read (${e instanceof Error ? e.message : String(e)}); check --password-file.`,
      { cause: e },
    );
  }
  if (password === '') {
    throw new SyncError('usage', `The password file ${file} is empty; put the password in it.`);
  }
  home.writeSecret(OPENMRS_PASSWORD_SECRET, password);
}
