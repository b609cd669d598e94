import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { adminToken } from '../../src/api/adminServer.js';
import { adminBaseUrl, readServeInfo, serveInfoPath } from '../../src/api/serveInfo.js';
import { main } from '../../src/cli/main.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { tempHome } from '../helpers/node.js';

function node() {
  const home = tempHome();
  home.save(defaultSettings({ db: 'mysql://openmrs@127.0.0.1:3306/openmrs', name: 'Butaro' }));
  return home;
}

async function run(homeDir: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ['admin-url'],
    { out: (l) => out.push(l), err: (l) => err.push(l) },
    { CLINIC_SYNC_HOME: homeDir },
  );
  return { code, out, err };
}

describe('clinic-sync admin-url', () => {
  it('prints the admin address with the token, alone on the last line', async () => {
    const home = node();
    fs.writeFileSync(
      serveInfoPath(home),
      JSON.stringify({
        pid: process.pid,
        listen: 'http://0.0.0.0:8750',
        admin: 'http://127.0.0.1:8751',
      }),
    );
    const r = await run(home.dir);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    const token = adminToken(home);
    expect(r.out.at(-1)).toBe(`http://127.0.0.1:8751/?token=${token}`);
  });

  it('accepts HOST:PORT in serve.json too', async () => {
    const home = node();
    fs.writeFileSync(
      serveInfoPath(home),
      JSON.stringify({ pid: process.pid, listen: '0.0.0.0:8750', admin: '127.0.0.1:40123' }),
    );
    const r = await run(home.dir);
    expect(r.out.at(-1)).toMatch(/^http:\/\/127\.0\.0\.1:40123\/\?token=[A-Za-z0-9_-]{43}$/);
  });

  it('says to start serve first when it is not running, and exits 1', async () => {
    const home = node();
    const noFile = await run(home.dir);
    const exited = spawnSync(process.execPath, ['-e', '0']);
    fs.writeFileSync(
      serveInfoPath(home),
      JSON.stringify({ pid: exited.pid, listen: null, admin: '127.0.0.1:8751' }),
    );
    const stale = await run(home.dir);
    for (const r of [noFile, stale]) {
      expect(r.code).toBe(1);
      expect(r.out).toEqual([]);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toMatch(/start it with "clinic-sync serve" first\.$/);
    }
  });

  it('reads serve.json defensively', () => {
    const home = node();
    expect(readServeInfo(home)).toBeNull();
    fs.writeFileSync(path.join(home.dir, 'serve.json'), '{not json');
    expect(readServeInfo(home)).toBeNull();
    fs.writeFileSync(path.join(home.dir, 'serve.json'), JSON.stringify({ pid: 'x' }));
    expect(readServeInfo(home)).toBeNull();
    expect(adminBaseUrl('http://[::1]:8751/')).toBe('http://[::1]:8751');
    expect(adminBaseUrl('127.0.0.1')).toBeNull();
  });
});
