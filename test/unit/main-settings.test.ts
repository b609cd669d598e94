import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Conf from 'conf';
import { afterEach, describe, expect, it } from 'vitest';
import { Home } from '../../src/engine/config/home.js';
import {
  SETTINGS_VERSION,
  defaultSettings,
  type Settings,
} from '../../src/engine/config/settings.js';
import { DesktopHome, keyringAvailable, keyringWarning } from '../../src/main/secrets.js';
import { SettingsStore, migrateSettings, type StoreFactory } from '../../src/main/settingsStore.js';
import { KEYRING_MARK, sealedSecrets } from '../../src/service/sealed.js';
import { stubSafeStorage } from '../helpers/electronStub.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-main-settings-'));
  dirs.push(d);
  return d;
}

/** conf is electron-store's core: the app passes `new ElectronStore(o)`, with the same options. */
const confFactory: StoreFactory = (o) =>
  new Conf<Record<string, unknown>>({
    cwd: o.cwd,
    configName: o.name,
    configFileMode: o.configFileMode,
    accessPropertiesByDotNotation: o.accessPropertiesByDotNotation,
  });

const DB = 'mysql://openmrs@127.0.0.1:3306/openmrs';

/** A settings file as ClinicSync wrote it before the version was recorded (version 0). */
const VERSION_0 = {
  db: DB,
  name: 'Rwinkwavu',
  role: 'child',
  parent: 'http://district.example.org:8750',
  sync: { intervalSeconds: 900 },
  tables: { preset: 'openmrs', include: [], exclude: ['obs'] },
};

function writeFile(home: Home, data: unknown): void {
  fs.mkdirSync(home.dir, { recursive: true });
  fs.writeFileSync(home.settingsPath, JSON.stringify(data, null, '\t'));
}

const readFile = (home: Home) =>
  JSON.parse(fs.readFileSync(home.settingsPath, 'utf8')) as Record<string, unknown>;

describe('the settings through electron-store', () => {
  it('opens the very file the CLI reads, and brings a version-0 file up to the current version', () => {
    const home = new Home(tempDir());
    writeFile(home, VERSION_0);
    const store = new SettingsStore({ home, factory: confFactory });
    const settings = store.read();
    expect(settings).toMatchObject({
      settingsVersion: SETTINGS_VERSION,
      name: 'Rwinkwavu',
      sync: { intervalSeconds: 900 },
      tables: { exclude: ['obs'] },
    });
    // Written back once: the CLI now reads the same version from the same file.
    expect(readFile(home).settingsVersion).toBe(SETTINGS_VERSION);
    expect(home.load()).toEqual(settings);
    expect(fs.statSync(home.settingsPath).mode & 0o777).toBe(0o600);
  });

  it('leaves a current file as it is, and a home with no node without a file', () => {
    const home = new Home(tempDir());
    expect(new SettingsStore({ home, factory: confFactory }).read()).toBeNull();
    expect(fs.existsSync(home.settingsPath)).toBe(false);
    home.save(defaultSettings({ db: DB, name: 'district' }));
    const before = fs.readFileSync(home.settingsPath, 'utf8');
    const mtime = fs.statSync(home.settingsPath).mtimeMs;
    expect(new SettingsStore({ home, factory: confFactory }).read()?.name).toBe('district');
    expect(fs.readFileSync(home.settingsPath, 'utf8')).toBe(before);
    expect(fs.statSync(home.settingsPath).mtimeMs).toBe(mtime);
  });

  it('refuses a file from a newer ClinicSync and changes nothing in it', () => {
    const home = new Home(tempDir());
    writeFile(home, { ...VERSION_0, settingsVersion: SETTINGS_VERSION + 1 });
    const before = fs.readFileSync(home.settingsPath, 'utf8');
    expect(() => new SettingsStore({ home, factory: confFactory })).toThrow(
      /written by a newer ClinicSync \(settings version 2\)/,
    );
    expect(fs.readFileSync(home.settingsPath, 'utf8')).toBe(before);
  });

  it('runs each step from the file’s version to the app’s, in order (a later app)', () => {
    const home = new Home(tempDir());
    writeFile(home, { ...VERSION_0, __internal__: { migrations: { version: '0.1.0' } } });
    const steps = {
      1: (raw: Record<string, unknown>) => ({ ...raw, settingsVersion: 1 }),
      2: (raw: Record<string, unknown>) => {
        const { sync, ...rest } = raw as { sync: { intervalSeconds: number } };
        return {
          ...rest,
          settingsVersion: 2,
          sync: { intervalMinutes: sync.intervalSeconds / 60 },
        };
      },
    };
    const store = new SettingsStore({
      home,
      factory: confFactory,
      version: 2,
      migrations: steps,
      parse: (raw) => raw as Settings,
    });
    expect(store.read()).toMatchObject({ settingsVersion: 2, sync: { intervalMinutes: 15 } });
    // electron-store's own marker is kept, out of the settings.
    expect(readFile(home).__internal__).toEqual({ migrations: { version: '0.1.0' } });
    expect(store.read()).not.toHaveProperty('__internal__');
  });

  it('writes nothing when a step fails or makes invalid settings', () => {
    const home = new Home(tempDir());
    writeFile(home, VERSION_0);
    const before = fs.readFileSync(home.settingsPath, 'utf8');
    const broken = {
      1: (raw: Record<string, unknown>) => ({ ...raw, settingsVersion: 1, name: '' }),
    };
    expect(() => new SettingsStore({ home, factory: confFactory, migrations: broken })).toThrow(
      /The setting name must be 1 to 40 letters/,
    );
    expect(() => migrateSettings({ settingsVersion: 0 }, 2, { 1: (r) => r })).toThrow(
      /cannot update settings to version 2/,
    );
    expect(fs.readFileSync(home.settingsPath, 'utf8')).toBe(before);
  });
});

describe('secrets through safeStorage', () => {
  it('seals secrets in the keyring, reads both forms, and leaves the admin token plain', () => {
    const dir = tempDir();
    const home = new DesktopHome(dir, stubSafeStorage('gnome_libsecret'));
    home.writeSecret('db-password', 's3cret!');
    home.writeSecret('admin-token', 'token-for-the-cli-0123456789abcdef');
    const onDisk = fs.readFileSync(path.join(dir, 'secrets', 'db-password'), 'utf8');
    expect(onDisk.startsWith(`${KEYRING_MARK}\n`)).toBe(true);
    expect(onDisk).not.toContain('s3cret');
    expect(fs.statSync(path.join(dir, 'secrets', 'db-password')).mode & 0o777).toBe(0o600);
    expect(home.readSecret('db-password')).toBe('s3cret!');
    // The CLI's Home reads the token as it is, and sees the password only sealed.
    const cli = new Home(dir);
    expect(cli.readSecret('admin-token')).toBe('token-for-the-cli-0123456789abcdef');
    expect(sealedSecrets(cli)).toEqual(['db-password']);
    // A secret the CLI wrote (before the app) still reads.
    cli.writeSecret('parent-secret', 'ab'.repeat(32));
    expect(home.readSecret('parent-secret')).toBe('ab'.repeat(32));
  });

  it('warns where the OS offers no keyring, and keeps 0600 files there', () => {
    const basic = stubSafeStorage('basic_text');
    expect(keyringAvailable(basic)).toBe(false);
    expect(keyringWarning(basic)).toMatch(/No keyring on this computer/);
    expect(keyringWarning(stubSafeStorage('kwallet5'))).toBeNull();
    expect(keyringWarning(stubSafeStorage(undefined))).toBeNull(); // Windows: DPAPI
    const none = { ...stubSafeStorage(undefined), isEncryptionAvailable: () => false };
    expect(keyringWarning(none)).not.toBeNull();

    const dir = tempDir();
    new DesktopHome(dir, basic).writeSecret('db-password', 'plain-here');
    expect(fs.readFileSync(path.join(dir, 'secrets', 'db-password'), 'utf8')).toBe('plain-here');
  });

  it('unseals every sealed secret as a 0600 file for a service', () => {
    const dir = tempDir();
    const home = new DesktopHome(dir, stubSafeStorage());
    home.writeSecret('db-password', 'pw');
    home.writeSecret('parent-secret', 'cd'.repeat(32));
    expect(home.unsealForService()).toEqual(['db-password', 'parent-secret']);
    const cli = new Home(dir);
    expect(cli.readSecret('db-password')).toBe('pw');
    expect(cli.readSecret('parent-secret')).toBe('cd'.repeat(32));
    expect(sealedSecrets(cli)).toEqual([]);
    expect(home.unsealForService()).toEqual([]);
  });
});
