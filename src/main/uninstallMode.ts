import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DB_PASSWORD_SECRET, type Home } from '../engine/config/home.js';

/** Runs `clinic-sync ARGS…` and gives its exit code (the CLI's main, in this process). */
export type RunCli = (args: string[]) => Promise<number>;

/**
 * `ClinicSync --uninstall` (the Windows uninstaller runs it): `clinic-sync uninstall` on the node
 * in this home, with its database password taken out of the keyring by the app and handed to the
 * command in a 0600 file that is removed afterwards. A home with no node is nothing to do.
 */
export async function uninstallNode(home: Home, runCli: RunCli): Promise<number> {
  const settings = home.load();
  if (settings === null) return 0;
  const args = ['--home', home.dir, 'uninstall', '--db', settings.db];
  const password = home.readSecret(DB_PASSWORD_SECRET);
  if (password === null) return runCli(args);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clinicsync-'));
  try {
    const file = path.join(dir, 'db-password');
    fs.writeFileSync(file, password, { mode: 0o600 });
    return await runCli([...args, '--db-password-file', file]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
