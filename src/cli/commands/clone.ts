import { Command } from 'commander';
import { resolveDbTarget } from '../../engine/config/home.js';
import { SyncError } from '../../engine/errors.js';
import { parseFingerprint } from '../../engine/transport/tls.js';
import type { CloneStep } from '../../engine/clone/clone.js';
import { homeOf, type CliContext } from '../context.js';

interface CloneOptions {
  parent: string;
  code: string;
  db: string;
  name: string;
  fingerprint?: string;
  dbPasswordFile?: string;
}

/** Seconds between progress lines while rows are copied. */
const PROGRESS_EVERY_MS = 2_000;

/**
 * `clone --parent URL --code CODE --db URL --name NAME`: makes this home a new child of the
 * parent at URL, in an empty database: pairs with the code, copies the parent's consistent
 * snapshot, and exchanges once. Progress on stderr; one summary line on stdout. Exit 0 on
 * success, 3 when the parent cannot be reached, 1 otherwise.
 */
export function cloneCommand(ctx: CliContext): Command {
  return new Command('clone')
    .description('make a new child of a parent node in an empty database, from its snapshot')
    .requiredOption('--parent <url>', "the parent's address, like http://district.example.org:8750")
    .requiredOption(
      '--code <code>',
      'the one-time pairing code the parent showed ("clinic-sync pair")',
    )
    .requiredOption(
      '--db <url>',
      'the empty database, mysql://user[:password]@host[:port]/database',
    )
    .requiredOption('--name <name>', "this clinic's name under its parent")
    .option(
      '--fingerprint <SHA256:…>',
      'over HTTPS, the parent certificate\'s fingerprint "clinic-sync pair" printed (else the first one met is trusted and shown)',
    )
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: CloneOptions, cmd: Command) => {
      const home = homeOf(cmd, ctx);
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
      const { cloneFromParent, describeClone, describeStep } =
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
      const result = await cloneFromParent({
        parentUrl: opts.parent,
        code: opts.code,
        db: target,
        name: opts.name,
        home,
        storeDbPassword: passwordSource !== 'secret',
        onProgress,
        onNote: (line) => ctx.io.err(line),
        ...(fingerprint ? { fingerprint } : {}),
      });
      try {
        ctx.io.out(describeClone(result, opts.name));
      } finally {
        await result.node.close();
      }
    });
}
