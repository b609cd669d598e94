import fs from 'node:fs';
import type { Home } from '../engine/config/home.js';
import { SETTINGS_VERSION, parseSettings, type Settings } from '../engine/config/settings.js';
import { SyncError } from '../engine/errors.js';

/*
 * The desktop app's view of the node's settings file (DESIGN §9): electron-store opened on the
 * very file the CLI reads through conf (settings.json in the node's home, mode 0600), validated
 * by the one shared schema. The file carries our own schema version (settingsVersion), and the
 * app brings an older file up to date before anything reads it, so the CLI and the app always
 * meet one layout. (electron-store's own migrations are keyed by the app's version, which says
 * nothing about this file's layout; they are not used.)
 */

/** The part of electron-store (and of conf, its core) this module uses. */
export interface StoreBackend {
  store: Record<string, unknown>;
  readonly path: string;
}

export interface StoreBackendOptions {
  /** the node's home folder */
  cwd: string;
  /** the file's name without .json: 'settings', as conf in home.ts */
  name: string;
  configFileMode: number;
  accessPropertiesByDotNotation: false;
}

/** Opens the file: `new ElectronStore({...})` in the app, `new Conf({...})` in tests. */
export type StoreFactory = (options: StoreBackendOptions) => StoreBackend;

/** One step: turns a file of version N-1 into version N (keyed by N). */
export type Migration = (raw: Record<string, unknown>) => Record<string, unknown>;

/**
 * The steps, by the version they produce. Version 0 is a file from before the version was
 * written into it: the same fields, so the step only records the version.
 */
export const SETTINGS_MIGRATIONS: Readonly<Record<number, Migration>> = {
  1: (raw) => ({ ...raw, settingsVersion: 1 }),
};

const INTERNAL_KEY = '__internal__';

/** The file's version: settingsVersion, or 0 where it is missing. */
export function versionOf(raw: Record<string, unknown>): number {
  const v = raw.settingsVersion;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0;
}

/**
 * Brings raw settings from their version to `target` one step at a time. A file newer than this
 * app, or a step missing, is refused: nothing is changed then.
 */
export function migrateSettings(
  raw: Record<string, unknown>,
  target: number = SETTINGS_VERSION,
  steps: Readonly<Record<number, Migration>> = SETTINGS_MIGRATIONS,
): Record<string, unknown> {
  const from = versionOf(raw);
  if (from > target) {
    throw new SyncError(
      'config',
      `The settings were written by a newer ClinicSync (settings version ${from}); install that version or newer.`,
    );
  }
  let out = raw;
  for (let v = from + 1; v <= target; v++) {
    const step = steps[v];
    if (!step) {
      throw new SyncError('config', `ClinicSync cannot update settings to version ${v}.`);
    }
    out = step(out);
  }
  return out;
}

export interface SettingsStoreOptions {
  home: Home;
  factory: StoreFactory;
  /** the version this app writes (tests play later apps) */
  version?: number;
  migrations?: Readonly<Record<number, Migration>>;
  /** validates the migrated fields (tests of later versions pass their own) */
  parse?: (raw: unknown, source: string) => Settings;
}

/**
 * The node's settings through electron-store. Opening brings an older file up to date (written
 * once, atomically, by the store); a home with no settings file yet (before setup) stays empty.
 */
export class SettingsStore {
  private readonly backend: StoreBackend | null;
  private readonly parse: (raw: unknown, source: string) => Settings;

  constructor(private readonly opts: SettingsStoreOptions) {
    this.parse = opts.parse ?? parseSettings;
    // Opening conf on a missing file is harmless, but the app must not be the one to create it:
    // an empty settings file would make the CLI think a node exists.
    this.backend = fs.existsSync(opts.home.settingsPath) ? this.open() : null;
    if (this.backend) this.bringUpToDate(this.backend);
  }

  /** The settings, or null where the home is not a node yet. */
  read(): Settings | null {
    if (!this.backend) return null;
    return this.parse(this.fields(this.backend), this.backend.path);
  }

  private open(): StoreBackend {
    return this.opts.factory({
      cwd: this.opts.home.dir,
      name: 'settings',
      configFileMode: 0o600,
      accessPropertiesByDotNotation: false,
    });
  }

  private fields(backend: StoreBackend): Record<string, unknown> {
    const raw = { ...backend.store };
    delete raw[INTERNAL_KEY];
    return raw;
  }

  private bringUpToDate(backend: StoreBackend): void {
    const raw = this.fields(backend);
    const migrated = migrateSettings(
      raw,
      this.opts.version ?? SETTINGS_VERSION,
      this.opts.migrations ?? SETTINGS_MIGRATIONS,
    );
    if (migrated === raw) return;
    // Checked before it is written: a step that produces invalid settings changes nothing.
    this.parse(migrated, backend.path);
    backend.store = migrated;
  }
}
