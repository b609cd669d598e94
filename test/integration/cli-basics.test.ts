import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Home } from '../../src/engine/config/home.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { createTestDb, SERVER } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';

const BIN = fileURLToPath(new URL('../../bin/clinic-sync.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real command in a child process, as a user or a script would. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const base = { ...process.env };
  delete base.CLINIC_SYNC_HOME;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...base, ...env } },
      (err, stdout, stderr) => {
        const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A failure is one line on stderr: one sentence, no stack trace. */
function expectOneSentence(r: Run) {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^[A-Z"-].*[.]$/);
  expect(r.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
}

let dir: string;
let homeDir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-cli-'));
  homeDir = path.join(dir, 'home');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function makeNode(): Home {
  const home = new Home(homeDir);
  home.save(defaultSettings({ db: 'mysql://openmrs@127.0.0.1:3306/openmrs', name: 'Butaro' }));
  return home;
}

describe('clinic-sync usage errors', () => {
  it('exits 2 with one sentence for an unknown command', async () => {
    const r = await cli(['--home', homeDir, 'frobnicate']);
    expect(r.code).toBe(2);
    expectOneSentence(r);
    expect(r.stderr).toContain("Unknown command 'frobnicate'");
    expect(r.stdout).toBe('');
  });

  it('exits 2 with one sentence for a missing required option', async () => {
    const r = await cli(['--home', homeDir, 'init', '--name', 'Butaro']);
    expect(r.code).toBe(2);
    expectOneSentence(r);
    expect(r.stderr).toContain("'--db <url>' not specified");
    expect(fs.existsSync(homeDir)).toBe(false);
  });

  it('exits 2 for an unknown option and for no command at all', async () => {
    const unknown = await cli(['--home', homeDir, 'status', '--verbose']);
    expect(unknown.code).toBe(2);
    expectOneSentence(unknown);
    expect(unknown.stderr).toContain('clinic-sync status --help');
    const none = await cli(['--home', homeDir]);
    expect(none.code).toBe(2);
    expectOneSentence(none);
  });

  it('exits 2 for a database address that is not one', async () => {
    const r = await cli(['--home', homeDir, 'uninstall', '--db', 'postgres://x@h/db']);
    expect(r.code).toBe(2);
    expectOneSentence(r);
    expect(r.stderr).toContain('must start with mysql://');
  });

  it('prints help on stdout and exits 0', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    for (const command of ['init', 'status', 'capture', 'uninstall', 'config']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
  });
});

describe('clinic-sync without a node', () => {
  it('says the folder is not a node yet and exits 1', async () => {
    for (const args of [
      ['status', '--json'],
      ['capture', 'pause'],
      ['config', 'get', 'sync.retries'],
    ]) {
      const r = await cli(['--home', homeDir, ...args]);
      expect(r.code).toBe(1);
      expectOneSentence(r);
      expect(r.stderr).toContain(
        `The folder ${homeDir} is not a ClinicSync node yet; run "clinic-sync init`,
      );
    }
  });
});

describe('clinic-sync config', () => {
  it('sets a number and gets it back alone, with no database', async () => {
    makeNode();
    const set = await cli(['--home', homeDir, 'config', 'set', 'sync.intervalSeconds', '300']);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    const get = await cli(['--home', homeDir, 'config', 'get', 'sync.intervalSeconds']);
    expect(get).toEqual({ code: 0, stdout: '300\n', stderr: '' });
    expect(new Home(homeDir).load()?.sync.intervalSeconds).toBe(300);
  });

  it('finds the home through CLINIC_SYNC_HOME', async () => {
    makeNode();
    const get = await cli(['config', 'get', 'name'], { CLINIC_SYNC_HOME: homeDir });
    expect(get).toEqual({ code: 0, stdout: 'Butaro\n', stderr: '' });
  });

  it('refuses a value of the wrong type with exit 2 and leaves the file alone', async () => {
    makeNode();
    const before = fs.readFileSync(path.join(homeDir, 'settings.json'), 'utf8');
    const r = await cli(['--home', homeDir, 'config', 'set', 'sync.intervalSeconds', 'abc']);
    expect(r.code).toBe(2);
    expectOneSentence(r);
    expect(r.stderr).toBe(
      'The setting sync.intervalSeconds must be a whole number of seconds from 10 to 604800, not "abc".\n',
    );
    expect(fs.readFileSync(path.join(homeDir, 'settings.json'), 'utf8')).toBe(before);
  });

  it('refuses an unknown key with exit 2, listing the keys', async () => {
    makeNode();
    const r = await cli(['--home', homeDir, 'config', 'set', 'sync.speed', '9']);
    expect(r.code).toBe(2);
    expectOneSentence(r);
    expect(r.stderr).toContain('sync.intervalSeconds');
  });

  it('reports a broken settings file in one sentence with exit 1', async () => {
    fs.mkdirSync(homeDir, { recursive: true });
    fs.writeFileSync(path.join(homeDir, 'settings.json'), '{"db": "mysql://u@h/d", "name": "A"}');
    const r = await cli(['--home', homeDir, 'config', 'get', 'db']);
    expect(r.code).toBe(1);
    expectOneSentence(r);
    expect(r.stderr).toContain('The setting role is missing');
  });

  it('config set keeps the settings file 0600 and leaves secrets alone', async () => {
    const home = makeNode();
    home.writeSecret('db-password', 'pw');
    await cli(['--home', homeDir, 'config', 'set', 'sync.compression', 'off']);
    expect(fs.statSync(home.settingsPath).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(homeDir, 'secrets', 'db-password')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(homeDir, 'secrets')).mode & 0o777).toBe(0o700);
    expect(home.load()?.sync.compression).toBe(false);
  });

  it('names the OpenMRS to refresh, its user and password (kept as a 0600 secret)', async () => {
    const home = makeNode();
    const pwFile = path.join(dir, 'openmrs-pw');
    fs.writeFileSync(pwFile, 'Admin123\n');
    const url = await cli([
      '--home',
      homeDir,
      'config',
      'set',
      'openmrs.url',
      'http://localhost:8080/openmrs',
    ]);
    expect(url).toEqual({
      code: 0,
      stdout: 'openmrs.url is now http://localhost:8080/openmrs.\n',
      stderr: '',
    });
    const user = await cli([
      '--home',
      homeDir,
      'config',
      'set',
      'openmrs.user',
      'admin',
      '--password-file',
      pwFile,
    ]);
    expect(user).toMatchObject({ code: 0, stderr: '' });
    expect(home.load()?.openmrs).toMatchObject({
      url: 'http://localhost:8080/openmrs',
      user: 'admin',
    });
    expect(home.readSecret('openmrs-password')).toBe('Admin123');
    expect(fs.statSync(path.join(homeDir, 'secrets', 'openmrs-password')).mode & 0o777).toBe(0o600);
    // Never in the settings file.
    expect(fs.readFileSync(home.settingsPath, 'utf8')).not.toContain('Admin123');

    const wrong = await cli([
      '--home',
      homeDir,
      'config',
      'set',
      'sync.retries',
      '3',
      '--password-file',
      pwFile,
    ]);
    expect(wrong.code).toBe(2);
    expectOneSentence(wrong);
    expect(wrong.stderr).toContain('--password-file goes with openmrs.user');
    expect(home.load()?.sync.retries).toBe(5);
  });
});

describe('clinic-sync init with a password', () => {
  it('stores the password as a 0600 secret, uses it later, and forgets it on uninstall', async () => {
    const db = await createTestDb('cs_cli');
    const user = `cs_${randomBytes(4).toString('hex')}`;
    const password = `pw ${randomBytes(6).toString('hex')}`;
    const admin = await mysql.createConnection({ ...SERVER });
    try {
      await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
      await admin.query(`GRANT ALL PRIVILEGES ON \`${db.name}\`.* TO ?@?`, [user, '%']);
      await db.pool.query('CREATE TABLE patient (id INT PRIMARY KEY, uuid CHAR(38))');
      const url = `mysql://${user}@${SERVER.host}:${SERVER.port}/${db.name}`;
      const pwFile = path.join(dir, 'pw');
      fs.writeFileSync(pwFile, `${password}\n`);

      const init = await cli([
        '--home',
        homeDir,
        'init',
        '--db',
        url,
        '--name',
        'Butaro',
        '--db-password-file',
        pwFile,
      ]);
      expect(init.stderr).toBe('');
      expect(init.code).toBe(0);
      expect(init.stdout.trim().split('\n')).toHaveLength(1);
      const secret = path.join(homeDir, 'secrets', 'db-password');
      expect(fs.readFileSync(secret, 'utf8')).toBe(password);
      expect(fs.statSync(secret).mode & 0o777).toBe(0o600);
      const settingsText = fs.readFileSync(path.join(homeDir, 'settings.json'), 'utf8');
      expect(settingsText).not.toContain(password);
      expect(new Home(homeDir).load()).toMatchObject({ db: url, name: 'Butaro', role: 'root' });

      // No password given: the stored one is used.
      const status = await cli(['--home', homeDir, 'status', '--json'], { MYSQL_PWD: '' });
      expect(status.code).toBe(0);
      const lines = status.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? '')).toMatchObject({
        name: 'Butaro',
        role: 'root',
        parent: null,
      });

      const again = await cli(['--home', homeDir, 'init', '--db', url, '--name', 'Other']);
      expect(again.code).toBe(1);
      expectOneSentence(again);

      const removed = await cli(['--home', homeDir, 'uninstall', '--db', url]);
      expect(removed.code).toBe(0);
      expect(fs.existsSync(path.join(homeDir, 'settings.json'))).toBe(false);
      expect(fs.existsSync(secret)).toBe(false);
    } finally {
      await admin.query('DROP USER IF EXISTS ?@?', [user, '%']);
      await admin.end();
      await db.drop();
    }
  });

  it('leaves no half-made node behind when the database refuses the password', async () => {
    const db = await createTestDb('cs_cli');
    try {
      const url = `mysql://nobody_${randomBytes(3).toString('hex')}:wrong@${SERVER.host}:${SERVER.port}/${db.name}`;
      const r = await cli(['--home', homeDir, 'init', '--db', url, '--name', 'Butaro']);
      expect(r.code).toBe(1);
      expectOneSentence(r);
      expect(r.stderr).not.toContain('wrong');
      expect(fs.existsSync(path.join(homeDir, 'settings.json'))).toBe(false);
      expect(fs.existsSync(path.join(homeDir, 'secrets'))).toBe(false);
    } finally {
      await db.drop();
    }
  });

  it('syncs the OpenMRS tables of an OpenMRS database unless told otherwise', async () => {
    const db = await createTestDb('cs_cli');
    try {
      await createClinicSchema(db.pool);
      const url = db.url.replace(/:[^:@/]*@/, '@');
      const init = await cli(['--home', homeDir, 'init', '--db', url, '--name', 'Butaro']);
      expect(init.code).toBe(0);
      expect(init.stdout).toContain('syncing the OpenMRS tables (preset openmrs)');
      expect(new Home(homeDir).load()?.tables.preset).toBe('openmrs');
      expect((await cli(['--home', homeDir, 'uninstall', '--db', url])).code).toBe(0);

      const all = ['--home', homeDir, 'init', '--db', url, '--name', 'Butaro', '--preset', 'all'];
      expect((await cli(all)).stdout).toContain('syncing every table (preset all)');
      expect(new Home(homeDir).load()?.tables.preset).toBe('all');
      const wrong = await cli([...all.slice(0, -1), 'some']);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toContain('openmrs, all');
    } finally {
      await db.drop();
    }
  });
});
