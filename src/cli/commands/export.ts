import path from 'node:path';
import { Command } from 'commander';
import type { SyncApi } from '../../api/types.js';
import { SyncError, type ErrorKind } from '../../engine/errors.js';
import type { ExportSummary } from '../../engine/transfer/types.js';
import { homeOf, type CliContext } from '../context.js';
import { withNodeWaiting } from './sync.js';

/**
 * `export --out DIR`: writes the transfer file for this node's parent into DIR (a USB key): every
 * change the parent has not acknowledged, and this node's acknowledgements. Prints what it wrote,
 * then the file's path alone on the last line.
 */
export function exportCommand(ctx: CliContext): Command {
  return new Command('export')
    .description('write a file for the parent on a USB key: every change it has not acknowledged')
    .requiredOption('--out <dir>', 'the folder to write the file in (the USB key)')
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { out: string; dbPasswordFile?: string }, cmd: Command) => {
      const dir = path.resolve(opts.out);
      const s = await withTransfer(cmd, ctx, opts, (t) => t.exportTransfer({ dir }));
      ctx.io.out(describeExport(s));
      ctx.io.out(s.file);
    });
}

export function describeExport(s: ExportSummary): string {
  const what = `${s.sent} change${s.sent === 1 ? '' : 's'} for ${s.to} (${size(s.bytes)})`;
  return s.complete
    ? `Wrote ${what}; take the file to ${s.to} and load it there.`
    : `The USB key holds only part of what is waiting: wrote ${what}; the rest goes with the next file.`;
}

export function size(n: number): string {
  if (n < 1000) return `${n} bytes`;
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)} KB`;
  return `${(n / 1_000_000).toFixed(1)} MB`;
}

export type TransferOps = Pick<SyncApi, 'exportTransfer' | 'importTransfer'>;

/**
 * Runs a transfer on this node: through the running engine's admin API where `serve` (or the
 * desktop app) runs it, so a clerk need not stop it; else on the node opened here, waiting for
 * another engine that holds it only briefly.
 */
export async function withTransfer<T>(
  cmd: Command,
  ctx: CliContext,
  opts: { dbPasswordFile?: string },
  fn: (ops: TransferOps) => Promise<T>,
): Promise<T> {
  const home = homeOf(cmd, ctx);
  home.requireSettings();
  const { adminBaseUrl, processRuns, readServeInfo } = await import('../../api/serveInfo.js');
  const info = readServeInfo(home);
  const admin = info && processRuns(info.pid) && info.admin ? adminBaseUrl(info.admin) : null;
  if (admin) {
    const { adminToken } = await import('../../api/adminServer.js');
    const { createHttpApi } = await import('../../api/httpClient.js');
    const { isApiError } = await import('../../api/types.js');
    try {
      return await fn(createHttpApi({ baseUrl: admin, token: adminToken(home) }));
    } catch (e) {
      if (!isApiError(e)) throw e;
      throw new SyncError(ENGINE_KINDS.has(e.kind) ? (e.kind as ErrorKind) : 'state', e.message);
    }
  }
  return withNodeWaiting(cmd, ctx, opts, async (node) => {
    const { exportForParent } = await import('../../engine/transfer/writeFile.js');
    const { loadTransferFile } = await import('../../engine/transfer/loadFile.js');
    return fn({
      exportTransfer: (req) => exportForParent(node, req.dir),
      importTransfer: (req) => loadTransferFile(node, req.file, { replyDir: req.replyDir ?? null }),
    });
  });
}

const ENGINE_KINDS = new Set<string>([
  'usage',
  'config',
  'database',
  'privileges',
  'state',
  'locked',
  'unreachable',
  'protocol',
] satisfies ErrorKind[]);
