import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { afterEach, describe, expect, it } from 'vitest';
import { DESKTOP_BUILDS } from '../../build/desktop.js';
import { Home } from '../../src/engine/config/home.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { DesktopHome } from '../../src/main/secrets.js';
import { uninstallNode } from '../../src/main/uninstallMode.js';
import { systemdUnit } from '../../src/service/systemd.js';
import { stubSafeStorage } from '../helpers/electronStub.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-main-installers-'));
  dirs.push(d);
  return d;
}

interface BuilderConfig {
  files: string[];
  linux: { target: string[]; icon: string };
  deb: { fpm: string[] };
  win: { target: string[]; icon: string; extraFiles: { from: string }[] };
  nsis: { oneClick: boolean; perMachine: boolean; include: string };
  extraResources: { from: string }[];
}

async function builderConfig(): Promise<BuilderConfig> {
  // electron-builder's own loader and schema: what `electron-builder` would check first.
  const { getConfig, validateConfiguration } =
    require('app-builder-lib/out/util/config/config.js') as {
      getConfig(dir: string, file: string | null): Promise<unknown>;
      validateConfiguration(
        config: unknown,
        logger: { isEnabled: boolean; add(): void },
      ): Promise<void>;
    };
  const config = await getConfig(ROOT, 'electron-builder.yml');
  await validateConfiguration(config, { isEnabled: false, add: () => undefined });
  return config as BuilderConfig;
}

describe('electron-builder.yml', () => {
  it('is valid for electron-builder: deb and AppImage, and an assisted per-machine NSIS', async () => {
    const c = await builderConfig();
    expect(c.linux.target).toEqual(['deb', 'AppImage']);
    expect(c.win.target).toEqual(['nsis']);
    expect(c.nsis).toMatchObject({
      oneClick: false,
      perMachine: true,
      include: 'build/installer.nsh',
    });
    // Every file it names is here.
    const named = [
      c.nsis.include,
      c.linux.icon,
      c.win.icon,
      ...c.win.extraFiles.map((f) => f.from),
      ...c.extraResources.map((r) => r.from),
      ...c.deb.fpm.filter((a) => a.startsWith('build/')).map((a) => a.split('=')[0]!),
    ];
    for (const file of named) expect(fs.existsSync(path.join(ROOT, file)), file).toBe(true);
    expect(fs.statSync(path.join(ROOT, 'build/linux/clinic-sync')).mode & 0o111).not.toBe(0);
    expect(fs.statSync(path.join(ROOT, 'build/linux/before-remove.sh')).mode & 0o111).not.toBe(0);
  });

  it('agrees with the main process: the app id its notifications need, the icons it loads', async () => {
    const c = (await builderConfig()) as BuilderConfig & { appId: string };
    const main = fs.readFileSync(path.join(ROOT, 'src/main/index.ts'), 'utf8');
    expect(main).toContain(`app.setAppUserModelId('${c.appId}')`);
    const icon = /path\.join\(resources, 'icons', 'app', '([^']+)'\)/.exec(main)?.[1];
    expect(icon).toBeDefined();
    expect(c.extraResources).toContainEqual({ from: 'build/icons/app', to: 'icons/app' });
    expect(c.extraResources).toContainEqual({ from: 'build/icons/tray', to: 'icons/tray' });
    expect(fs.existsSync(path.join(ROOT, 'build/icons/app', icon!))).toBe(true);
  });

  it('has the Windows uninstaller take ClinicSync out of the databases, but not on an update', () => {
    const nsh = fs.readFileSync(path.join(ROOT, 'build/installer.nsh'), 'utf8');
    const body = nsh.slice(nsh.indexOf('!macro customUnInstall'), nsh.indexOf('!macroend'));
    expect(body).toMatch(/\$\{ifNot\} \$\{isUpdated\}[\s\S]*\$\{endIf\}/);
    expect(body).toContain('clinic-sync.cmd" --home "$APPDATA\\ClinicSync" service uninstall');
    expect(body).toContain('ClinicSync.exe" --uninstall');
    const cmd = fs.readFileSync(path.join(ROOT, 'build/win/clinic-sync.cmd'), 'utf8');
    expect(cmd).toContain('set ELECTRON_RUN_AS_NODE=1');
    expect(cmd).toContain('resources\\app.asar.unpacked\\dist\\cli\\clinic-sync.mjs');
    expect(cmd.split('\n').every((l) => l === '' || l.endsWith('\r'))).toBe(true);
  });
});

describe('the deb’s removal script', () => {
  /** A stand-in for /usr/bin/clinic-sync: logs its arguments, answers `config get db`. */
  function fakeCli(dir: string): { cli: string; log: string } {
    const log = path.join(dir, 'calls.log');
    const cli = path.join(dir, 'clinic-sync');
    fs.writeFileSync(
      cli,
      `#!/bin/sh\necho "$*" >> '${log}'\ncase "$*" in *"config get db"*) echo "mysql://openmrs@127.0.0.1/$(basename "$(dirname "$2")")";; esac\n`,
      { mode: 0o755 },
    );
    return { cli, log };
  }

  function machine(): {
    root: string;
    cli: string;
    log: string;
    nurseHome: string;
    serviceHome: string;
  } {
    const root = tempDir();
    const { cli, log } = fakeCli(root);
    const serviceHome = path.join(root, 'var/lib/clinic-sync');
    const nurseHome = path.join(root, 'home/nurse/.config/clinic-sync');
    for (const home of [serviceHome, nurseHome]) {
      new Home(home).save(defaultSettings({ db: 'mysql://openmrs@127.0.0.1/x', name: 'n' }));
    }
    fs.mkdirSync(path.join(root, 'home/nurse/.config/autostart'), { recursive: true });
    fs.writeFileSync(path.join(root, 'home/nurse/.config/autostart/clinicsync.desktop'), '');
    fs.mkdirSync(path.join(root, 'home/visitor'), { recursive: true }); // no node there
    fs.mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
    fs.writeFileSync(
      path.join(root, 'etc/systemd/system/clinic-sync.service'),
      systemdUnit({
        home: serviceHome,
        nodeName: 'district',
        launcher: { program: '/opt/ClinicSync/clinicsync', args: ['/x/clinic-sync.mjs'], env: {} },
        user: os.userInfo().username,
      }),
    );
    return { root, cli, log, nurseHome, serviceHome };
  }

  const run = (m: { root: string; cli: string }, arg: string) =>
    spawnSync('sh', [path.join(ROOT, 'build/linux/before-remove.sh'), arg], {
      env: { ...process.env, CLINIC_SYNC_CLI: m.cli, CLINIC_SYNC_ROOT: m.root },
      encoding: 'utf8',
    });

  it('removes the service, then runs clinic-sync uninstall on every node', () => {
    const m = machine();
    const r = run(m, 'remove');
    expect(r.status).toBe(0);
    expect(fs.readFileSync(m.log, 'utf8').trim().split('\n')).toEqual([
      `--home ${m.serviceHome} service uninstall`,
      `--home ${m.serviceHome} config get db`,
      `--home ${m.serviceHome} uninstall --db mysql://openmrs@127.0.0.1/lib`,
      `--home ${m.nurseHome} config get db`,
      `--home ${m.nurseHome} uninstall --db mysql://openmrs@127.0.0.1/.config`,
    ]);
    expect(
      fs.existsSync(path.join(m.root, 'home/nurse/.config/autostart/clinicsync.desktop')),
    ).toBe(false);
  });

  it('does nothing on an upgrade, and never blocks the removal', () => {
    const m = machine();
    expect(run(m, 'upgrade').status).toBe(0);
    expect(fs.existsSync(m.log)).toBe(false);
    fs.writeFileSync(m.cli, '#!/bin/sh\necho "Access denied" >&2\nexit 1\n');
    const r = run(m, 'remove');
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('ClinicSync: could not remove the service');
    expect(r.stderr).toContain('ClinicSync: could not read the settings in');
  });
});

describe('the app’s --uninstall mode (the Windows uninstaller)', () => {
  it('runs clinic-sync uninstall with the password out of the keyring, then removes it', async () => {
    const home = new DesktopHome(tempDir(), stubSafeStorage());
    const calls: { args: string[]; password: string }[] = [];
    const runCli = async (args: string[]) => {
      const i = args.indexOf('--db-password-file');
      calls.push({ args, password: i >= 0 ? fs.readFileSync(args[i + 1]!, 'utf8') : '' });
      return 0;
    };
    expect(await uninstallNode(home, runCli)).toBe(0);
    expect(calls).toEqual([]); // no node: nothing to do
    home.save(defaultSettings({ db: 'mysql://openmrs@127.0.0.1:3306/openmrs', name: 'c' }));
    home.writeSecret('db-password', 'Pa$$ word');
    expect(await uninstallNode(home, runCli)).toBe(0);
    expect(calls[0]!.args.slice(0, 5)).toEqual([
      '--home',
      home.dir,
      'uninstall',
      '--db',
      'mysql://openmrs@127.0.0.1:3306/openmrs',
    ]);
    expect(calls[0]!.password).toBe('Pa$$ word');
    expect(fs.existsSync(calls[0]!.args.at(-1)!)).toBe(false);
  });
});

describe('the desktop build (npm run build:desktop)', () => {
  it('bundles main, a sandbox-safe preload and a clinic-sync that runs on plain Node', async () => {
    for (const config of DESKTOP_BUILDS) await build(config);
    const preload = fs.readFileSync(path.join(ROOT, 'dist/preload/index.cjs'), 'utf8');
    // A sandboxed preload may require electron and nothing else.
    expect([...preload.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1])).toEqual(['electron']);
    expect(preload).toContain('exposeInMainWorld');
    const main = fs.readFileSync(path.join(ROOT, 'dist/main/index.js'), 'utf8');
    const imports = [...main.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]!);
    // Node's own modules and electron: every package is in the bundle (node_modules is not shipped).
    const packages = imports.filter((m) => !m.startsWith('node:') && !builtinModules.includes(m));
    expect(packages).toEqual(['electron']);
    // Required at run time: Node's modules, and mysql2's optional SQL highlighter (it does without).
    for (const bundle of [
      main,
      fs.readFileSync(path.join(ROOT, 'dist/cli/clinic-sync.mjs'), 'utf8'),
    ]) {
      const required = new Set([...bundle.matchAll(/__require\("([^"]+)"\)/g)].map((m) => m[1]!));
      const isNode = (m: string) => m.startsWith('node:') || builtinModules.includes(m);
      expect([...required].filter((m) => !isNode(m))).toEqual(['cardinal']);
    }
    const version = execFileSync(
      process.execPath,
      [path.join(ROOT, 'dist/cli/clinic-sync.mjs'), '--version'],
      {
        encoding: 'utf8',
      },
    );
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(version.trim()).toBe(pkg.version);
  });
});
