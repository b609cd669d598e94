import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { RemovableDrive } from './types.js';

/*
 * The removable drives mounted on this computer (issue 7): where "Save to USB key" writes.
 *
 * Linux: the mounts in /proc/self/mounts that udisks made (under /media or /run/media, where the
 * desktop mounts a USB key) or whose disk says it is removable (/sys/block/DISK/removable), or
 * hangs off a USB bus. Windows: the drive letters PowerShell's Get-Volume calls Removable, or,
 * where Get-Volume is missing (Windows 7), those wmic lists with drive type 2. macOS: /Volumes,
 * less the start-up disk.
 *
 * CLINICSYNC_REMOVABLE_ROOTS (folders separated by the system's path delimiter) replaces all of
 * that: every folder directly inside one of them counts as a mounted drive, as a USB key under
 * /media/USER does. Tests and demonstrations point it at a temporary folder.
 */

export const REMOVABLE_ROOTS_ENV = 'CLINICSYNC_REMOVABLE_ROOTS';

export async function listRemovableDrives(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): Promise<RemovableDrive[]> {
  const roots = env[REMOVABLE_ROOTS_ENV];
  if (roots !== undefined && roots.trim() !== '') return drivesUnder(roots.split(path.delimiter));
  if (platform === 'win32') return windowsDrives();
  if (platform === 'darwin') return drivesUnder(['/Volumes'], { skipRoot: true });
  return linuxDrives();
}

// ---------------------------------------------------------------------------------------------
// Linux

export interface MountEntry {
  device: string;
  mountPoint: string;
  fsType: string;
  readOnly: boolean;
}

/** /proc/mounts lines; spaces and other characters in paths come escaped as \040 and the like. */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [device, mountPoint, fsType, options] = line.trim().split(/\s+/);
    if (!device || !mountPoint || !fsType || !options) continue;
    out.push({
      device: unescape(device),
      mountPoint: unescape(mountPoint),
      fsType,
      readOnly: options.split(',').includes('ro'),
    });
  }
  return out;
}

/** Where udisks (the desktop's automounter) puts USB keys. */
export function isAutomountPath(mountPoint: string): boolean {
  return /^\/(media|run\/media)\/./.test(mountPoint);
}

/** File systems a USB key carries; never pseudo file systems or snap images. */
const DATA_FILESYSTEMS = new Set([
  'vfat',
  'exfat',
  'ntfs',
  'ntfs3',
  'fuseblk',
  'ext2',
  'ext3',
  'ext4',
  'btrfs',
  'xfs',
  'f2fs',
  'hfsplus',
  'udf',
  'iso9660',
]);

async function linuxDrives(): Promise<RemovableDrive[]> {
  let text: string;
  try {
    text = await fs.readFile('/proc/self/mounts', 'utf8');
  } catch {
    return [];
  }
  const drives: RemovableDrive[] = [];
  const seen = new Set<string>();
  for (const m of parseMounts(text)) {
    if (seen.has(m.mountPoint) || !m.device.startsWith('/dev/')) continue;
    if (!DATA_FILESYSTEMS.has(m.fsType) || isSystemPath(m.mountPoint)) continue;
    if (!isAutomountPath(m.mountPoint) && !(await diskIsRemovable(m.device))) continue;
    seen.add(m.mountPoint);
    drives.push(await describe(m.mountPoint, path.basename(m.mountPoint), !m.readOnly));
  }
  return drives;
}

function isSystemPath(p: string): boolean {
  return p === '/' || /^\/(boot|usr|var|home|snap|opt|srv|etc|tmp)(\/|$)/.test(p);
}

/** The disk under a partition says it is removable, or sits on a USB bus. */
async function diskIsRemovable(device: string): Promise<boolean> {
  try {
    const dev = path.basename(await fs.realpath(device));
    const sys = await fs.realpath(`/sys/class/block/${dev}`);
    const isPartition = await fs
      .access(path.join(sys, 'partition'))
      .then(() => true)
      .catch(() => false);
    const disk = isPartition ? path.dirname(sys) : sys;
    if (disk.includes('/usb')) return true;
    return (await fs.readFile(path.join(disk, 'removable'), 'utf8')).trim() === '1';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Windows

/** Get-Volume's JSON (one object or a list): removable volumes with a drive letter. */
export function parseGetVolume(json: string): RemovableDrive[] {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return [];
  }
  const list = Array.isArray(v) ? v : v && typeof v === 'object' ? [v] : [];
  const out: RemovableDrive[] = [];
  for (const item of list as Record<string, unknown>[]) {
    const letter = typeof item.DriveLetter === 'string' ? item.DriveLetter : '';
    if (!/^[A-Za-z]$/.test(letter)) continue;
    const label = typeof item.FileSystemLabel === 'string' ? item.FileSystemLabel.trim() : '';
    out.push({
      path: `${letter.toUpperCase()}:\\`,
      label: label || `${letter.toUpperCase()}:`,
      freeBytes: numberOrNull(item.SizeRemaining),
      sizeBytes: numberOrNull(item.Size),
      writable: true,
    });
  }
  return out;
}

/** `wmic logicaldisk where drivetype=2 get DeviceID,FreeSpace,Size,VolumeName /format:csv`. */
export function parseWmicCsv(csv: string): RemovableDrive[] {
  const lines = csv
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  const head = lines.shift()?.split(',');
  if (!head) return [];
  const at = (name: string) => head.findIndex((h) => h.trim().toLowerCase() === name);
  const [id, free, size, label] = ['deviceid', 'freespace', 'size', 'volumename'].map(at);
  const out: RemovableDrive[] = [];
  for (const line of lines) {
    const cells = line.split(',');
    const device = cells[id!]?.trim() ?? '';
    if (!/^[A-Za-z]:$/.test(device)) continue;
    const name = (label !== undefined && label >= 0 ? cells[label] : '')?.trim() ?? '';
    out.push({
      path: `${device.toUpperCase()}\\`,
      label: name || device.toUpperCase(),
      freeBytes: numberOrNull(cells[free!]),
      sizeBytes: numberOrNull(cells[size!]),
      writable: true,
    });
  }
  return out;
}

async function windowsDrives(): Promise<RemovableDrive[]> {
  const ps = await run('powershell.exe', [
    '-NoProfile',
    '-NonInteractive',
    '-Command',
    "Get-Volume | Where-Object { $_.DriveType -eq 'Removable' -and $_.DriveLetter } | Select-Object DriveLetter,FileSystemLabel,SizeRemaining,Size | ConvertTo-Json -Compress",
  ]);
  if (ps !== null) return parseGetVolume(ps.trim() || '[]');
  const wmic = await run('wmic', [
    'logicaldisk',
    'where',
    'drivetype=2',
    'get',
    'DeviceID,FreeSpace,Size,VolumeName',
    '/format:csv',
  ]);
  return wmic === null ? [] : parseWmicCsv(wmic);
}

function run(cmd: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000, windowsHide: true }, (err, stdout) =>
      resolve(err ? null : stdout),
    );
  });
}

function numberOrNull(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : null;
}

// ---------------------------------------------------------------------------------------------
// Folders of drives (CLINICSYNC_REMOVABLE_ROOTS, macOS /Volumes)

async function drivesUnder(
  roots: string[],
  opts: { skipRoot?: boolean } = {},
): Promise<RemovableDrive[]> {
  const drives: RemovableDrive[] = [];
  for (const root of roots.map((r) => r.trim()).filter(Boolean)) {
    let entries: string[];
    try {
      entries = (await fs.readdir(root, { withFileTypes: true }))
        .filter((e) => e.isDirectory() || e.isSymbolicLink())
        .map((e) => e.name)
        .filter((n) => !n.startsWith('.'))
        .sort();
    } catch {
      continue;
    }
    for (const name of entries) {
      const where = path.join(path.resolve(root), name);
      // On macOS the start-up disk appears in /Volumes as a link to /.
      if (opts.skipRoot && (await fs.realpath(where).catch(() => '/')) === '/') continue;
      const writable = await fs
        .access(where, fs.constants.W_OK)
        .then(() => true)
        .catch(() => false);
      drives.push(await describe(where, name, writable));
    }
  }
  return drives;
}

async function describe(where: string, label: string, writable: boolean): Promise<RemovableDrive> {
  const space = await fs.statfs(where).catch(() => null);
  return {
    path: where,
    label,
    freeBytes: space ? Number(space.bavail) * Number(space.bsize) : null,
    sizeBytes: space ? Number(space.blocks) * Number(space.bsize) : null,
    writable,
  };
}
