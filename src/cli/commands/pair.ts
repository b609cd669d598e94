import { Command } from 'commander';
import { SyncError } from '../../engine/errors.js';
import { homeOf, withNode, type CliContext } from '../context.js';

const DEFAULT_TTL_MINUTES = 60;
const MAX_TTL_MINUTES = 7 * 24 * 60;

/**
 * `pair [--ttl MINUTES]`: prints a one-time pairing code, alone on the last line of stdout, and
 * above it `fingerprint SHA256:…` of the certificate `serve --https` presents. It only writes one
 * row, so it works whether or not `serve` runs, and takes no node lock.
 */
export function pairCommand(ctx: CliContext): Command {
  return new Command('pair')
    .description('print a one-time code with which a new clinic joins this node as its child')
    .option(
      '--ttl <minutes>',
      `how long the code works, in minutes (default ${DEFAULT_TTL_MINUTES})`,
    )
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { ttl?: string; dbPasswordFile?: string }, cmd: Command) => {
      const ttl = parseTtl(opts.ttl);
      const made = await withNode(cmd, ctx, { ...opts, lock: 'none' }, async (node) => {
        const { createPairingCode } = await import('../../engine/transport/pairing.js');
        return createPairingCode(node.pool, ttl);
      });
      ctx.io.out(
        `Give this code to the clinic that joins; it works once, for ${ttl} minute${ttl === 1 ? '' : 's'}.`,
      );
      // Over HTTPS the clinic compares this with what its clone shows (or passes --fingerprint).
      const { readCertificate } = await import('../../engine/transport/tls.js');
      const certificate = readCertificate(homeOf(cmd, ctx));
      if (certificate) ctx.io.out(`fingerprint ${certificate.fingerprint}`);
      ctx.io.out(made.code);
    });
}

function parseTtl(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_TTL_MINUTES;
  const text = raw.trim();
  const n = /^[0-9]{1,6}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_TTL_MINUTES) {
    throw new SyncError(
      'usage',
      `--ttl must be a whole number of minutes from 1 to ${MAX_TTL_MINUTES}, not "${raw}".`,
    );
  }
  return n;
}
