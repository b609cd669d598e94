import fs from 'node:fs/promises';
import path from 'node:path';
import { SyncError } from '../errors.js';
import { PEEK_BYTES, TRANSFER_EXTENSION, peekHeader } from './sealed.js';
import type { TransferFileInfo, TransferFileUse } from './types.js';

/**
 * The transfer files in a folder (the top of a USB key, usually), newest first, each with who
 * wrote it, for whom, and what this node (`nodeId`) can do with it. Only headers are read: a
 * file's seal is checked when it is loaded.
 */
export async function findTransferFiles(dir: string, nodeId: string): Promise<TransferFileInfo[]> {
  const folder = path.resolve(dir);
  let names: string[];
  try {
    names = (await fs.readdir(folder, { withFileTypes: true }))
      .filter((e) => e.isFile() && e.name.toLowerCase().endsWith(TRANSFER_EXTENSION))
      .map((e) => e.name);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new SyncError(
      'usage',
      code === 'ENOENT' || code === 'ENOTDIR'
        ? `The folder ${folder} does not exist; plug in the USB key, or choose another folder.`
        : `The folder ${folder} cannot be read (${e instanceof Error ? e.message : String(e)}).`,
      { cause: e },
    );
  }
  const found: (TransferFileInfo & { mtime: number })[] = [];
  for (const name of names) {
    const file = path.join(folder, name);
    const info = await inspect(file, nodeId).catch(() => null);
    if (info) found.push({ ...info, name });
  }
  found.sort(
    (a, b) =>
      (b.createdAt ? Date.parse(b.createdAt) : b.mtime) -
        (a.createdAt ? Date.parse(a.createdAt) : a.mtime) || a.name.localeCompare(b.name),
  );
  return found.map(({ mtime: _mtime, ...f }) => f);
}

async function inspect(
  file: string,
  nodeId: string,
): Promise<TransferFileInfo & { mtime: number }> {
  const handle = await fs.open(file, 'r');
  try {
    const stat = await handle.stat();
    const start = Buffer.alloc(Math.min(PEEK_BYTES, stat.size));
    await handle.read(start, 0, start.length, 0);
    const h = peekHeader(start);
    const use: TransferFileUse = !h
      ? 'unreadable'
      : h.to.node === nodeId
        ? 'load'
        : h.from.node === nodeId
          ? 'carry'
          : 'other';
    return {
      path: file,
      name: path.basename(file),
      bytes: stat.size,
      from: h ? { nodeId: h.from.node, name: h.from.name } : null,
      to: h ? { nodeId: h.to.node, name: h.to.name } : null,
      createdAt: h ? new Date(h.created).toISOString() : null,
      use,
      mtime: stat.mtimeMs,
    };
  } finally {
    await handle.close();
  }
}
