import os from 'node:os';
import { Command } from 'commander';
import { resolveDbTarget } from '../../engine/config/home.js';
import { SyncError, isSyncError } from '../../engine/errors.js';
import type { SyncNode } from '../../engine/node/node.js';
import { homeOf, type CliContext } from '../context.js';

interface SnapshotOptions {
  out: string;
  url?: string;
  dbPasswordFile?: string;
}

/**
 * `snapshot --out FILE [--url URL]`: on a parent, writes a snapshot of this node to FILE for a
 * USB key, encrypted with a one-time code of 100 bits printed alone on the last line of stdout
 * (groups of four a person can type). The file carries the registration of the one child it
 * makes (`clinic-sync clone --from-file FILE --code CODE …`), and the address children reach this
 * node at: --url, else the one `serve` listens on. While `serve` runs the node, the snapshot
 * asks it (through its admin API) to pick up the latest changes; otherwise it takes the node.
 */
export function snapshotCommand(ctx: CliContext): Command {
  return new Command('snapshot')
    .description(
      'write an encrypted snapshot of this node to a file, to make a child from a USB key',
    )
    .requiredOption('--out <file>', 'the file to write, like /media/usb/district.snapshot')
    .option(
      '--url <url>',
      'the address children reach this node at, like http://district.example.org:8750 (default: where serve listens)',
    )
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: SnapshotOptions, cmd: Command) => {
      const home = homeOf(cmd, ctx);
      const settings = home.requireSettings();
      const url = opts.url !== undefined ? checkedUrl(opts.url) : await servedUrl(home);
      const { target } = resolveDbTarget(
        undefined,
        { passwordFile: opts.dbPasswordFile, env: ctx.env },
        home,
      );
      const { SyncNode } = await import('../../engine/node/node.js');
      const { writeSnapshotFile } = await import('../../engine/clone/snapshotWriter.js');
      let node: SyncNode;
      let pickup: (() => Promise<unknown>) | undefined;
      try {
        node = await SyncNode.open({
          db: target,
          settings,
          home,
          lock: 'try',
          purpose: 'snapshot',
        });
      } catch (e) {
        if (!isSyncError(e) || e.kind !== 'locked') throw e;
        // serve (or the desktop app) runs the node: it picks the changes up when asked to.
        pickup = await runningEnginePickup(home, e.message);
        node = await SyncNode.open({ db: target, settings, home, lock: 'none' });
      }
      try {
        ctx.io.err(`Writing the snapshot of ${settings.name} to ${opts.out}…`);
        const made = await writeSnapshotFile(node, opts.out, {
          url,
          ...(pickup ? { pickup } : {}),
        });
        ctx.io.out(
          `Wrote ${made.file}: ${made.tables.toLocaleString('en-US')} tables, ${made.rows.toLocaleString('en-US')} rows, ${(made.bytes / 1_000_000).toFixed(1)} MB.`,
        );
        ctx.io.out(
          url
            ? `The clinic made from it reaches this node at ${url}; until its first sync it is listed here as "${made.placeholder}".`
            : `The file does not say where this node can be reached: the clinic made from it must give --parent URL; until its first sync it is listed here as "${made.placeholder}".`,
        );
        ctx.io.out(
          'Give this code with the file (not on the same key); it opens the file and makes one clinic:',
        );
        ctx.io.out(made.code);
      } finally {
        await node.close();
      }
    });
}

function checkedUrl(url: string): string {
  try {
    const u = new URL(url);
    if ((u.protocol === 'http:' || u.protocol === 'https:') && u.hostname) {
      return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
    }
  } catch {
    // refused below
  }
  throw new SyncError(
    'usage',
    `--url must be the address children reach this node at, like http://district.example.org:8750, not "${url}".`,
  );
}

/**
 * Where `serve` listens, as children would reach it: a wildcard address (0.0.0.0, ::) becomes
 * this computer's name. Null where serve is not running.
 */
async function servedUrl(home: import('../../engine/config/home.js').Home): Promise<string | null> {
  const { readServeInfo, processRuns } = await import('../../api/serveInfo.js');
  const info = readServeInfo(home);
  if (!info?.listen || !processRuns(info.pid)) return null;
  try {
    const u = new URL(/^https?:\/\//.test(info.listen) ? info.listen : `http://${info.listen}`);
    if (u.hostname === '0.0.0.0' || u.hostname === '[::]') u.hostname = os.hostname();
    return `${u.protocol}//${u.host}`;
  } catch {
    return null;
  }
}

/** A pickup that asks the running engine (its admin API's status makes it pick up). */
async function runningEnginePickup(
  home: import('../../engine/config/home.js').Home,
  busy: string,
): Promise<() => Promise<unknown>> {
  const { readServeInfo, processRuns, adminBaseUrl } = await import('../../api/serveInfo.js');
  const { adminToken } = await import('../../api/adminServer.js');
  const { createHttpApi } = await import('../../api/httpClient.js');
  const info = readServeInfo(home);
  const base = info?.admin && processRuns(info.pid) ? adminBaseUrl(info.admin) : null;
  if (!base) {
    throw new SyncError(
      'locked',
      `${busy.replace(/\.$/, '')}; it offers no admin API to ask for the latest changes, so stop it, write the snapshot, and start it again.`,
    );
  }
  const api = createHttpApi({ baseUrl: base, token: adminToken(home) });
  return () => api.getStatus();
}
