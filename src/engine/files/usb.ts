import fs from 'node:fs/promises';
import path from 'node:path';
import { SyncError, isSyncError } from '../errors.js';
import { getMeta } from '../node/meta.js';
import type { SyncNode } from '../node/node.js';
import type { Peer } from '../node/peers.js';
import { sharedSecret } from '../transfer/keys.js';
import {
  SEAL_END_BYTES,
  Sealer,
  frames,
  readSealedFile,
  sealedFrameBytes,
  splitFile,
  unseal,
} from '../transfer/sealed.js';
import { filePlaces } from './local.js';
import { receiveFiles, type ReceiveSummary } from './incoming.js';
import { answersSent, buildFiles } from './outgoing.js';
import { decodeFileMessage, encodeFileMessage, isEmptyMessage } from './message.js';

/*
 * Complex obs files on a USB key: a second sealed file beside the transfer file, NAME.csync.files,
 * sealed like it (transfer/sealed.ts) and holding one file message. It is written only when every
 * row went in the transfer file, so files never travel ahead of rows, and fills at most the room
 * left; what does not fit goes in the next one. A ClinicSync that knows nothing of files lists
 * only *.csync and never sees it.
 */

export const FILES_SUFFIX = '.files';

/** Smallest room worth a files file: below it the next key takes the files. */
const MIN_ROOM = 4096;

/** Writes the files beside `transferFile` for `peer` in at most `room` bytes; the name or null. */
export async function writeFilesBeside(
  node: SyncNode,
  peer: Peer,
  transferFile: string,
  room: number,
): Promise<string | null> {
  const places = await filePlaces(node.pool, node.settings);
  if (!places || room < MIN_ROOM) return null;
  const secret = await sharedSecret(node, peer);
  const me = (await getMeta(node.pool, 'name')) ?? node.settings.name;
  const sealer = new Sealer(secret, {
    from: { node: node.nodeId, name: me, incarnation: node.incarnation },
    to: { node: peer.nodeId, name: peer.name },
    created: new Date(node.now()).toISOString(),
  });
  const budget = room - sealer.head.length - sealedFrameBytes(Buffer.alloc(0)) - SEAL_END_BYTES;
  const msg = await buildFiles(node.pool, places, peer.nodeId, { budget, optimistic: true });
  if (isEmptyMessage(msg)) return null;
  const file = `${transferFile}${FILES_SUFFIX}`;
  const partial = `${file}.partial`;
  const handle = await fs.open(partial, 'w', 0o600);
  try {
    await handle.write(sealer.head);
    await handle.write(sealer.frame(encodeFileMessage(msg)));
    await handle.write(sealer.end());
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(partial, file);
  await answersSent(node.pool, peer.nodeId, msg);
  return file;
}

/**
 * Loads the files beside a transfer file from `peer`, if there are any. Its rows are already
 * loaded; a damaged files file is refused whole and the sentence says so.
 */
export async function loadFilesBeside(
  node: SyncNode,
  peer: Peer,
  transferFile: string,
): Promise<ReceiveSummary | null> {
  const places = await filePlaces(node.pool, node.settings);
  if (!places) return null;
  const file = `${transferFile}${FILES_SUFFIX}`;
  const there = await fs.stat(file).catch((e: unknown) => {
    if ((e as { code?: unknown }).code === 'ENOENT') return null;
    throw e;
  });
  if (!there) return null;
  const name = `The file ${path.basename(file)}`;
  const summary: ReceiveSummary = { bytes: 0, completed: 0 };
  try {
    const opened = splitFile(await readSealedFile(file), name);
    if (opened.header.from.node !== peer.nodeId || opened.header.to.node !== node.nodeId) {
      throw new SyncError('protocol', `${name} was not written by ${peer.name} for this computer.`);
    }
    const plain = unseal(opened, await sharedSecret(node, peer), name);
    for (const body of frames(plain, name)) {
      const r = await receiveFiles(node.pool, places, peer.nodeId, decodeFileMessage(body));
      summary.bytes += r.bytes;
      summary.completed += r.completed;
    }
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new SyncError(
      isSyncError(e) ? e.kind : 'state',
      `The changes from ${peer.name} were loaded, but not the complex obs files beside them: ${why.replace(/\.$/, '')}. Load the same file again, or bring a new one.`,
      { cause: e },
    );
  }
  return summary;
}
