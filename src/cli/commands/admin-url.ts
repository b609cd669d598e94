import { Command } from 'commander';
import { adminToken } from '../../api/adminServer.js';
import { adminBaseUrl, processRuns, readServeInfo } from '../../api/serveInfo.js';
import { SyncError } from '../../engine/errors.js';
import { homeOf, type CliContext } from '../context.js';

/**
 * `admin-url`: the running engine's admin address with its token, alone on the last line, for a
 * browser on this computer (issue "The React window"). Reads serve.json and the token from the
 * node's home (which may hold no node yet: setup mode); no database.
 */
export function adminUrlCommand(ctx: CliContext): Command {
  return new Command('admin-url')
    .description("print the address of the running engine's admin page, with its token")
    .action((_opts: unknown, cmd: Command) => {
      const home = homeOf(cmd, ctx);
      // No node needed: `serve` on a fresh computer runs in setup mode, for the window's wizard.
      const info = readServeInfo(home);
      if (!info || !processRuns(info.pid)) {
        throw new SyncError(
          'state',
          'ClinicSync is not running for this node; start it with "clinic-sync serve" first.',
        );
      }
      const base = info.admin === null ? null : adminBaseUrl(info.admin);
      if (base === null) {
        throw new SyncError(
          'state',
          'The running "clinic-sync serve" does not offer the admin API; stop it and start it again with --admin 127.0.0.1:8751.',
        );
      }
      ctx.io.out(`${base}/?token=${encodeURIComponent(adminToken(home))}`);
    });
}
