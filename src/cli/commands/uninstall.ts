import { Command } from 'commander';
import { dbUrlOf, parseDbUrl } from '../../engine/db/url.js';
import { resolveDbTarget, type Home } from '../../engine/config/home.js';
import { homeOf, type CliContext } from '../context.js';

/**
 * `uninstall --db URL`: removes every ClinicSync trigger and table from the database. Needs no
 * home; where the home's node lives on that database, its stored password is used and the home
 * stops being a node afterwards.
 */
export function uninstallCommand(ctx: CliContext): Command {
  return new Command('uninstall')
    .description('remove every ClinicSync trigger and table from a database')
    .requiredOption('--db <url>', 'the database, mysql://user[:password]@host[:port]/database')
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { db: string; dbPasswordFile?: string }, cmd: Command) => {
      const db = dbUrlOf(parseDbUrl(opts.db));
      const home = homeOf(cmd, ctx);
      const nodeHome = holdsNodeOn(home, db) ? home : null;
      const { target } = resolveDbTarget(
        opts.db,
        { passwordFile: opts.dbPasswordFile, env: ctx.env },
        nodeHome,
      );
      const { uninstall } = await import('../../engine/node/uninstall.js');
      const removed = await uninstall(target);
      nodeHome?.forgetNode();
      ctx.io.out(
        `Removed ${removed.triggers} triggers and ${removed.tables} tables from ${db}${nodeHome ? `; ${home.dir} is no longer a node` : ''}.`,
      );
    });
}

function holdsNodeOn(home: Home, db: string): boolean {
  try {
    return home.load()?.db === db;
  } catch {
    return false; // a broken settings file must not stop removal from the database
  }
}
