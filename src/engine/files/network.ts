import type { SyncNode } from '../node/node.js';
import type { RouteHandler } from '../transport/server.js';
import { filePlaces } from './local.js';
import { receiveFiles } from './incoming.js';
import { answersSent, buildFiles } from './outgoing.js';
import { decodeFileMessage, emptyMessage, encodeFileMessage, isEmptyMessage } from './message.js';

/*
 * Complex obs files over the network: POST /v1/files, signed like the exchange, one file message
 * each way per request (docs/protocol.md). The child runs these rounds only once the rows are
 * settled, so a file never holds back a row, and each round carries no more than a row batch.
 */

export const FILES_PATH = '/v1/files';
/** Request header: the most bytes the answer may carry (the child's pace on a slow link). */
export const FILES_BUDGET_HEADER = 'x-clinicsync-files-budget';

/** How a child sends a file message to its parent and reads the answer (ParentClient). */
export interface FilesLink {
  exchangeFiles(
    body: Buffer,
    opts: { budget: number; timeoutMs: number },
  ): Promise<{ body: Buffer; bytesUp: number; bytesDown: number } | null>;
}

/** The parent's side of POST /v1/files. */
export function filesRoute(): RouteHandler {
  return async ({ node, peer, body, headers }) => {
    const msg = decodeFileMessage(body);
    const places = await filePlaces(node.pool, node.settings);
    if (!places) return { body: encodeFileMessage(emptyMessage()) };
    await receiveFiles(node.pool, places, peer.nodeId, msg);
    const asked = Number(headers[FILES_BUDGET_HEADER]);
    const budget = Math.min(
      node.settings.sync.batchBytes,
      Number.isSafeInteger(asked) && asked > 0 ? asked : Infinity,
    );
    const reply = await buildFiles(node.pool, places, peer.nodeId, { budget, optimistic: false });
    // Counted as answered once written: a lost answer brings the offer back, and with it ours.
    await answersSent(node.pool, peer.nodeId, reply);
    return { body: encodeFileMessage(reply) };
  };
}

export interface FileRound {
  /** bytes of file pieces sent and received in the round */
  piecesUp: number;
  piecesDown: number;
  bytesUp: number;
  bytesDown: number;
  /** false when neither side had anything left to say */
  moved: boolean;
}

/** One round of files with the parent, within `budget` bytes each way. */
export async function fileRound(
  node: SyncNode,
  parentId: string,
  link: FilesLink,
  opts: { budget: number; timeoutMs: (requestBytes: number) => number },
): Promise<FileRound | null> {
  const places = await filePlaces(node.pool, node.settings);
  if (!places) return null;
  const msg = await buildFiles(node.pool, places, parentId, {
    budget: opts.budget,
    optimistic: false,
  });
  const body = encodeFileMessage(msg);
  const answer = await link.exchangeFiles(body, {
    budget: opts.budget,
    timeoutMs: opts.timeoutMs(body.length),
  });
  // A parent too old to take files: they wait until it is upgraded; the rows are not held up.
  if (!answer) return null;
  await answersSent(node.pool, parentId, msg);
  const reply = decodeFileMessage(answer.body);
  await receiveFiles(node.pool, places, parentId, reply);
  return {
    piecesUp: msg.chunks.length,
    piecesDown: reply.chunks.length,
    bytesUp: answer.bytesUp,
    bytesDown: answer.bytesDown,
    moved: msg.chunks.length > 0 || reply.chunks.length > 0 || !isEmptyMessage(reply),
  };
}
