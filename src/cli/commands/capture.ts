import { Command } from 'commander';
import { withNode, type CliContext } from '../context.js';

/** `capture pause` / `capture resume`: bracket an OpenMRS upgrade (DESIGN §3). */
export function captureCommand(ctx: CliContext): Command {
  const capture = new Command('capture').description(
    'pause or resume change capture (around an OpenMRS upgrade)',
  );
  capture
    .command('pause')
    .description('stop capturing changes until "capture resume"')
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { dbPasswordFile?: string }, cmd: Command) => {
      const name = await withNode(cmd, ctx, opts, async (node, settings) => {
        await node.pauseCapture();
        return settings.name;
      });
      ctx.io.out(
        `Capture is paused on node "${name}"; run "clinic-sync capture resume" when the upgrade is done.`,
      );
    });
  capture
    .command('resume')
    .description('capture changes again after "capture pause"')
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { dbPasswordFile?: string }, cmd: Command) => {
      const name = await withNode(cmd, ctx, opts, async (node, settings) => {
        await node.resumeCapture();
        return settings.name;
      });
      ctx.io.out(`Capture is running again on node "${name}".`);
    });
  return capture;
}
