import { Home } from '../engine/config/home.js';
import { KEYRING_MARK, sealedSecrets } from '../service/sealed.js';
import type { SafeStorageSeam } from './electronSeam.js';

/*
 * Secrets at rest in the desktop app (DESIGN §8): through Electron's safeStorage (the Windows
 * user's DPAPI, the Linux desktop's keyring), in the same files of the node's secrets/ folder
 * (still mode 0600), marked so either form is recognised. Where the OS offers no keyring, they
 * stay plain 0600 files as in headless mode, and the tray says so.
 *
 * The admin token stays plain: `clinic-sync` commands on this computer read it to reach the
 * engine this app runs (one engine per node), and it opens nothing but the loopback admin API.
 */

/** Secrets left in plain files: the CLI on this computer needs them (see above). */
export const PLAIN_SECRETS: readonly string[] = ['admin-token'];

/** Whether safeStorage really protects anything on this computer. */
export function keyringAvailable(safe: SafeStorageSeam): boolean {
  return safe.isEncryptionAvailable() && safe.selectedBackend() !== 'basic_text';
}

/** The visible warning where there is no keyring, or null. */
export function keyringWarning(safe: SafeStorageSeam): string | null {
  if (keyringAvailable(safe)) return null;
  return 'No keyring on this computer: passwords are kept in files only your account can read.';
}

/** The node's home as the desktop app uses it: secrets go through safeStorage where it can. */
export class DesktopHome extends Home {
  constructor(
    dir: string,
    private readonly safe: SafeStorageSeam,
  ) {
    super(dir);
  }

  override readSecret(name: string): string | null {
    const stored = super.readSecret(name);
    if (stored === null || !stored.startsWith(`${KEYRING_MARK}\n`)) return stored;
    const data = Buffer.from(stored.slice(KEYRING_MARK.length + 1), 'base64');
    return this.safe.decryptString(data);
  }

  override writeSecret(name: string, value: string): void {
    if (PLAIN_SECRETS.includes(name) || !keyringAvailable(this.safe)) {
      super.writeSecret(name, value);
      return;
    }
    const sealed = this.safe.encryptString(value).toString('base64');
    super.writeSecret(name, `${KEYRING_MARK}\n${sealed}`);
  }

  /**
   * Rewrites every sealed secret as a plain 0600 file, for a service that runs with nobody
   * logged in and so without this user's keyring (headless mode, `ClinicSync --prepare-service`).
   * Returns the names rewritten.
   */
  unsealForService(): string[] {
    const names = sealedSecrets(this);
    for (const name of names) {
      const plain = this.readSecret(name);
      if (plain !== null) super.writeSecret(name, plain);
    }
    return names;
  }
}
