import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DB_PASSWORD_SECRET,
  Home,
  resolveDbTarget,
  resolveHome,
} from '../../src/engine/config/home.js';
import { defaultSettings, setSetting } from '../../src/engine/config/settings.js';
import { SyncError } from '../../src/engine/errors.js';

const DB = 'mysql://openmrs@127.0.0.1:3306/openmrs';
const mode = (file: string) => fs.statSync(file).mode & 0o777;

let dir: string;
let home: Home;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-home-'));
  home = new Home(path.join(dir, 'node'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('resolveHome', () => {
  it('prefers --home, then CLINIC_SYNC_HOME', () => {
    const env = { CLINIC_SYNC_HOME: '/srv/cs', HOME: '/home/nurse' };
    expect(resolveHome('/tmp/x', env, 'linux')).toBe('/tmp/x');
    expect(resolveHome(undefined, env, 'linux')).toBe('/srv/cs');
    expect(resolveHome('rel', env, 'linux')).toBe(path.resolve('rel'));
  });

  it("falls back to each OS's application-data folder", () => {
    expect(resolveHome(undefined, { HOME: '/home/nurse' }, 'linux')).toBe(
      '/home/nurse/.config/clinic-sync',
    );
    expect(resolveHome(undefined, { HOME: '/home/nurse', XDG_CONFIG_HOME: '/cfg' }, 'linux')).toBe(
      '/cfg/clinic-sync',
    );
    expect(resolveHome(undefined, { HOME: '/Users/nurse' }, 'darwin')).toBe(
      '/Users/nurse/Library/Application Support/ClinicSync',
    );
    expect(resolveHome(undefined, { APPDATA: 'C:\\Users\\nurse\\AppData\\Roaming' }, 'win32')).toBe(
      'C:\\Users\\nurse\\AppData\\Roaming\\ClinicSync',
    );
  });

  it('refuses an empty --home', () => {
    expect(() => resolveHome('  ', {}, 'linux')).toThrow(SyncError);
  });
});

describe('Home settings', () => {
  it('is not a node until settings are saved', () => {
    expect(home.load()).toBeNull();
    expect(() => home.requireSettings()).toThrow(
      /is not a ClinicSync node yet; run "clinic-sync init/,
    );
    expect(fs.existsSync(home.dir)).toBe(false);
  });

  it('saves atomically with mode 0600 and loads the same settings back', () => {
    const s = setSetting(defaultSettings({ db: DB, name: 'Butaro' }), 'sync.retries', '9');
    home.save(s);
    expect(home.load()).toEqual(s);
    expect(mode(home.settingsPath)).toBe(0o600);
    expect(fs.readdirSync(home.dir)).toEqual(['settings.json']);
    home.save({ ...s, name: 'Rwinkwavu' });
    expect(home.load()?.name).toBe('Rwinkwavu');
    expect(fs.readdirSync(home.dir)).toEqual(['settings.json']);
  });

  it('refuses to save invalid settings and leaves the file as it was', () => {
    const s = defaultSettings({ db: DB, name: 'Butaro' });
    home.save(s);
    expect(() => home.save({ ...s, sync: { ...s.sync, retries: -1 } })).toThrow(/sync\.retries/);
    expect(home.load()).toEqual(s);
  });

  it('says in one sentence when the file is not JSON or breaks the schema', () => {
    fs.mkdirSync(home.dir, { recursive: true });
    fs.writeFileSync(home.settingsPath, '{ "db": ');
    expect(() => home.load()).toThrow(/^The settings file .*settings\.json cannot be read/);
    fs.writeFileSync(home.settingsPath, JSON.stringify({ db: DB, name: 'A', role: 'boss' }));
    const e = (() => {
      try {
        home.load();
      } catch (err) {
        return err as SyncError;
      }
    })();
    expect(e?.kind).toBe('config');
    expect(e?.message).toBe(`The setting role must be root or child (in ${home.settingsPath}).`);
  });

  it('forgetNode removes settings and secrets but keeps logs', () => {
    home.save(defaultSettings({ db: DB, name: 'A' }));
    home.writeSecret(DB_PASSWORD_SECRET, 'pw');
    fs.mkdirSync(home.logsDir);
    home.forgetNode();
    expect(home.load()).toBeNull();
    expect(home.readSecret(DB_PASSWORD_SECRET)).toBeNull();
    expect(fs.existsSync(home.logsDir)).toBe(true);
  });
});

describe('Home secrets', () => {
  it('writes secrets as 0600 files in a 0700 folder and reads them back exactly', () => {
    expect(home.readSecret('node-secret')).toBeNull();
    home.writeSecret('node-secret', ' s3cret\n');
    expect(home.readSecret('node-secret')).toBe(' s3cret\n');
    expect(mode(path.join(home.secretsDir, 'node-secret'))).toBe(0o600);
    expect(mode(home.secretsDir)).toBe(0o700);
    home.writeSecret('node-secret', 'new');
    expect(home.readSecret('node-secret')).toBe('new');
    expect(fs.readdirSync(home.secretsDir)).toEqual(['node-secret']);
  });

  it('tightens a secrets folder that was left open', () => {
    fs.mkdirSync(home.secretsDir, { recursive: true, mode: 0o755 });
    fs.chmodSync(home.secretsDir, 0o755);
    home.writeSecret('x', 'y');
    expect(mode(home.secretsDir)).toBe(0o700);
  });

  it('refuses secret names that could leave the folder', () => {
    expect(() => home.writeSecret('../settings.json', 'x')).toThrow(SyncError);
    expect(() => home.readSecret('a/b')).toThrow(SyncError);
  });
});

describe('resolveDbTarget', () => {
  const pwFile = () => {
    const f = path.join(dir, 'pw');
    fs.writeFileSync(f, '  from-file\n');
    return f;
  };

  it('takes the password from the URL first', () => {
    home.writeSecret(DB_PASSWORD_SECRET, 'stored');
    const r = resolveDbTarget(
      'mysql://u:from%40url@h:3307/d',
      { passwordFile: pwFile(), env: { MYSQL_PWD: 'env' } },
      home,
    );
    expect(r).toEqual({
      target: { host: 'h', port: 3307, user: 'u', password: 'from@url', database: 'd' },
      passwordSource: 'url',
    });
  });

  it('then the password file (trimmed), then MYSQL_PWD, then the stored secret', () => {
    home.writeSecret(DB_PASSWORD_SECRET, 'stored');
    const url = 'mysql://u@h/d';
    const file = pwFile();
    expect(
      resolveDbTarget(url, { passwordFile: file, env: { MYSQL_PWD: 'env' } }, home).target.password,
    ).toBe('from-file');
    const fromEnv = resolveDbTarget(url, { env: { MYSQL_PWD: 'env' } }, home);
    expect([fromEnv.target.password, fromEnv.passwordSource]).toEqual(['env', 'env']);
    const stored = resolveDbTarget(url, { env: {} }, home);
    expect([stored.target.password, stored.passwordSource]).toEqual(['stored', 'secret']);
    const none = resolveDbTarget(url, { env: {} }, null);
    expect([none.target.password, none.passwordSource]).toEqual([undefined, 'none']);
  });

  it("uses the node's own database when no URL is given", () => {
    home.save(defaultSettings({ db: DB, name: 'A' }));
    expect(resolveDbTarget(undefined, { env: {} }, home).target.database).toBe('openmrs');
    expect(() => resolveDbTarget(undefined, { env: {} }, null)).toThrow(/--db/);
    expect(() =>
      resolveDbTarget(undefined, { env: {} }, new Home(path.join(dir, 'empty'))),
    ).toThrow(/not a ClinicSync node yet/);
  });

  it('says so when the password file cannot be read', () => {
    const e = (() => {
      try {
        resolveDbTarget('mysql://u@h/d', { passwordFile: path.join(dir, 'missing') }, null);
      } catch (err) {
        return err as SyncError;
      }
    })();
    expect(e?.kind).toBe('usage');
    expect(e?.message).toMatch(/^The password file .*missing cannot be read/);
  });
});
