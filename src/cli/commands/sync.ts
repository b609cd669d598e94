import { Command } from 'commander';
import type { Settings } from '../../engine/config/settings.js';
import { SyncError, isSyncError } from '../../engine/errors.js';
import type { SyncNode } from '../../engine/node/node.js';
import type { SyncSummary } from '../../engine/node/service.js';
import { homeOf, withNode, type CliContext } from '../context.js';

export const ROOT_SENTENCE = 'This node has no parent to sync with; it is the root of its tree.';

/**
 * `sync`: exchanges with the parent now until nothing is pending either way (parked rows count as
 * delivered: the receiver owns them), then prints one summary line. Exit 0 only then; 3 when the
 * parent cannot be reached; 1 on a root.
 */
export function syncCommand(ctx: CliContext): Command {
  return new Command('sync')
    .description('exchange changes with the parent now, until nothing is pending either way')
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { dbPasswordFile?: string }, cmd: Command) => {
      const settings = homeOf(cmd, ctx).requireSettings();
      if (settings.role === 'root' || settings.parent === null) {
        throw new SyncError('state', ROOT_SENTENCE);
      }
      const summary = await withNodeWaiting(cmd, ctx, opts, async (node) => {
        const { ParentClient } = await import('../../engine/transport/client.js');
        const { NodeService } = await import('../../engine/node/service.js');
        const client = await ParentClient.forNode(node);
        try {
          return await new NodeService(node, client).syncNow();
        } finally {
          await client.close();
        }
      });
      ctx.io.out(describeSummary(summary));
    });
}

/** "Sent 12 changes, received 3 (2 rounds, 4.1 KB up, 1.2 KB down); up to date." */
export function describeSummary(s: SyncSummary): string {
  return `Sent ${count(s.sent, 'change')}, received ${s.received} (${count(s.rounds, 'round')}, ${bytes(s.bytesUp)} up, ${bytes(s.bytesDown)} down); up to date.`;
}

function count(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function bytes(n: number): string {
  if (n < 1000) return count(n, 'byte');
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)} KB`;
  return `${(n / 1_000_000).toFixed(1)} MB`;
}

/**
 * Opens the node with its lock like withNode, but where another engine (`serve`, the desktop
 * app) holds it, says so once on stderr and waits for it.
 */
export async function withNodeWaiting<T>(
  cmd: Command,
  ctx: CliContext,
  opts: { dbPasswordFile?: string },
  fn: (node: SyncNode, settings: Settings) => Promise<T>,
): Promise<T> {
  let opened = false;
  try {
    return await withNode(cmd, ctx, { ...opts, lock: 'try' }, (node, settings) => {
      opened = true;
      return fn(node, settings);
    });
  } catch (e) {
    if (opened || !isSyncError(e) || e.kind !== 'locked') throw e;
    const who = e.message.replace(/;\s*stop it or let it finish, then try again\.?$/, '');
    ctx.io.err(`${who}; waiting for it to finish.`);
  }
  return withNode(cmd, ctx, { ...opts, lock: 'wait' }, fn);
}
