import { Command } from 'commander';
import { SyncError } from '../../engine/errors.js';
import type { TableDifference, VerifyReport } from '../../engine/node/verify.js';
import { homeOf, withNode, type CliContext } from '../context.js';

/** The exit code of a verify that found differences (issue 5). */
export const EXIT_DIFFERENT = 4;

export const VERIFY_ROOT_SENTENCE =
  'This node has no parent to compare with; it is the root of its tree.';

/** Identities shown per table in the text output. */
const SHOWN_PER_TABLE = 20;

/** What `verify --json` prints: exactly one JSON object. */
export interface VerifyJson {
  match: boolean;
  tables: TableDifference[];
}

/**
 * `verify [--json]`: compares this node's synced rows with its parent's over the network, by
 * global identity (foreign keys as identities), table digests first and rows only where a digest
 * differs. It compares the nodes as they are: run it right after `sync`, while nothing is being
 * edited, or changes not yet exchanged show as differences. Exit 0 when every table matches, 4
 * when some differ (`exitWith`), 3 when the parent cannot be reached, 1 on a root.
 */
export function verifyCommand(ctx: CliContext, exitWith: (code: number) => void): Command {
  return new Command('verify')
    .description("compare this node's synced rows with its parent's (run it right after sync)")
    .option('--json', 'print one JSON object instead of text')
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: { json?: boolean; dbPasswordFile?: string }, cmd: Command) => {
      const settings = homeOf(cmd, ctx).requireSettings();
      if (settings.role === 'root' || settings.parent === null) {
        throw new SyncError('state', VERIFY_ROOT_SENTENCE);
      }
      // Verify only reads: it runs beside `serve` or the desktop app without their lock.
      const report = await withNode(cmd, ctx, { ...opts, lock: 'none' }, async (node) => {
        const { ParentClient } = await import('../../engine/transport/client.js');
        const { parentRows } = await import('../../engine/transport/verifyRoute.js');
        const { LocalRows, compareRows } = await import('../../engine/node/verify.js');
        const client = await ParentClient.forNode(node);
        try {
          return await compareRows(await LocalRows.of(node), parentRows(client));
        } finally {
          await client.close();
        }
      });
      if (opts.json) {
        const out: VerifyJson = { match: report.match, tables: report.tables };
        ctx.io.out(JSON.stringify(out));
      } else {
        for (const line of describeVerify(report)) ctx.io.out(line);
      }
      if (!report.match) exitWith(EXIT_DIFFERENT);
    });
}

/** Text: one line per differing table, up to 20 identities under it, then a one-line verdict. */
export function describeVerify(r: VerifyReport): string[] {
  const lines: string[] = [];
  for (const t of r.tables) {
    const parts: string[] = [];
    if (t.onlyHere.length) parts.push(`${rows(t.onlyHere.length)} only here`);
    if (t.onlyThere.length) parts.push(`${rows(t.onlyThere.length)} only at the parent`);
    if (t.different.length) parts.push(`${rows(t.different.length)} with other values`);
    lines.push(
      `${t.table}: ${parts.join(', ')} (${num(t.rowsHere)} here, ${num(t.rowsThere)} at the parent)`,
    );
    const listed = [
      ...t.onlyHere.map((i) => `  only here            ${i}`),
      ...t.onlyThere.map((i) => `  only at the parent   ${i}`),
      ...t.different.map((i) => `  other values         ${i}`),
    ];
    lines.push(...listed.slice(0, SHOWN_PER_TABLE));
    if (listed.length > SHOWN_PER_TABLE) {
      lines.push(`  … and ${num(listed.length - SHOWN_PER_TABLE)} more (--json lists them all)`);
    }
  }
  const skipped = [
    ...r.syncedOnlyHere.map((t) => `${t} (synced here only)`),
    ...r.syncedOnlyThere.map((t) => `${t} (synced at the parent only)`),
  ];
  if (skipped.length) {
    lines.push(
      `Not compared: ${skipped.slice(0, 10).join(', ')}${skipped.length > 10 ? `, and ${skipped.length - 10} more` : ''}.`,
    );
  }
  if (r.match) {
    lines.push(
      `Every synced table matches the parent (${count(r.compared, 'table')}, ${rows(r.rows)}).`,
    );
  } else {
    const n = r.tables.reduce(
      (s, t) => s + t.onlyHere.length + t.onlyThere.length + t.different.length,
      0,
    );
    lines.push(
      `${rows(n)} ${n === 1 ? 'differs' : 'differ'} in ${count(r.tables.length, 'table')}.`,
    );
  }
  return lines;
}

const num = (n: number) => n.toLocaleString('en-US');
const count = (n: number, word: string) => `${num(n)} ${word}${n === 1 ? '' : 's'}`;
const rows = (n: number) => count(n, 'row');
