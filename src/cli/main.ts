import { Command, CommanderError } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { adminUrlCommand } from './commands/admin-url.js';
import { captureCommand } from './commands/capture.js';
import { cloneCommand } from './commands/clone.js';
import { snapshotCommand } from './commands/snapshot.js';
import { configCommand } from './commands/config.js';
import { conflictsCommand } from './commands/conflicts.js';
import { exportCommand } from './commands/export.js';
import { importCommand } from './commands/import.js';
import { initCommand } from './commands/init.js';
import { pairCommand } from './commands/pair.js';
import { serveCommand } from './commands/serve.js';
import { serviceCommand } from './commands/service.js';
import { statusCommand } from './commands/status.js';
import { syncCommand } from './commands/sync.js';
import { uninstallCommand } from './commands/uninstall.js';
import { verifyCommand } from './commands/verify.js';
import type { CliContext } from './context.js';
import { EXIT, explainFailure, processIo, type CliIo } from './output.js';

/** Runs `clinic-sync ARGV…` and returns the exit code; never throws, never calls process.exit. */
export async function main(
  argv: string[],
  io: CliIo = processIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const ctx: CliContext = { io, env };
  // A command that finished its work but has a verdict to report (verify: 4 when rows differ).
  let verdict: number = EXIT.done;
  const program = new Command('clinic-sync')
    .description('Keeps OpenMRS MySQL/MariaDB databases in sync over poor links and USB keys.')
    .version(pkg.version, '--version', 'print the version')
    .option(
      '--home <dir>',
      "this node's folder (default: CLINIC_SYNC_HOME, else the OS app-data folder)",
    )
    .addCommand(initCommand(ctx))
    .addCommand(statusCommand(ctx))
    .addCommand(captureCommand(ctx))
    .addCommand(uninstallCommand(ctx))
    .addCommand(configCommand(ctx))
    .addCommand(serveCommand(ctx))
    .addCommand(pairCommand(ctx))
    .addCommand(syncCommand(ctx))
    .addCommand(cloneCommand(ctx))
    .addCommand(snapshotCommand(ctx))
    .addCommand(verifyCommand(ctx, (code) => (verdict = code)))
    .addCommand(conflictsCommand(ctx))
    .addCommand(exportCommand(ctx))
    .addCommand(importCommand(ctx))
    .addCommand(adminUrlCommand(ctx))
    .addCommand(serviceCommand(ctx));

  // Commander's own error text (and the help it prints when a command is missing) is replaced
  // by one sentence from explainFailure; these only note which command failed.
  let failedIn = '';
  forEachCommand(program, '', (cmd, path) => {
    const noteFailure = () => {
      failedIn = path;
    };
    cmd.exitOverride();
    cmd.configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: noteFailure,
      outputError: noteFailure,
    });
  });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return verdict;
  } catch (e) {
    if (e instanceof CommanderError && isCleanExit(e)) return EXIT.done;
    const { code, sentence } = explainFailure(e, failedIn);
    io.err(sentence);
    return code;
  }
}

function isCleanExit(e: CommanderError): boolean {
  return (
    e.code === 'commander.helpDisplayed' ||
    e.code === 'commander.version' ||
    (e.code === 'commander.help' && e.exitCode === 0)
  );
}

function forEachCommand(cmd: Command, path: string, fn: (cmd: Command, path: string) => void) {
  fn(cmd, path);
  for (const sub of cmd.commands) forEachCommand(sub, `${path} ${sub.name()}`, fn);
}
