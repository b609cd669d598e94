import fs from 'node:fs';
import path from 'node:path';
import { SyncError } from '../engine/errors.js';
import { SYSTEMD_DIR, SYSTEMD_UNIT, homeOfUnit, systemdUnit, type ServiceSpec } from './systemd.js';
import { WINSW_NAME, homeOfWinsw, winswXml } from './winsw.js';

/** Runs a program and gives its exit code and output (child_process in the CLI, stubs in tests). */
export type Run = (program: string, args: string[]) => Promise<{ code: number; output: string }>;

export interface ServicePlace {
  platform: NodeJS.Platform;
  /** where systemd units go (Linux); /etc/systemd/system */
  unitDir: string;
  /** the WinSW executable to copy beside the definition (Windows) */
  winswExe: string | null;
  run: Run;
}

/** Where the definition lives once installed. */
export function definitionPath(place: ServicePlace, home: string): string {
  // On Windows the native path module is path.win32; tests on Linux get their own separators.
  return place.platform === 'win32'
    ? path.join(home, 'service', `${WINSW_NAME}.xml`)
    : path.join(place.unitDir, SYSTEMD_UNIT);
}

/** The definition for this platform, as `service print` shows it. */
export function serviceDefinition(platform: NodeJS.Platform, spec: ServiceSpec): string {
  if (platform === 'win32') return winswXml(spec);
  if (platform === 'linux') return systemdUnit(spec);
  throw new SyncError('usage', 'ClinicSync runs as a service on Linux (systemd) and Windows only.');
}

async function must(place: ServicePlace, program: string, args: string[]): Promise<void> {
  const { code, output } = await place.run(program, args);
  if (code !== 0) {
    const said = output.trim().split('\n').slice(-2).join(' ').trim();
    throw new SyncError(
      'config',
      `"${[program, ...args].join(' ')}" failed (exit ${code})${said ? `: ${said}` : ''}.`,
    );
  }
}

/**
 * Installs and starts the service: on Linux the unit in /etc/systemd/system, enabled and started
 * with systemctl; on Windows WinSW and its XML in the home's service folder, installed and
 * started. Needs root or an administrator. Returns where the definition was written.
 */
export async function installService(place: ServicePlace, spec: ServiceSpec): Promise<string> {
  const file = definitionPath(place, spec.home);
  const text = serviceDefinition(place.platform, spec);
  if (place.platform === 'win32') {
    if (!place.winswExe || !fs.existsSync(place.winswExe)) {
      throw new SyncError(
        'config',
        'The Windows service wrapper (WinSW) is missing; reinstall ClinicSync, or give its path with --winsw.',
      );
    }
    const exe = path.join(path.dirname(file), `${WINSW_NAME}.exe`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.copyFileSync(place.winswExe, exe);
    fs.writeFileSync(file, text);
    await must(place, exe, ['install']);
    await must(place, exe, ['start']);
    return file;
  }
  fs.mkdirSync(place.unitDir, { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o644 });
  await must(place, 'systemctl', ['daemon-reload']);
  await must(place, 'systemctl', ['enable', '--now', SYSTEMD_UNIT]);
  return file;
}

/**
 * Stops and removes the service; nothing to do where none is installed. The node itself stays
 * (run `clinic-sync uninstall` to remove it from the database). Returns whether one was removed.
 */
export async function uninstallService(place: ServicePlace, home: string): Promise<boolean> {
  const file = definitionPath(place, home);
  if (!fs.existsSync(file)) return false;
  if (place.platform === 'win32') {
    const exe = path.join(path.dirname(file), `${WINSW_NAME}.exe`);
    // Stopping a service that is not running fails; removing it is what matters.
    await place.run(exe, ['stop']);
    await must(place, exe, ['uninstall']);
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
    return true;
  }
  await place.run('systemctl', ['disable', '--now', SYSTEMD_UNIT]);
  fs.rmSync(file, { force: true });
  await must(place, 'systemctl', ['daemon-reload']);
  return true;
}

/** The home an installed service runs, read from its definition; null when none is installed. */
export function installedServiceHome(
  platform: NodeJS.Platform,
  unitDir: string = SYSTEMD_DIR,
  windowsHomes: readonly string[] = [],
): string | null {
  try {
    if (platform === 'linux') {
      return homeOfUnit(fs.readFileSync(path.join(unitDir, SYSTEMD_UNIT), 'utf8'));
    }
    if (platform === 'win32') {
      for (const home of windowsHomes) {
        const file = path.join(home, 'service', `${WINSW_NAME}.xml`);
        if (fs.existsSync(file)) return homeOfWinsw(fs.readFileSync(file, 'utf8'));
      }
    }
  } catch {
    // no service, or one we cannot read
  }
  return null;
}
