import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  REMOVABLE_ROOTS_ENV,
  isAutomountPath,
  listRemovableDrives,
  parseGetVolume,
  parseMounts,
  parseWmicCsv,
} from '../../src/engine/transfer/drives.js';
import { transferFileName } from '../../src/engine/transfer/fileName.js';
import { Sealer, frames, peekHeader, splitFile, unseal } from '../../src/engine/transfer/sealed.js';

const BUTARO = { node: '0123456789abcdef', name: 'Butaro HC', incarnation: '0a0b0c0d' };
const DISTRICT = { node: 'fedcba9876543210', name: 'district' };

function sealed(secret: Buffer, bodies: Buffer[]): Buffer {
  const s = new Sealer(secret, {
    from: BUTARO,
    to: DISTRICT,
    created: '2026-11-26T14:32:05.000Z',
  });
  return Buffer.concat([s.head, ...bodies.map((b) => s.frame(b)), s.end()]);
}

describe('transfer file names', () => {
  it('say who wrote the file, for whom and when, in file-safe words only', () => {
    const at = new Date('2026-11-26T14:32:59.123Z');
    expect(transferFileName('butaro', 'district', at)).toBe(
      'clinicsync-butaro-to-district-20261126T1432Z.csync',
    );
    expect(transferFileName('Centre de Santé Kirehe', 'CHUK/../x', at)).toBe(
      'clinicsync-centre-de-sante-kirehe-to-chuk-x-20261126T1432Z.csync',
    );
    expect(transferFileName('ÉÉÉ', '...', at)).toBe('clinicsync-eee-to-node-20261126T1432Z.csync');
  });
});

describe('sealed transfer files', () => {
  const secret = randomBytes(32);
  const bodies = [Buffer.from('first batch'), Buffer.alloc(0), randomBytes(70_000)];

  it('open with the shared secret, frames in order, header readable without it', () => {
    const file = sealed(secret, bodies);
    expect(peekHeader(file.subarray(0, 300))).toMatchObject({ from: BUTARO, to: DISTRICT });
    const opened = splitFile(file, 'The file f');
    expect(opened.header.created).toBe('2026-11-26T14:32:05.000Z');
    expect([...frames(unseal(opened, secret, 'The file f'), 'The file f')]).toEqual(bodies);
    // Each file has its own salt and nonce: the same content never seals the same way twice.
    expect(sealed(secret, bodies).equals(file)).toBe(false);
  });

  it('refuse another key, a changed header, a change inside, and a cut', () => {
    const file = sealed(secret, bodies);
    const name = 'The file f';
    expect(() => unseal(splitFile(file, name), randomBytes(32), name)).toThrow(
      /does not open with the key this computer shares with Butaro HC/,
    );
    const header = Buffer.from(file);
    const at = header.indexOf('Butaro HC');
    header[at] = 'C'.charCodeAt(0);
    expect(() => unseal(splitFile(header, name), secret, name)).toThrow(/does not open/);
    const inside = Buffer.from(file);
    inside[file.length - 100] = file[file.length - 100]! ^ 0x80;
    expect(() => unseal(splitFile(inside, name), secret, name)).toThrow(/does not open/);
    expect(() => splitFile(file.subarray(0, file.length - 3), name)).toThrow(/is incomplete/);
    const newer = Buffer.from(file);
    newer[8] = 2;
    expect(() => splitFile(newer, name)).toThrow(/written by a newer version of ClinicSync/);
    expect(peekHeader(Buffer.from('CSYNCUSB'))).toBeNull();
  });
});

describe('removable drives', () => {
  it('reads /proc/mounts, spaces in paths and read-only mounts included', () => {
    const mounts = parseMounts(
      [
        '/dev/nvme0n1p2 / ext4 rw,relatime 0 0',
        'proc /proc proc rw,nosuid 0 0',
        '/dev/sdb1 /media/nurse/CLINIC\\040KEY vfat rw,nosuid,nodev,uid=1000 0 0',
        '/dev/sdc1 /run/media/nurse/OLD exfat ro,nosuid 0 0',
      ].join('\n'),
    );
    expect(mounts).toEqual([
      { device: '/dev/nvme0n1p2', mountPoint: '/', fsType: 'ext4', readOnly: false },
      { device: 'proc', mountPoint: '/proc', fsType: 'proc', readOnly: false },
      {
        device: '/dev/sdb1',
        mountPoint: '/media/nurse/CLINIC KEY',
        fsType: 'vfat',
        readOnly: false,
      },
      { device: '/dev/sdc1', mountPoint: '/run/media/nurse/OLD', fsType: 'exfat', readOnly: true },
    ]);
    expect(mounts.map((m) => isAutomountPath(m.mountPoint))).toEqual([false, false, true, true]);
    expect(isAutomountPath('/media')).toBe(false);
  });

  it("reads Windows' removable drive letters from Get-Volume and from wmic", () => {
    expect(
      parseGetVolume(
        '[{"DriveLetter":"E","FileSystemLabel":"CLINIC","SizeRemaining":1000,"Size":8000},{"DriveLetter":null,"FileSystemLabel":"","SizeRemaining":0,"Size":0}]',
      ),
    ).toEqual([
      { path: 'E:\\', label: 'CLINIC', freeBytes: 1000, sizeBytes: 8000, writable: true },
    ]);
    expect(parseGetVolume('{"DriveLetter":"f","FileSystemLabel":"","Size":5}')).toEqual([
      { path: 'F:\\', label: 'F:', freeBytes: null, sizeBytes: 5, writable: true },
    ]);
    expect(parseGetVolume('')).toEqual([]);
    expect(
      parseWmicCsv(
        '\r\nNode,DeviceID,FreeSpace,Size,VolumeName\r\nPC1,E:,1000,8000,CLINIC\r\nPC1,G:,,,\r\n',
      ),
    ).toEqual([
      { path: 'E:\\', label: 'CLINIC', freeBytes: 1000, sizeBytes: 8000, writable: true },
      { path: 'G:\\', label: 'G:', freeBytes: null, sizeBytes: null, writable: true },
    ]);
  });

  it(`lists the folders inside ${REMOVABLE_ROOTS_ENV} as drives, with their free space`, async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-media-'));
    fs.mkdirSync(path.join(root, 'KEY A'));
    fs.mkdirSync(path.join(root, 'KEY B'));
    fs.writeFileSync(path.join(root, 'not-a-drive.txt'), '');
    const drives = await listRemovableDrives({ [REMOVABLE_ROOTS_ENV]: root }, 'linux');
    expect(drives.map((d) => [d.label, d.path, d.writable])).toEqual([
      ['KEY A', path.join(root, 'KEY A'), true],
      ['KEY B', path.join(root, 'KEY B'), true],
    ]);
    expect(drives[0]!.freeBytes).toBeGreaterThan(0);
    expect(drives[0]!.sizeBytes).toBeGreaterThanOrEqual(drives[0]!.freeBytes!);
    expect(await listRemovableDrives({ [REMOVABLE_ROOTS_ENV]: path.join(root, 'none') })).toEqual(
      [],
    );
  });

  it("never offers this computer's own disks as USB keys", async () => {
    const drives = await listRemovableDrives({}, 'linux');
    for (const d of drives)
      expect(d.path).not.toMatch(/^\/(proc|sys|dev|boot|usr|var|snap)?(\/|$)/);
  });
});
