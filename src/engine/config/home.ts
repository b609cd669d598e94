import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Conf from 'conf';
import { SyncError } from '../errors.js';
import { parseDbUrl, type DbTarget } from '../db/url.js';
import { parseSettings, type Settings } from './settings.js';

export const DB_PASSWORD_SECRET = 'db-password';

/**
 * The node's home folder: --home, else CLINIC_SYNC_HOME, else the OS application-data folder.
 * `env` and `platform` are parameters so every OS's answer can be tested on any OS.
 */
export function resolveHome(
  flag?: string,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  if (flag !== undefined) {
    if (flag.trim() === '') throw new SyncError('usage', '--home needs a folder name.');
    return path.resolve(flag);
  }
  if (env.CLINIC_SYNC_HOME) return path.resolve(env.CLINIC_SYNC_HOME);
  const home = env.HOME || os.homedir();
  if (platform === 'win32') {
    return path.win32.join(
      env.APPDATA || path.win32.join(home, 'AppData', 'Roaming'),
      'ClinicSync',
    );
  }
  if (platform === 'darwin') {
    return path.posix.join(home, 'Library', 'Application Support', 'ClinicSync');
  }
  const xdg = env.XDG_CONFIG_HOME;
  const configDir = xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.config');
  return path.join(configDir, 'clinic-sync');
}

const SECRET_NAME = /^[a-z0-9][a-z0-9.-]{0,63}$/;

/** One node's folder: settings.json, secrets/ (0700, files 0600) and logs/. */
export class Home {
  readonly settingsPath: string;
  readonly secretsDir: string;
  readonly logsDir: string;

  constructor(readonly dir: string) {
    this.settingsPath = path.join(dir, 'settings.json');
    this.secretsDir = path.join(dir, 'secrets');
    this.logsDir = path.join(dir, 'logs');
  }

  /** The settings, or null where this folder is not a node yet. */
  load(): Settings | null {
    if (!fs.existsSync(this.settingsPath)) return null;
    let data: unknown;
    try {
      data = this.store().store;
    } catch (e) {
      throw new SyncError(
        'config',
        `The settings file ${this.settingsPath} cannot be read (${reason(e)}); fix or remove it.`,
        { cause: e },
      );
    }
    return parseSettings(data, this.settingsPath);
  }

  /** The settings, or a sentence telling the user to run init. */
  requireSettings(): Settings {
    const settings = this.load();
    if (settings) return settings;
    throw new SyncError(
      'state',
      `The folder ${this.dir} is not a ClinicSync node yet; run "clinic-sync init --db URL --name NAME" first, or point --home at the node's folder.`,
    );
  }

  save(settings: Settings): void {
    const valid = parseSettings(settings);
    this.ensureDir(this.dir);
    // conf adds its own marker to the object it is given, hence the copy.
    this.store().store = structuredClone(valid);
  }

  readSecret(name: string): string | null {
    try {
      return fs.readFileSync(this.secretPath(name), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new SyncError(
        'config',
        `The secret ${this.secretPath(name)} cannot be read (${reason(e)}).`,
        {
          cause: e,
        },
      );
    }
  }

  writeSecret(name: string, value: string): void {
    const file = this.secretPath(name);
    this.ensureDir(this.dir);
    this.ensureDir(this.secretsDir);
    writeAtomically(file, value);
  }

  deleteSecret(name: string): void {
    fs.rmSync(this.secretPath(name), { force: true });
  }

  /** After uninstall or a failed init: the folder stops being a node (logs stay). */
  forgetNode(): void {
    fs.rmSync(this.settingsPath, { force: true });
    fs.rmSync(this.secretsDir, { recursive: true, force: true });
  }

  /*
   * conf is electron-store's own core, and the desktop app's electron-store opens this same file
   * (DESIGN §9): the same serializer, the same atomic write (temp file, fsync, rename, retried on
   * Windows' transient locks), and electron-store's migration marker survives our writes. Its
   * ajv schema is left unused: the zod schema in settings.ts is the one that validates.
   */
  private store(): Conf<Record<string, unknown>> {
    return new Conf<Record<string, unknown>>({
      cwd: this.dir,
      configName: 'settings',
      configFileMode: 0o600,
      accessPropertiesByDotNotation: false,
    });
  }

  private secretPath(name: string): string {
    if (!SECRET_NAME.test(name)) {
      throw new SyncError('usage', `"${name}" is not a valid secret name.`);
    }
    return path.join(this.secretsDir, name);
  }

  private ensureDir(dir: string): void {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // mkdir leaves an existing folder's mode alone; secrets must not stay readable by others.
    if (dir === this.secretsDir) fs.chmodSync(dir, 0o700);
  }
}

function writeAtomically(file: string, value: string): void {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(temp, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, value);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(temp, file);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw e;
  }
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message.replace(/\s+/g, ' ').trim() : String(e);
}

export type PasswordSource = 'url' | 'file' | 'env' | 'secret' | 'none';

export interface ResolvedDb {
  target: DbTarget;
  /** where the password came from; init stores it as a secret unless it already was one */
  passwordSource: PasswordSource;
}

/**
 * The database to use: the URL given (else the one in the node's settings), with its password
 * from the URL itself, else --db-password-file, else MYSQL_PWD, else the node's stored secret.
 */
export function resolveDbTarget(
  url: string | undefined,
  opts: { passwordFile?: string; env?: NodeJS.ProcessEnv },
  home: Home | null,
): ResolvedDb {
  const env = opts.env ?? process.env;
  const dbUrl = url ?? home?.requireSettings().db;
  if (dbUrl === undefined) {
    throw new SyncError('usage', 'Name the database with --db mysql://user@host:port/database.');
  }
  const target = parseDbUrl(dbUrl);
  if (target.password !== undefined) return { target, passwordSource: 'url' };
  if (opts.passwordFile !== undefined) {
    return {
      target: { ...target, password: readPasswordFile(opts.passwordFile) },
      passwordSource: 'file',
    };
  }
  if (env.MYSQL_PWD)
    return { target: { ...target, password: env.MYSQL_PWD }, passwordSource: 'env' };
  const stored = home?.readSecret(DB_PASSWORD_SECRET) ?? null;
  if (stored !== null) return { target: { ...target, password: stored }, passwordSource: 'secret' };
  return { target, passwordSource: 'none' };
}

function readPasswordFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new SyncError(
      'usage',
      `The password file ${file} cannot be read (${reason(e)}); check --db-password-file.`,
      { cause: e },
    );
  }
}
