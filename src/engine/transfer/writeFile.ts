import fs from 'node:fs/promises';
import path from 'node:path';
import { SyncError } from '../errors.js';
import { getMeta } from '../node/meta.js';
import type { SyncNode } from '../node/node.js';
import type { Peer } from '../node/peers.js';
import type { Envelope } from '../protocol/types.js';
import { encodeEnvelope } from '../protocol/xml.js';
import { transferFileName } from './fileName.js';
import { sharedSecret } from './keys.js';
import { SEAL_END_BYTES, Sealer, TRANSFER_MAX_BYTES, sealedFrameBytes } from './sealed.js';
import type { ExportSummary } from './types.js';
import { writeFilesBeside } from '../files/usb.js';

/** Room left on a key beyond the file, for the file system's own needs. */
const FREE_MARGIN_BYTES = 256 * 1024;

/** `export`, "Save to USB key": the file for this node's parent, in `dir`. */
export async function exportForParent(node: SyncNode, dir: string): Promise<ExportSummary> {
  const parent = (await node.peers()).find((p) => p.relation === 'parent');
  if (!parent) {
    throw new SyncError(
      'state',
      'This computer is the top of its tree: it has no main server to write a file for. Load the files its clinics bring here instead (clinic-sync import FILE).',
    );
  }
  const w = await writeTransferFile(node, parent, dir);
  return { file: w.file, to: parent.name, sent: w.sent, bytes: w.bytes, complete: w.complete };
}

export interface WrittenFile {
  file: string;
  sent: number;
  bytes: number;
  complete: boolean;
}

/**
 * Writes one transfer file for a neighbour into `dir`: everything it has not acknowledged, in
 * batch-sized envelopes, as far as the drive's free space and the largest file allow (the rest
 * goes next time: nothing counts as delivered until the neighbour acknowledges it), and
 * `maxBytes` if given. `fixes`,
 * clock fixes for a child's changes decided while loading its file, travel in the first envelope
 * as on the network.
 *
 * The file appears under its name only once complete and flushed: it is written as NAME.partial
 * and renamed, so a key pulled out midway never holds a half file under a transfer file's name.
 */
export async function writeTransferFile(
  node: SyncNode,
  peer: Peer,
  dir: string,
  opts: { fixes?: Record<string, string>; maxBytes?: number } = {},
): Promise<WrittenFile> {
  const folder = path.resolve(dir);
  const budget = Math.min(await freeBytes(folder), opts.maxBytes ?? Infinity, TRANSFER_MAX_BYTES);
  const secret = await sharedSecret(node, peer);
  const me = (await getMeta(node.pool, 'name')) ?? node.settings.name;
  const created = new Date(node.now());
  const sealer = new Sealer(secret, {
    from: { node: node.nodeId, name: me, incarnation: node.incarnation },
    to: { node: peer.nodeId, name: peer.name },
    created: created.toISOString(),
  });
  const file = path.join(folder, transferFileName(me, peer.name, created));
  const partial = `${file}.partial`;
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(partial, 'w', 0o600);
  } catch (e) {
    throw writeFailure(e, folder);
  }
  let bytes = 0;
  let sent = 0;
  let complete = true;
  try {
    await handle.write(sealer.head);
    bytes += sealer.head.length;
    let first = true;
    await node.outgoingAll(peer.nodeId, async (env: Envelope) => {
      const withFixes =
        first && opts.fixes && Object.keys(opts.fixes).length ? { ...env, fixes: opts.fixes } : env;
      const body = encodeEnvelope(withFixes, { gzip: true });
      if (bytes + sealedFrameBytes(body) + SEAL_END_BYTES > budget) {
        if (first) throw tooFull(folder, budget);
        complete = false;
        return false;
      }
      first = false;
      const sealed = sealer.frame(body);
      await handle.write(sealed);
      bytes += sealed.length;
      sent += env.changes.length;
      return true;
    });
    const end = sealer.end();
    await handle.write(end);
    bytes += end.length;
    await handle.sync();
    await handle.close();
    await fs.rename(partial, file);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.rm(partial, { force: true }).catch(() => undefined);
    throw e instanceof SyncError ? e : writeFailure(e, folder);
  }
  // Complex obs files only behind a complete set of rows, in the room the rows left.
  if (complete) await writeFilesBeside(node, peer, file, budget - bytes);
  return { file, sent, bytes, complete };
}

async function freeBytes(folder: string): Promise<number> {
  let stat: Awaited<ReturnType<typeof fs.statfs>>;
  try {
    const info = await fs.stat(folder);
    if (!info.isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    stat = await fs.statfs(folder);
  } catch (e) {
    throw writeFailure(e, folder);
  }
  return Math.max(0, Number(stat.bavail) * Number(stat.bsize) - FREE_MARGIN_BYTES);
}

function tooFull(folder: string, budget: number): SyncError {
  return new SyncError(
    'state',
    `There is not enough free space in ${folder} (${Math.round(budget / 1024)} KB) for the file; free some space on the USB key or use another one. Nothing was written.`,
  );
}

function writeFailure(e: unknown, folder: string): SyncError {
  const code = (e as { code?: unknown }).code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new SyncError(
        'usage',
        `The folder ${folder} does not exist; plug in the USB key, or choose another folder.`,
        { cause: e },
      );
    case 'ENOSPC':
      return new SyncError(
        'state',
        `The USB key at ${folder} is full; free some space on it or use another one. Nothing was written.`,
        { cause: e },
      );
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new SyncError(
        'state',
        `ClinicSync may not write in ${folder} (the key may be locked or read-only); choose another folder or key.`,
        { cause: e },
      );
    default:
      return new SyncError(
        'state',
        `The file could not be written in ${folder} (${e instanceof Error ? e.message : String(e)}); check the USB key and try again.`,
        { cause: e },
      );
  }
}
