import { Command } from 'commander';
import type { Conflict } from '../../engine/apply/conflicts.js';
import type { StoredValue } from '../../engine/capture/values.js';
import { SyncError } from '../../engine/errors.js';
import { withNode, type CliContext } from '../context.js';

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 1_000_000;

/**
 * `conflicts [--json] [--limit N]`: the values that lost to concurrent ones here, newest first
 * (DESIGN §6). --json prints one JSON array of objects with exactly `table`, `identity`, `columns`,
 * `winner`, `loser`, `winnerOrigin`, `loserOrigin` and `at` (issue 5), plus `explanation` for a
 * value two rows could not share (issue 12). Reads only, so it works while `serve` runs.
 */
export function conflictsCommand(ctx: CliContext): Command {
  return new Command('conflicts')
    .description('list the values that lost to concurrent edits on another node, newest first')
    .option('--json', 'print one JSON array instead of text')
    .option('--limit <n>', `show at most this many (default ${DEFAULT_LIMIT})`)
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(
      async (opts: { json?: boolean; limit?: string; dbPasswordFile?: string }, cmd: Command) => {
        const limit = opts.limit === undefined ? DEFAULT_LIMIT : parseLimit(opts.limit);
        const found = await withNode(cmd, ctx, { ...opts, lock: 'none' }, async (node) => {
          const { listConflicts } = await import('../../engine/apply/conflicts.js');
          const { queryRows } = await import('../../engine/db/pool.js');
          const { getMeta } = await import('../../engine/node/meta.js');
          const conflicts = await listConflicts(node.pool, limit);
          if (opts.json) {
            return { conflicts, total: conflicts.length, names: new Map<string, string>() };
          }
          const [row] = await queryRows(node.pool, 'SELECT COUNT(*) AS n FROM clinicsync_conflict');
          const names = new Map<string, string>();
          for (const p of await node.peers()) names.set(p.nodeId, p.name);
          names.set(node.nodeId, `${(await getMeta(node.pool, 'name')) ?? 'this node'} (here)`);
          return { conflicts, total: Number(row?.n ?? conflicts.length), names };
        });
        if (opts.json) {
          ctx.io.out(JSON.stringify(found.conflicts.map(contractShape)));
          return;
        }
        for (const line of describeConflicts(found.conflicts, found.total, found.names)) {
          ctx.io.out(line);
        }
      },
    );
}

/** Exactly the contract's keys, in its order. */
function contractShape(c: Conflict): Conflict {
  return {
    table: c.table,
    identity: c.identity,
    columns: c.columns,
    winner: c.winner,
    loser: c.loser,
    winnerOrigin: c.winnerOrigin,
    loserOrigin: c.loserOrigin,
    at: c.at,
    ...(c.explanation !== undefined ? { explanation: c.explanation } : {}),
  };
}

/**
 *   person 1a9c…-uuid: birthdate
 *     kept       birthdate = "1976-02-02" (from clinic)
 *     set aside  birthdate = "1976-01-01" (from district (here), made 2026-03-09T10:00:00.000Z)
 */
export function describeConflicts(
  conflicts: Conflict[],
  total: number,
  names: Map<string, string>,
): string[] {
  if (!conflicts.length) return ['No conflicts recorded: no value here was set aside.'];
  const who = (id: string) => names.get(id) ?? `node ${id}`;
  const lines: string[] = [];
  for (const c of conflicts) {
    lines.push(`${c.table} ${c.identity}: ${c.columns.join(', ')}`);
    lines.push(`  kept       ${values(c.winner)} (from ${who(c.winnerOrigin)})`);
    lines.push(`  set aside  ${values(c.loser)} (from ${who(c.loserOrigin)}, made ${c.at})`);
    if (c.explanation !== undefined) lines.push(`  why        ${c.explanation}`);
  }
  lines.push(
    total > conflicts.length
      ? `Showing the latest ${conflicts.length} of ${total} conflicts; --limit shows more.`
      : `${total} conflict${total === 1 ? '' : 's'}.`,
  );
  return lines;
}

function values(v: Record<string, StoredValue>): string {
  return Object.entries(v)
    .map(([col, x]) => `${col} = ${shown(x)}`)
    .join(', ');
}

function shown(v: StoredValue): string {
  if (v === null) return 'NULL';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
  return `<${Buffer.from(v.b, 'base64').length} bytes>`;
}

function parseLimit(raw: string): number {
  const text = raw.trim();
  const n = /^[0-9]{1,7}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) {
    throw new SyncError(
      'usage',
      `--limit must be a whole number from 1 to ${MAX_LIMIT.toLocaleString('en-US')}, not "${raw}".`,
    );
  }
  return n;
}
