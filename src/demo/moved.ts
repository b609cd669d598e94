import type { ParentLink } from '../engine/node/service.js';
import type { WireChange } from '../engine/protocol/types.js';

/*
 * What moved between the demo's nodes, as it crossed the wire: the demo hands each child's
 * NodeService a ParentLink that passes every exchange on to the real HTTP client and notes the
 * changes going up (to the parent) and coming down (to the child). Each change is known by its
 * global id, origin node and origin sequence, so one made at a child and passed on by the parent
 * is counted once, with the two nodes it reached.
 */

interface Moved {
  origin: string;
  table: string;
  op: WireChange['op'];
  /** the node ids it was delivered to, once per delivery */
  deliveredTo: string[];
}

export class Traffic {
  private readonly changes = new Map<string, Moved>();

  /** `link` (the child's HTTP client) with every exchange between `child` and `parent` noted. */
  watch(link: ParentLink, child: string, parent: string): ParentLink {
    return {
      exchange: async (env) => {
        const answer = await link.exchange(env);
        // Noted once the parent answered: what it answered for is what it received.
        this.note(env.changes, parent);
        this.note(answer.reply.changes, child);
        return answer;
      },
    };
  }

  private note(changes: WireChange[], to: string): void {
    for (const c of changes) {
      const id = `${c.origin}/${c.seq}`;
      let m = this.changes.get(id);
      if (!m) {
        m = { origin: c.origin, table: c.table, op: c.op, deliveredTo: [] };
        this.changes.set(id, m);
      }
      m.deliveredTo.push(to);
    }
  }

  /**
   * A small table: one line per table and kind of change, one column per node where changes were
   * made (`nodes`: node id → column header, in column order), and a total.
   */
  table(nodes: Map<string, string>, tableOrder: readonly string[]): string[] {
    const OPS = { I: 'inserted', U: 'updated', D: 'deleted', S: 'skipped' } as const;
    const origins = [...nodes.keys()];
    const counts = new Map<string, number[]>();
    for (const m of this.changes.values()) {
      const label = m.op === 'S' ? 'skip markers' : `${m.table} ${OPS[m.op]}`;
      const row = counts.get(label) ?? origins.map(() => 0);
      const col = origins.indexOf(m.origin);
      if (col >= 0) row[col]!++;
      counts.set(label, row);
    }
    const rank = (label: string) => {
      const [table, op] = label.split(' ');
      const t = tableOrder.indexOf(table!);
      return (t < 0 ? tableOrder.length : t) * 4 + 'iuds'.indexOf(op![0]!);
    };
    const labels = [...counts.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const totals = origins.map((_, i) => labels.reduce((n, l) => n + counts.get(l)![i]!, 0));
    const cells = [
      ['change', ...nodes.values()],
      ...labels.map((l) => [l, ...counts.get(l)!.map(cell)]),
      ['total', ...totals.map(cell)],
    ];
    const widths = cells[0]!.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
    return cells.map(
      (c) =>
        '  ' +
        c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  '),
    );
  }

  /** How many distinct changes moved, and whether each reached every other node exactly once. */
  deliveries(nodeCount: number): {
    changes: number;
    deliveries: number;
    short: number;
    repeated: number;
  } {
    let deliveries = 0;
    let short = 0;
    let repeated = 0;
    for (const m of this.changes.values()) {
      deliveries += m.deliveredTo.length;
      const reached = new Set(m.deliveredTo);
      repeated += m.deliveredTo.length - reached.size;
      reached.delete(m.origin);
      if (reached.size < nodeCount - 1) short++;
    }
    return { changes: this.changes.size, deliveries, short, repeated };
  }
}

const cell = (n: number) => (n === 0 ? '-' : n.toLocaleString('en-US'));
