import type { SyncNode } from '../engine/node/node.js';
import { digestOf, rowDigests } from '../engine/node/verify.js';

/*
 * Whether the demo's nodes hold the same data: every synced table's rows by global identity, with
 * foreign keys as identities and local ids left out (the engine's verify digests), so nodes agree
 * exactly when their digests do, whatever local ids each gave its rows.
 */

/** One node's synced tables: table → row identity → row hash. */
export type NodeRows = Map<string, Map<string, string>>;

export async function readRows(node: SyncNode): Promise<NodeRows> {
  await node.capture.reconcile();
  const plans = node.capture.plans();
  const synced = node.capture.synced();
  const out: NodeRows = new Map();
  for (const [table, plan] of [...plans].sort(([a], [b]) => a.localeCompare(b))) {
    if (synced(table)) out.set(table, await rowDigests(node.pool, plan, plans, node.nodeId));
  }
  return out;
}

export interface Agreement {
  tables: number;
  rows: number;
  /** one sentence per table that differs between the first node and another; empty when all agree */
  differences: string[];
}

/** Compares every node with the first (`nodes`: name → its rows). */
export function compare(nodes: Map<string, NodeRows>): Agreement {
  const [head, ...others] = [...nodes];
  if (!head) return { tables: 0, rows: 0, differences: [] };
  const [firstName, first] = head;
  const differences: string[] = [];
  let rows = 0;
  for (const [table, mine] of first) {
    rows += mine.size;
    const digest = digestOf(mine).digest;
    for (const [name, theirs] of others) {
      const t = theirs.get(table);
      if (!t) {
        differences.push(`${table}: synced at ${firstName} but not at ${name}`);
      } else if (digestOf(t).digest !== digest) {
        differences.push(
          `${table} differs between ${firstName} and ${name}: ${describeDiff(firstName, mine, name, t)}`,
        );
      }
    }
  }
  for (const [name, theirs] of others) {
    for (const table of theirs.keys()) {
      if (!first.has(table))
        differences.push(`${table}: synced at ${name} but not at ${firstName}`);
    }
  }
  return { tables: first.size, rows, differences };
}

/** "2 rows only at Amani Hospital, 1 row with other values" */
function describeDiff(
  firstName: string,
  mine: Map<string, string>,
  name: string,
  theirs: Map<string, string>,
): string {
  let onlyFirst = 0;
  let onlyOther = 0;
  let changed = 0;
  for (const [ident, hash] of mine) {
    const h = theirs.get(ident);
    if (h === undefined) onlyFirst++;
    else if (h !== hash) changed++;
  }
  for (const ident of theirs.keys()) if (!mine.has(ident)) onlyOther++;
  const parts: string[] = [];
  if (onlyFirst) parts.push(`${rowsWord(onlyFirst)} only at ${firstName}`);
  if (onlyOther) parts.push(`${rowsWord(onlyOther)} only at ${name}`);
  if (changed) parts.push(`${rowsWord(changed)} with other values`);
  return parts.join(', ');
}

const rowsWord = (n: number) => `${n.toLocaleString('en-US')} row${n === 1 ? '' : 's'}`;
