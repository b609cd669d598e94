import path from 'node:path';
import { queryRows } from '../db/pool.js';
import { SyncError, isSyncError } from '../errors.js';
import { diskGuardOf } from '../node/disk.js';
import { recordExchange } from '../node/history.js';
import { getMeta } from '../node/meta.js';
import { recloneMarkedAt, recloneSentence } from '../node/prune.js';
import type { SyncNode } from '../node/node.js';
import type { Peer } from '../node/peers.js';
import type { Envelope } from '../protocol/types.js';
import { decodeEnvelope } from '../protocol/xml.js';
import { checkBatchAgainstSchema } from '../transport/schemaCheck.js';
import { sharedSecret } from './keys.js';
import { frames, readSealedFile, splitFile, unseal, type TransferHeader } from './sealed.js';
import type { ImportSummary } from './types.js';
import { writeTransferFile } from './writeFile.js';
import { loadFilesBeside } from '../files/usb.js';

/**
 * Limits for one envelope of a file: the file is authenticated before any envelope is read, so
 * these only bound memory; a single large row (a scanned document) must still fit.
 */
const FRAME_LIMITS = { maxBytes: 256 * 1024 * 1024, maxInflatedBytes: 512 * 1024 * 1024 };

/**
 * Loads a transfer file (issue 7): checks it whole, applies its batches one transaction each,
 * and, for a file from a child, writes the reply: this node's acknowledgements and everything it
 * holds for that child. Nothing is applied unless the whole file is for this node, from a
 * neighbour, sealed with their shared key, intact, and follows on from what is here.
 *
 * Age never matters: changes already here (by an earlier file or over the network) are skipped,
 * and acknowledgements older than what is known are ignored, so a late file applies nothing twice.
 */
export async function loadTransferFile(
  node: SyncNode,
  file: string,
  opts: { replyDir?: string | null } = {},
): Promise<ImportSummary> {
  const started = Date.now();
  const full = path.resolve(file);
  const name = `The file ${path.basename(full)}`;
  const { header, peer, plain, size } = await openFile(node, full, name);
  await checkBatches(node, header, plain, name);
  // As for a batch over the network: below the free-space threshold nothing is applied.
  const disk = await diskGuardOf(node).check();
  if (disk.stop) throw new SyncError('state', `${disk.stop} Nothing of the file was applied.`);

  // Each batch is decoded again here rather than kept from the check: one batch in memory at a time.
  let received = 0;
  let alreadyThere = 0;
  const fixes: Record<string, string> = {};
  try {
    for (const body of frames(plain, name)) {
      const r = await node.incoming(decodeEnvelope(body, FRAME_LIMITS), { fromFile: true });
      alreadyThere += r.duplicates;
      received += r.received - r.duplicates;
      Object.assign(fixes, r.fixes);
    }
  } catch (e) {
    // The batches applied so far stay applied, each whole: loading the file again skips them.
    if (received + alreadyThere === 0) throw e;
    const why = e instanceof Error ? e.message : String(e);
    throw new SyncError(
      isSyncError(e) ? e.kind : 'database',
      `The file from ${peer.name} was loaded only in part (${received} changes new here) when this failed: ${why.replace(/\.$/, '')}. Load the same file again once that is put right; what is already here is skipped.`,
      { cause: e },
    );
  }
  // Complex obs files beside the rows (files/usb.ts), before the reply so it carries our answers.
  await loadFilesBeside(node, peer, full);
  const [parked] = await queryRows(node.pool, 'SELECT COUNT(*) AS n FROM clinicsync_parked');
  const summary: ImportSummary = {
    from: peer.name,
    received,
    alreadyThere,
    parked: Number(parked!.n),
    sent: 0,
    replyFile: null,
    replyComplete: true,
  };

  if (peer.relation === 'parent') {
    // The parent's reply completes a round trip: the history shows it like an exchange.
    await recordExchange(node.pool, {
      peer: peer.nodeId,
      startedAt: new Date(started).toISOString(),
      ms: Date.now() - started,
      sent: 0,
      received,
      bytesUp: 0,
      bytesDown: size,
      ok: true,
      error: null,
    });
    return summary;
  }
  try {
    const reply = await writeTransferFile(node, peer, opts.replyDir ?? path.dirname(full), {
      fixes,
    });
    return { ...summary, sent: reply.sent, replyFile: reply.file, replyComplete: reply.complete };
  } catch (e) {
    const why = isSyncError(e) ? e.message : String(e);
    throw new SyncError(
      isSyncError(e) ? e.kind : 'state',
      `The file from ${peer.name} was loaded (${received} changes new here), but its reply could not be written: ${why.replace(/\.$/, '')}. Load the same file again to write the reply.`,
      { cause: e },
    );
  }
}

/** The file read whole and opened: the sealed bytes are not kept once the plain ones are out. */
async function openFile(node: SyncNode, file: string, name: string) {
  const bytes = await readSealedFile(file);
  const opened = splitFile(bytes, name);
  const peer = await writerOf(node, opened.header);
  const plain = unseal(opened, await sharedSecret(node, peer), name);
  return { header: opened.header, peer, plain, size: bytes.length };
}

/** The neighbour that wrote the file, once the file is known to be meant for this node. */
async function writerOf(node: SyncNode, h: TransferHeader): Promise<Peer> {
  const me = (await getMeta(node.pool, 'name')) ?? node.settings.name;
  if (h.from.node === node.nodeId) {
    throw new SyncError(
      'usage',
      `This file was written here, on ${me}, for ${h.to.name}; take it to ${h.to.name} and load it there. Nothing was applied.`,
    );
  }
  if (h.to.node !== node.nodeId && h.to.name === me) {
    throw new SyncError(
      'usage',
      `This file was written by ${h.from.name} for another node named ${me}, not for this one; nothing was applied. Write a new file on ${h.from.name}.`,
    );
  }
  if (h.to.node !== node.nodeId) {
    throw new SyncError(
      'usage',
      `This file was written by ${h.from.name} for ${h.to.name}, not for this computer (${me}); take it to ${h.to.name}. Nothing was applied.`,
    );
  }
  const peer = (await node.peers()).find((p) => p.nodeId === h.from.node);
  if (!peer) {
    throw new SyncError(
      'state',
      `This file comes from ${h.from.name}, which is neither this computer's main server nor one of its clinics; nothing was applied.`,
    );
  }
  if (peer.relation === 'child' && (await recloneMarkedAt(node.pool, peer.nodeId)) !== null) {
    throw new SyncError(
      'state',
      `${recloneSentence(node.settings.storage.childSilentDays)} Nothing of the file was applied.`,
    );
  }
  if (peer.incarnation !== null && peer.incarnation !== h.from.incarnation) {
    throw new SyncError(
      'state',
      `This file was written by an earlier installation of ${peer.name} (its database was restored or cloned again since); nothing was applied. Write a new file on ${peer.name}.`,
    );
  }
  return peer;
}

/**
 * Reads every batch once before any is applied: each must come from the writer, for this node,
 * fit this database's tables (as a batch over the network must: transport/schemaCheck.ts), and
 * each origin's changes must follow on from what this node holds (in the file's order). A gap
 * means an earlier file from the writer has not been loaded here, or this database went back to a
 * backup: then nothing is applied, and the sentence says which.
 */
async function checkBatches(
  node: SyncNode,
  h: TransferHeader,
  plain: Buffer,
  name: string,
): Promise<void> {
  const plans = await node.tablePlans();
  const have = new Map<string, bigint>();
  for (const r of await queryRows(node.pool, 'SELECT origin, seq FROM clinicsync_vv')) {
    have.set(String(r.origin), BigInt(String(r.seq)));
  }
  for (const body of frames(plain, name)) {
    let env: Envelope;
    try {
      env = decodeEnvelope(body, FRAME_LIMITS);
    } catch (e) {
      const why = isSyncError(e) ? ` (${e.message.replace(/\.$/, '')})` : '';
      throw new SyncError(
        'protocol',
        `${name} opened but a batch in it cannot be read${why}; nothing was applied.`,
        { cause: e },
      );
    }
    if (
      env.from.node !== h.from.node ||
      env.from.incarnation !== h.from.incarnation ||
      env.to !== h.to.node
    ) {
      throw new SyncError(
        'protocol',
        `${name} holds a batch between other nodes than its header names; nothing was applied.`,
      );
    }
    checkBatchAgainstSchema(env, plans);
    for (const c of env.changes) {
      const seq = BigInt(c.seq);
      const held = have.get(c.origin) ?? 0n;
      if (seq <= held) continue;
      if (seq !== held + 1n) throw gap(h, c.origin, held, seq);
      have.set(c.origin, seq);
    }
  }
}

function gap(h: TransferHeader, origin: string, held: bigint, first: bigint): SyncError {
  const whose = origin === h.from.node ? h.from.name : `node ${origin}`;
  return new SyncError(
    'state',
    `This file continues from changes this computer does not have yet (of ${whose}, it holds up to number ${held}; the file goes on from ${first}); nothing was applied. Load the earlier file from ${h.from.name} first, or write a new one there. If there is none, this computer's database may have been restored from a backup: ask for help.`,
  );
}
