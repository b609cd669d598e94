import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import {
  realServiceHost,
  serviceCommand,
  type ServiceHost,
} from '../../src/cli/commands/service.js';
import { Home } from '../../src/engine/config/home.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { DesktopHome } from '../../src/main/secrets.js';
import {
  installService,
  installedServiceHome,
  uninstallService,
  type Run,
} from '../../src/service/install.js';
import { currentLauncher, type CliLauncher } from '../../src/service/launcher.js';
import { homeOfUnit, systemdUnit, systemdWord } from '../../src/service/systemd.js';
import { homeOfWinsw, splitWindowsArgs, windowsArg, winswXml } from '../../src/service/winsw.js';
import { stubSafeStorage } from '../helpers/electronStub.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-main-service-'));
  dirs.push(d);
  return d;
}

const nodeLauncher: CliLauncher = {
  program: '/usr/bin/node',
  args: ['/opt/clinic-sync/bin/clinic-sync.js'],
  env: {},
};
const packaged: CliLauncher = {
  program: 'C:\\Program Files\\ClinicSync\\ClinicSync.exe',
  args: ['C:\\Program Files\\ClinicSync\\resources\\cli\\clinic-sync.mjs'],
  env: { ELECTRON_RUN_AS_NODE: '1' },
};

describe('the systemd unit', () => {
  it('runs `clinic-sync serve --home HOME` headless at boot, as the home’s owner', () => {
    const unit = systemdUnit({
      home: '/var/lib/clinic-sync',
      nodeName: 'district',
      launcher: nodeLauncher,
      user: 'clinicsync',
    });
    const lines = unit.split('\n');
    expect(lines).toContain(
      'ExecStart=/usr/bin/node /opt/clinic-sync/bin/clinic-sync.js serve --home /var/lib/clinic-sync',
    );
    for (const line of [
      '[Unit]',
      'After=network-online.target mariadb.service mysql.service',
      'Wants=network-online.target',
      '[Service]',
      'User=clinicsync',
      'Restart=always',
      'KillSignal=SIGTERM',
      'UMask=0077',
      '[Install]',
      'WantedBy=multi-user.target',
    ]) {
      expect(lines).toContain(line);
    }
    expect(unit).not.toMatch(/Environment=/);
  });

  it('quotes paths with spaces, % and $ so systemd reads them back unchanged', () => {
    const home = '/srv/clinic data/100% $HOME "x"\\y';
    const unit = systemdUnit({ home, nodeName: 'a b', launcher: packaged, user: 'nurse' });
    expect(homeOfUnit(unit)).toBe(home);
    expect(unit).toContain('Environment="ELECTRON_RUN_AS_NODE=1"');
    expect(systemdWord('50%')).toBe('50%%');
    expect(systemdWord('$HOME')).toBe('$$HOME');
    expect(systemdWord('a b')).toBe('"a b"');
  });
});

describe('the Windows service definition (WinSW)', () => {
  it('runs the packaged app as Node with `serve --home`, at boot, restarted on failure', () => {
    const home = 'C:\\ProgramData\\ClinicSync';
    const text = winswXml({ home, nodeName: 'district', launcher: packaged });
    expect(text).toContain('<id>ClinicSync</id>');
    expect(text).toContain(
      '<executable>C:\\Program Files\\ClinicSync\\ClinicSync.exe</executable>',
    );
    expect(text).toContain(
      '<arguments>&quot;C:\\Program Files\\ClinicSync\\resources\\cli\\clinic-sync.mjs&quot; serve --home C:\\ProgramData\\ClinicSync</arguments>',
    );
    expect(text).toContain('<env name="ELECTRON_RUN_AS_NODE" value="1"/>');
    expect(text).toContain('<startmode>Automatic</startmode>');
    expect(text).toContain('<onfailure action="restart" delay="10 sec"/>');
    expect(text).toContain('<logpath>C:\\ProgramData\\ClinicSync\\logs</logpath>');
    expect(text.split('\r\n').length).toBeGreaterThan(10);
    expect(homeOfWinsw(text)).toBe(home);
  });

  it('quotes arguments as Windows reads them back', () => {
    for (const arg of ['plain', 'C:\\a b\\', 'say "hi"', 'x\\"y', '', 'tab\there', 'end\\\\']) {
      expect(splitWindowsArgs(`a ${windowsArg(arg)} b`)).toEqual(['a', arg, 'b']);
    }
    const home = 'D:\\Clinic & "Data" <1>\\';
    expect(homeOfWinsw(winswXml({ home, nodeName: 'x', launcher: packaged }))).toBe(home);
  });
});

describe('installing and removing the service', () => {
  function recorder(): { run: Run; calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      run: async (program, args) => {
        calls.push([path.basename(program), ...args].join(' '));
        return { code: 0, output: '' };
      },
    };
  }

  it('on Linux writes the unit, enables and starts it, and takes it all back', async () => {
    const unitDir = tempDir();
    const { run, calls } = recorder();
    const place = { platform: 'linux' as const, unitDir, winswExe: null, run };
    const spec = {
      home: '/var/lib/clinic-sync',
      nodeName: 'd',
      launcher: nodeLauncher,
      user: 'cs',
    };
    const file = await installService(place, spec);
    expect(file).toBe(path.join(unitDir, 'clinic-sync.service'));
    expect(fs.readFileSync(file, 'utf8')).toBe(systemdUnit(spec));
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    expect(installedServiceHome('linux', unitDir)).toBe('/var/lib/clinic-sync');
    expect(calls).toEqual([
      'systemctl daemon-reload',
      'systemctl enable --now clinic-sync.service',
    ]);
    expect(await uninstallService(place, spec.home)).toBe(true);
    expect(fs.existsSync(file)).toBe(false);
    expect(calls.slice(2)).toEqual([
      'systemctl disable --now clinic-sync.service',
      'systemctl daemon-reload',
    ]);
    expect(await uninstallService(place, spec.home)).toBe(false);
    expect(installedServiceHome('linux', unitDir)).toBeNull();
  });

  it('on Windows puts WinSW and its XML in the home, installs and starts it', async () => {
    const home = tempDir();
    const winsw = path.join(tempDir(), 'WinSW-x64.exe');
    fs.writeFileSync(winsw, 'MZ');
    const { run, calls } = recorder();
    const place = { platform: 'win32' as const, unitDir: '', winswExe: winsw, run };
    await installService(place, { home, nodeName: 'd', launcher: packaged, user: '' });
    const xml = path.join(home, 'service', 'clinic-sync-service.xml');
    expect(homeOfWinsw(fs.readFileSync(xml, 'utf8'))).toBe(home);
    expect(fs.readFileSync(path.join(home, 'service', 'clinic-sync-service.exe'), 'utf8')).toBe(
      'MZ',
    );
    expect(installedServiceHome('win32', undefined, ['/nowhere', home])).toBe(home);
    expect(calls).toEqual(['clinic-sync-service.exe install', 'clinic-sync-service.exe start']);
    expect(await uninstallService(place, home)).toBe(true);
    expect(calls.slice(2)).toEqual([
      'clinic-sync-service.exe stop',
      'clinic-sync-service.exe uninstall',
    ]);
    expect(fs.existsSync(path.join(home, 'service'))).toBe(false);
  });

  it('stops with the command that failed and what it said', async () => {
    const place = {
      platform: 'linux' as const,
      unitDir: tempDir(),
      winswExe: null,
      run: async () => ({
        code: 1,
        output: 'Failed to connect to bus: No such file or directory\n',
      }),
    };
    await expect(
      installService(place, { home: '/h', nodeName: 'd', launcher: nodeLauncher, user: 'u' }),
    ).rejects.toThrow(
      '"systemctl daemon-reload" failed (exit 1): Failed to connect to bus: No such file or directory.',
    );
  });
});

describe('clinic-sync service', () => {
  function io() {
    const out: string[] = [];
    const err: string[] = [];
    return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
  }

  it('prints the unit of this node, naming the clinic-sync that printed it', () => {
    const home = new Home(tempDir());
    home.save(defaultSettings({ db: 'mysql://u@127.0.0.1/clinic', name: 'district' }));
    const bin = fileURLToPath(new URL('../../bin/clinic-sync.js', import.meta.url));
    const r = spawnSync(
      process.execPath,
      [bin, 'service', 'print', '--home', home.dir, '--platform', 'linux', '--user', 'nurse'],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('User=nurse');
    expect(r.stdout).toContain(`ExecStart=${process.execPath} ${bin} serve --home ${home.dir}\n`);
    expect(homeOfUnit(r.stdout)).toBe(home.dir);
    const win = spawnSync(
      process.execPath,
      [bin, 'service', 'print', '--home', home.dir, '--platform', 'win32'],
      { encoding: 'utf8' },
    );
    expect(homeOfWinsw(win.stdout)).toBe(home.dir);
  });

  it('refuses to install where the app sealed secrets in a keyring', async () => {
    const dir = tempDir();
    const home = new DesktopHome(dir, stubSafeStorage());
    home.save(defaultSettings({ db: 'mysql://u@127.0.0.1/clinic', name: 'district' }));
    home.writeSecret('db-password', 'pw');
    const calls: string[] = [];
    const host: ServiceHost = {
      ...realServiceHost,
      platform: 'linux',
      unitDir: tempDir(),
      run: async (program) => {
        calls.push(program);
        return { code: 0, output: '' };
      },
      launcher: () => nodeLauncher,
    };
    const program = new Command('clinic-sync')
      .option('--home <dir>')
      .addCommand(serviceCommand({ io: io().io, env: {} }, host))
      .exitOverride();
    await expect(
      program.parseAsync(['--home', dir, 'service', 'install', '--user', 'nurse'], {
        from: 'user',
      }),
    ).rejects.toThrow(
      /keeps this node's db-password in its user's keyring.*ClinicSync --prepare-service/,
    );
    expect(calls).toEqual([]);
  });

  it('names the running clinic-sync as the program a service starts', () => {
    expect(
      currentLauncher({
        execPath: '/usr/bin/node',
        argv: ['/usr/bin/node', 'bin/clinic-sync.js'],
        versions: process.versions,
      }),
    ).toEqual({
      program: '/usr/bin/node',
      args: [path.resolve('bin/clinic-sync.js')],
      env: {},
    });
    expect(
      currentLauncher({
        execPath: '/opt/ClinicSync/clinicsync',
        argv: ['x', '/opt/ClinicSync/resources/cli/clinic-sync.mjs'],
        versions: { ...process.versions, electron: '38.8.6' },
      }).env,
    ).toEqual({ ELECTRON_RUN_AS_NODE: '1' });
  });
});
