import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appProtocolHandler } from '../../src/main/appProtocol.js';
import {
  autostartPath,
  desktopEntry,
  execArg,
  setStartAtLogin,
  startsAtLogin,
} from '../../src/main/autostart.js';
import { WINDOW_CSP, isAppUrl, mayNavigate } from '../../src/main/security.js';
import { StubElectron } from '../helpers/electronStub.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-main-window-'));
  dirs.push(d);
  return d;
}

describe('the app:// protocol', () => {
  function renderer(): string {
    const root = tempDir();
    fs.mkdirSync(path.join(root, 'dist', 'assets'), { recursive: true });
    fs.writeFileSync(
      path.join(root, 'dist', 'index.html'),
      '<!doctype html><title>ClinicSync</title>',
    );
    fs.writeFileSync(path.join(root, 'dist', 'assets', 'app.js'), 'console.log(1)');
    fs.writeFileSync(path.join(root, 'dist', '.env'), 'SECRET=1');
    fs.writeFileSync(path.join(root, 'outside.txt'), 'not served');
    fs.symlinkSync(path.join(root, 'outside.txt'), path.join(root, 'dist', 'link.txt'));
    return path.join(root, 'dist');
  }

  it('serves the built renderer with the CSP', async () => {
    const handle = appProtocolHandler(renderer());
    const page = await handle(new Request('app://clinicsync/index.html'));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(WINDOW_CSP);
    expect(WINDOW_CSP).toContain("script-src 'self'");
    expect(WINDOW_CSP).toContain("object-src 'none'");
    expect(await page.text()).toContain('<title>ClinicSync</title>');
    expect((await handle(new Request('app://clinicsync/'))).status).toBe(200);
    const js = await handle(new Request('app://clinicsync/assets/app.js'));
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('serves nothing outside the renderer, nor hidden files, nor another host', async () => {
    const handle = appProtocolHandler(renderer());
    for (const url of [
      'app://clinicsync/../outside.txt',
      'app://clinicsync/%2e%2e/outside.txt',
      'app://clinicsync/assets/%2e%2e%2f%2e%2e%2foutside.txt',
      'app://clinicsync/.env',
      'app://clinicsync/link.txt',
      'app://clinicsync/missing.js',
      'app://clinicsync/assets%5c..%5c..%5coutside.txt',
      'app://other/index.html',
    ]) {
      const r = await handle(new Request(url));
      expect(r.status, url).toBe(404);
      expect(await r.text()).not.toContain('not served');
    }
    const post = await handle(
      new Request('app://clinicsync/index.html', { method: 'POST', body: 'x' }),
    );
    expect(post.status).toBe(404);
  });

  it('lets the window go nowhere but its own pages', () => {
    expect(mayNavigate('app://clinicsync/index.html#/usb')).toBe(true);
    for (const url of [
      'https://example.org/',
      'http://127.0.0.1:8751/',
      'file:///etc/passwd',
      'app://evil/index.html',
      'javascript:alert(1)',
      'not a url',
    ]) {
      expect(mayNavigate(url), url).toBe(false);
    }
    expect(isAppUrl(null)).toBe(false);
  });
});

describe('start at login', () => {
  it('writes an XDG autostart entry on Linux that starts the app hidden, and removes it', () => {
    const config = tempDir();
    const electron = new StubElectron();
    const env = { XDG_CONFIG_HOME: config, HOME: '/home/nurse' };
    const e = { platform: 'linux' as const, app: electron.app, env };
    expect(startsAtLogin(e)).toBe(false);
    setStartAtLogin(true, e);
    const file = path.join(config, 'autostart', 'clinicsync.desktop');
    expect(autostartPath(env)).toBe(file);
    const text = fs.readFileSync(file, 'utf8');
    expect(text.split('\n')).toEqual(
      expect.arrayContaining([
        '[Desktop Entry]',
        'Type=Application',
        'Exec=/opt/ClinicSync/clinicsync --hidden',
        'X-GNOME-Autostart-enabled=true',
      ]),
    );
    expect(startsAtLogin(e)).toBe(true);
    setStartAtLogin(false, e);
    expect(fs.existsSync(file)).toBe(false);
    expect(electron.loginItem.openAtLogin).toBe(false);
  });

  it('names the AppImage itself, quoted, when the app runs from one', () => {
    expect(desktopEntry('/home/nurse/Apps/Clinic Sync.AppImage')).toContain(
      'Exec="/home/nurse/Apps/Clinic Sync.AppImage" --hidden',
    );
    expect(execArg('a"b$c`d\\e f')).toBe('"a\\"b\\$c\\`d\\\\e f"');
    const config = tempDir();
    const e = {
      platform: 'linux' as const,
      app: new StubElectron().app,
      env: { XDG_CONFIG_HOME: config, APPIMAGE: '/home/nurse/ClinicSync.AppImage' },
    };
    setStartAtLogin(true, e);
    expect(fs.readFileSync(autostartPath(e.env), 'utf8')).toContain(
      'Exec=/home/nurse/ClinicSync.AppImage --hidden',
    );
  });

  it('uses a login item on Windows', () => {
    const electron = new StubElectron();
    const e = { platform: 'win32' as const, app: electron.app, env: {} };
    setStartAtLogin(true, e);
    expect(electron.loginItem).toEqual({ openAtLogin: true, args: ['--hidden'] });
    expect(startsAtLogin(e)).toBe(true);
    setStartAtLogin(false, e);
    expect(electron.loginItem).toEqual({ openAtLogin: false, args: [] });
  });
});
