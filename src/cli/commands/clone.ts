import { Command } from 'commander';
import { resolveDbTarget } from '../../engine/config/home.js';
import { SyncError } from '../../engine/errors.js';
import { parseFingerprint } from '../../engine/transport/tls.js';
import type { CloneResult, CloneStep } from '../../engine/clone/clone.js';
import { homeOf, type CliContext } from '../context.js';

interface CloneOptions {
  parent?: string;
  fromFile?: string;
  code: string;
  db: string;
  name: string;
  replace?: boolean;
  fingerprint?: string;
  dbPasswordFile?: string;
}

/** Seconds between progress lines while rows are copied. */
const PROGRESS_EVERY_MS = 2_000;

/**
 * `clone --parent URL --code CODE --db URL --name NAME` makes this home a new child of the
 * parent at URL: pairs with the code, copies the parent's consistent snapshot, and exchanges
 * once. `clone --from-file FILE --code CODE --db URL --name NAME [--parent URL]` makes it from a
 * file `clinic-sync snapshot` wrote, with the code printed with it; the first `sync` then brings
 * what the parent changed since. Either refuses a database that holds anything unless --replace
 * (its contents are then saved to a dump in the home first). Progress on stderr, the summary's
 * details on stderr and its one line on stdout. Exit 0 on success, 3 when the parent cannot be
 * reached, 2 on bad options, 1 otherwise.
 */
export function cloneCommand(ctx: CliContext): Command {
  return new Command('clone')
    .description('make a new child of a parent node, from its snapshot over the network or a file')
    .option('--parent <url>', "the parent's address, like http://district.example.org:8750")
    .option('--from-file <file>', 'a snapshot file written by "clinic-sync snapshot" (no network)')
    .requiredOption(
      '--code <code>',
      'the one-time code the parent showed ("clinic-sync pair", or printed with the snapshot file)',
    )
    .requiredOption(
      '--db <url>',
      'the empty database, mysql://user[:password]@host[:port]/database',
    )
    .requiredOption('--name <name>', "this clinic's name under its parent")
    .option(
      '--replace',
      'replace what the database holds, after saving it to a dump file in the home',
    )
    .option(
      '--fingerprint <SHA256:…>',
      'over HTTPS, the parent certificate\'s fingerprint "clinic-sync pair" printed (else the first one met is trusted and shown)',
    )
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: CloneOptions, cmd: Command) => {
      const home = homeOf(cmd, ctx);
      if (opts.fromFile === undefined && opts.parent === undefined) {
        throw new SyncError(
          'usage',
          'clone needs the main server\'s address (--parent URL) or a snapshot file (--from-file FILE); run "clinic-sync clone --help" for usage.',
        );
      }
      const fingerprint =
        opts.fingerprint === undefined ? undefined : parseFingerprint(opts.fingerprint);
      if (fingerprint === null) {
        throw new SyncError(
          'usage',
          `--fingerprint must be written as "clinic-sync pair" prints it, like SHA256:3q2+7w…, not "${opts.fingerprint}".`,
        );
      }
      const { target, passwordSource } = resolveDbTarget(
        opts.db,
        { passwordFile: opts.dbPasswordFile, env: ctx.env },
        home,
      );
      const { cloneFromFile, cloneFromParent, describeClone, describeCloneDetails, describeStep } =
        await import('../../engine/clone/clone.js');
      let lastPhase = '';
      let lastAt = 0;
      const onProgress = (s: CloneStep) => {
        const now = Date.now();
        const changed = s.phase !== lastPhase;
        if (!changed && (s.phase !== 'rows' || now - lastAt < PROGRESS_EVERY_MS)) return;
        if (s.phase === 'done') return;
        lastPhase = s.phase;
        lastAt = now;
        ctx.io.err(describeStep(s));
      };
      const common = {
        code: opts.code,
        db: target,
        name: opts.name,
        home,
        replace: opts.replace === true,
        storeDbPassword: passwordSource !== 'secret',
        onProgress,
        onNote: (line: string) => ctx.io.err(line),
      };
      let result: CloneResult;
      if (opts.fromFile !== undefined) {
        result = await cloneFromFile({
          ...common,
          file: opts.fromFile,
          ...(opts.parent !== undefined ? { parentUrl: opts.parent } : {}),
        });
      } else {
        result = await cloneFromParent({
          ...common,
          parentUrl: opts.parent!,
          ...(fingerprint ? { fingerprint } : {}),
        });
      }
      try {
        for (const line of describeCloneDetails(result)) ctx.io.err(line);
        if (opts.fromFile !== undefined) {
          ctx.io.err(
            `Run "clinic-sync sync" (or "clinic-sync serve") once ${result.parentName} can be reached: it brings what changed there since the snapshot.`,
          );
        }
        ctx.io.out(describeClone(result, opts.name));
      } finally {
        await result.node.close();
      }
    });
}
