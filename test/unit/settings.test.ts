import { describe, expect, it } from 'vitest';
import {
  defaultSettings,
  formatSetting,
  getSetting,
  leafKeys,
  parseSettings,
  setSetting,
  settableKeys,
  type Settings,
} from '../../src/engine/config/settings.js';
import { SyncError } from '../../src/engine/errors.js';

const DB = 'mysql://openmrs@127.0.0.1:3306/openmrs';

function thrown(fn: () => unknown): SyncError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SyncError) return e;
    throw e;
  }
  throw new Error('expected a SyncError');
}

describe('settings schema', () => {
  it('fills every default from db, name and role', () => {
    expect(parseSettings({ db: DB, name: 'Butaro', role: 'root' })).toEqual({
      settingsVersion: 1,
      db: DB,
      name: 'Butaro',
      role: 'root',
      parent: null,
      sync: {
        intervalSeconds: 600,
        timeoutSeconds: 120,
        maxTimeoutSeconds: 3600,
        retries: 5,
        retryDelaySeconds: 15,
        retryMaxDelaySeconds: 600,
        compression: true,
        batchRecords: 200,
        batchBytes: 262144,
        clockAheadMinutes: 10,
      },
      tables: { preset: 'all', include: [], exclude: [] },
      server: { https: false },
      storage: {
        minFreeMegabytes: 500,
        childSilentDays: 90,
        journalKeepHours: 24,
        logMaxBytes: 5242880,
        logFiles: 5,
      },
      complexObs: { dataDir: null, maxFileMegabytes: 100, chunkBytes: 4096 },
      openmrs: { url: '', user: '', refreshBatch: 50 },
    });
  });

  it('keeps given values over defaults inside a group', () => {
    const s = parseSettings({ db: DB, name: 'A', role: 'root', sync: { retries: 0 } });
    expect(s.sync.retries).toBe(0);
    expect(s.sync.intervalSeconds).toBe(600);
  });

  it('defaultSettings makes a root with no parent', () => {
    const s = defaultSettings({ db: DB, name: 'Kirehe Santé' });
    expect(s.role).toBe('root');
    expect(s.parent).toBeNull();
  });

  it('names the bad key and the rule in one sentence', () => {
    const e = thrown(() =>
      parseSettings(
        { db: DB, name: 'A', role: 'root', sync: { intervalSeconds: 'often' } },
        'x.json',
      ),
    );
    expect(e.kind).toBe('config');
    expect(e.message).toBe(
      'The setting sync.intervalSeconds must be a whole number of seconds from 10 to 604800 (in x.json).',
    );
  });

  it('says which key is missing', () => {
    const e = thrown(() => parseSettings({ db: DB, role: 'root' }));
    expect(e.kind).toBe('config');
    expect(e.message).toBe('The setting name is missing.');
  });

  it('refuses unknown keys (a typo must not be silently ignored)', () => {
    const e = thrown(() =>
      parseSettings({ db: DB, name: 'A', role: 'root', sync: { intervalSecond: 60 } }),
    );
    expect(e.message).toMatch(
      /^"sync\.intervalSecond" is not a ClinicSync setting; the settings are /,
    );
    expect(e.message).toContain('sync.intervalSeconds');
  });

  it('refuses a database address with a password in it', () => {
    const e = thrown(() =>
      parseSettings({ db: 'mysql://openmrs:secret@host/openmrs', name: 'A', role: 'root' }),
    );
    expect(e.message).toMatch(/^The setting db must be a database address without a password/);
    expect(e.message).not.toContain('secret@');
  });

  it('names a list, not a position in it, when one table name is bad', () => {
    const e = thrown(() =>
      parseSettings({ db: DB, name: 'A', role: 'root', tables: { include: ['obs', 'a b'] } }),
    );
    expect(e.message).toMatch(/^The setting tables\.include must be a list of table names/);
  });

  it('requires a parent exactly on a child', () => {
    expect(() => parseSettings({ db: DB, name: 'A', role: 'child' })).toThrow(
      /do not fit together/,
    );
    expect(() =>
      parseSettings({ db: DB, name: 'A', role: 'root', parent: 'https://hq.example.org' }),
    ).toThrow(/do not fit together/);
    expect(
      parseSettings({ db: DB, name: 'A', role: 'child', parent: 'https://hq.example.org:8443' })
        .parent,
    ).toBe('https://hq.example.org:8443');
  });

  it('refuses settings from a newer version instead of dropping what it does not know', () => {
    const e = thrown(() => parseSettings({ settingsVersion: 2, db: DB, name: 'A', role: 'root' }));
    expect(e.message).toMatch(/newer ClinicSync \(settings version 2\)/);
  });

  it("ignores electron-store's internal block in the shared file", () => {
    const s = parseSettings({
      __internal__: { migrations: { version: '0.1.0' } },
      db: DB,
      name: 'A',
      role: 'root',
    });
    expect(s).not.toHaveProperty('__internal__');
  });
});

describe('config keys', () => {
  const base: Settings = defaultSettings({ db: DB, name: 'Butaro' });

  it('lists every leaf by dotted path, and only user-chosen ones as settable', () => {
    expect(leafKeys()).toEqual([
      'settingsVersion',
      'db',
      'name',
      'role',
      'parent',
      'sync.intervalSeconds',
      'sync.timeoutSeconds',
      'sync.maxTimeoutSeconds',
      'sync.retries',
      'sync.retryDelaySeconds',
      'sync.retryMaxDelaySeconds',
      'sync.compression',
      'sync.batchRecords',
      'sync.batchBytes',
      'sync.clockAheadMinutes',
      'tables.preset',
      'tables.include',
      'tables.exclude',
      'server.https',
      'storage.minFreeMegabytes',
      'storage.childSilentDays',
      'storage.journalKeepHours',
      'storage.logMaxBytes',
      'storage.logFiles',
      'complexObs.dataDir',
      'complexObs.maxFileMegabytes',
      'complexObs.chunkBytes',
      'openmrs.url',
      'openmrs.user',
      'openmrs.refreshBatch',
    ]);
    expect(settableKeys()).toEqual(
      leafKeys().filter((k) => !/^(settingsVersion|name|role|parent)$/.test(k)),
    );
  });

  it('coerces numbers, booleans and lists, and leaves the input untouched', () => {
    let s = setSetting(base, 'sync.intervalSeconds', '300');
    s = setSetting(s, 'sync.compression', 'off');
    s = setSetting(s, 'tables.exclude', ' obs , encounter,,');
    s = setSetting(s, 'tables.preset', 'openmrs');
    expect(s.sync.intervalSeconds).toBe(300);
    expect(s.sync.compression).toBe(false);
    expect(s.tables.exclude).toEqual(['obs', 'encounter']);
    expect(s.tables.preset).toBe('openmrs');
    expect(base.sync.intervalSeconds).toBe(600);
    expect(setSetting(s, 'sync.compression', 'ON').sync.compression).toBe(true);
    expect(setSetting(s, 'tables.exclude', '').tables.exclude).toEqual([]);
  });

  it('names the running OpenMRS to refresh, or none, and refuses what cannot be one', () => {
    let s = setSetting(base, 'openmrs.url', 'http://localhost:8080/openmrs');
    s = setSetting(s, 'openmrs.user', 'admin');
    s = setSetting(s, 'openmrs.refreshBatch', '20');
    expect(s.openmrs).toEqual({
      url: 'http://localhost:8080/openmrs',
      user: 'admin',
      refreshBatch: 20,
    });
    expect(setSetting(s, 'openmrs.url', '').openmrs.url).toBe('');
    expect(thrown(() => setSetting(s, 'openmrs.url', 'localhost:8080')).message).toBe(
      'The setting openmrs.url must be OpenMRS\'s address, like http://localhost:8080/openmrs, or empty for none, not "localhost:8080".',
    );
    expect(thrown(() => setSetting(s, 'openmrs.user', 'a b')).message).toMatch(
      /^The setting openmrs\.user must be an OpenMRS user name/,
    );
    expect(thrown(() => setSetting(s, 'openmrs.refreshBatch', '0')).kind).toBe('usage');
  });

  it('gets values in the spelling config set accepts', () => {
    const s = setSetting(base, 'tables.include', 'patient,obs');
    expect(formatSetting(getSetting(s, 'tables.include'))).toBe('patient,obs');
    expect(formatSetting(getSetting(s, 'sync.batchBytes'))).toBe('262144');
    expect(getSetting(s, 'name')).toBe('Butaro');
  });

  it('gives a usage error for values of the wrong type or out of range', () => {
    for (const [key, raw] of [
      ['sync.intervalSeconds', 'abc'],
      ['sync.intervalSeconds', '5'],
      ['sync.retries', '1.5'],
      ['sync.compression', 'maybe'],
      ['tables.preset', 'some'],
    ] as const) {
      const e = thrown(() => setSetting(base, key, raw));
      expect(e.kind).toBe('usage');
      expect(e.message).toMatch(
        new RegExp(`^The setting ${key.replace('.', '\\.')} must be .*, not "${raw}"\\.$`),
      );
    }
  });

  it('gives a usage error listing the valid keys for an unknown key', () => {
    const e = thrown(() => setSetting(base, 'sync.speed', '1'));
    expect(e.kind).toBe('usage');
    expect(e.message).toContain('sync.intervalSeconds, sync.timeoutSeconds');
    const g = thrown(() => getSetting(base, 'nope'));
    expect(g.kind).toBe('usage');
    expect(g.message).toContain('tables.exclude');
  });

  it('leaves name, role and parent to init and clone', () => {
    const e = thrown(() => setSetting(base, 'role', 'child'));
    expect(e.kind).toBe('usage');
    expect(e.message).toMatch(/^role is set by init or clone/);
  });

  it('sets the complex obs files settings, refusing a piece too small', () => {
    const s = setSetting(base, 'complexObs.dataDir', ' /var/lib/OpenMRS ');
    expect(s.complexObs.dataDir).toBe('/var/lib/OpenMRS');
    expect(setSetting(s, 'complexObs.maxFileMegabytes', '20').complexObs.maxFileMegabytes).toBe(20);
    const e = thrown(() => setSetting(s, 'complexObs.chunkBytes', '100'));
    expect(e.message).toBe(
      'The setting complexObs.chunkBytes must be a whole number of bytes from 256 to 16777216, not "100".',
    );
  });
});
