import path from 'node:path';
import { Command } from 'commander';
import type { ImportSummary } from '../../engine/transfer/types.js';
import type { CliContext } from '../context.js';
import { withTransfer } from './export.js';

/**
 * `import FILE [--out DIR]`: loads a transfer file meant for this node. A file from a child is
 * answered with a reply file (in DIR, else next to FILE), printed alone on the last line; a file
 * from the parent completes the round trip and needs no reply.
 */
export function importCommand(ctx: CliContext): Command {
  return new Command('import')
    .description("load a transfer file from a USB key; for a clinic's file, write the reply")
    .argument('<file>', 'the transfer file (.csync)')
    .option('--out <dir>', "where to write the reply to a clinic's file (default: beside FILE)")
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (file: string, opts: { out?: string; dbPasswordFile?: string }, cmd: Command) => {
      const req = {
        file: path.resolve(file),
        replyDir: opts.out === undefined ? null : path.resolve(opts.out),
      };
      const s = await withTransfer(cmd, ctx, opts, (t) => t.importTransfer(req));
      for (const line of describeImport(s)) ctx.io.out(line);
    });
}

export function describeImport(s: ImportSummary): string[] {
  const waiting = s.parked
    ? `; ${s.parked} change${s.parked === 1 ? '' : 's'} wait here for rows they need`
    : '';
  const lines = [
    `Loaded the file from ${s.from}: ${s.received} change${s.received === 1 ? '' : 's'} new here, ${s.alreadyThere} already here${waiting}.`,
  ];
  if (s.replyFile) {
    const what = `${s.sent} change${s.sent === 1 ? '' : 's'}`;
    lines.push(
      s.replyComplete
        ? `Wrote the reply for ${s.from} with ${what}; take it back to ${s.from} and load it there.`
        : `The USB key holds only part of the reply: wrote ${what} for ${s.from}; the rest goes with the next file.`,
      s.replyFile,
    );
  }
  return lines;
}
