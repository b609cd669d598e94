import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { digestOf, rowDigests } from '../../src/engine/node/verify.js';
import {
  buildTree,
  settle,
  writeAt,
  NODE_NAMES,
  scenarioArb,
  PARENT,
  PERSON_COLUMNS,
  PERSON_UNITS,
  personsAt,
  Workload,
  type ChildName,
  type NodeName,
  type PropertyTree,
  type Scenario,
} from '../helpers/ops.js';
import { later, replay, type Expected, type ReplayEvent } from '../helpers/replay.js';
import { duplicateLogEntries, parkedOn } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 5, "Done when", first point (DESIGN §5, §6, §10): on a tree of five nodes on three levels,
 * clinics insert, edit, void, unvoid, delete and re-create persons on random nodes while random
 * links exchange in random order and lose random replies. After every link has exchanged until
 * quiet:
 *
 * 1. every node holds exactly the persons, with exactly the values, that an independent replay of
 *    the same writes under the documented rules expects (replay.ts), compared by uuid with foreign
 *    keys as uuids: agreement between nodes alone would also hold if every update were dropped;
 * 2. every node's log holds every write exactly once, with the clock its origin gave it;
 * 3. nothing is left parked anywhere;
 * 4. `verify` is clean: every synced table's digests (the engine's verify.ts, by global identity)
 *    are the same on each node as on its parent.
 *
 * The nodes' wall clocks are real, some seconds behind, or all stopped at one instant (so stamps
 * tie across nodes and node ids decide): see Clocks in ops.ts.
 *
 * CI makes a few runs from a fixed seed. More on demand, with these variables:
 *   CLINICSYNC_PROPERTY_RUNS=50     how many runs (default 5)
 *   CLINICSYNC_PROPERTY_SEED=<n>    another seed (a failure prints its seed and path)
 *   CLINICSYNC_PROPERTY_PATH=<p>    with the seed: replays just that failing run
 *   CLINICSYNC_PROPERTY_OPS=<n>     the most operations in a run (default 80: 40 on average)
 *   CLINICSYNC_PROPERTY_SHRINK=<m>  spend up to m minutes shrinking a failure (each try builds a
 *                                   new tree, a few seconds); by default a failure is not shrunk
 *   CLINICSYNC_PROPERTY_LOG=1       one line per run; 2: with what the run did
 * e.g. CLINICSYNC_PROPERTY_RUNS=50 npx vitest run test/e2e/property-tree.test.ts
 */

const env = (name: string, fallback: number) => {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
};
const SEED = env('CLINICSYNC_PROPERTY_SEED', 20_260_309);
const RUNS = env('CLINICSYNC_PROPERTY_RUNS', 5);
const MAX_OPS = env('CLINICSYNC_PROPERTY_OPS', 80);
const SHRINK_MINUTES = env('CLINICSYNC_PROPERTY_SHRINK', 0);
const PATH = process.env.CLINICSYNC_PROPERTY_PATH || undefined;
const LOG = env('CLINICSYNC_PROPERTY_LOG', 0);

/** Differences between one node's persons and the expected end state. */
function againstModel(
  name: NodeName,
  actual: Map<string, Record<string, string | null>>,
  expected: Expected,
): string[] {
  const out: string[] = [];
  for (const [uuid, exp] of expected) {
    const row = actual.get(uuid);
    if (!row) {
      out.push(`${name}: ${uuid} missing`);
      continue;
    }
    for (const c of PERSON_COLUMNS)
      if (row[c] !== exp[c])
        out.push(
          `${name}: ${uuid} ${c} = ${JSON.stringify(row[c])}, expected ${JSON.stringify(exp[c])}`,
        );
  }
  for (const uuid of actual.keys())
    if (!expected.has(uuid)) out.push(`${name}: ${uuid} present, expected deleted`);
  return out;
}

/** Every synced table of a node: identity → row hash (what `verify` compares). */
async function digests(node: SyncNode): Promise<Map<string, Map<string, string>>> {
  await node.capture.reconcile();
  const plans = node.capture.plans();
  const synced = node.capture.synced();
  const out = new Map<string, Map<string, string>>();
  for (const [table, plan] of plans)
    if (synced(table)) out.set(table, await rowDigests(node.pool, plan, plans, node.nodeId));
  return out;
}

/** `verify` between a child and its parent: tables whose digests differ, and the rows that do. */
async function verifyAgainstParent(
  name: ChildName,
  child: SyncNode,
  parent: SyncNode,
): Promise<string[]> {
  const mine = await digests(child);
  const theirs = await digests(parent);
  const out: string[] = [];
  for (const table of new Set([...mine.keys(), ...theirs.keys()])) {
    const a = mine.get(table) ?? new Map<string, string>();
    const b = theirs.get(table) ?? new Map<string, string>();
    if (digestOf(a).digest === digestOf(b).digest && a.size === b.size) continue;
    const rows = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
    out.push(`verify ${name}/${PARENT[name]}: ${table} differs at ${rows.slice(0, 5).join(', ')}`);
  }
  return out;
}

/** Each node's log against the writes' origins: every change once, with its origin's clock. */
async function logsAgree(nodes: Record<NodeName, SyncNode>): Promise<string[]> {
  const out: string[] = [];
  const own = new Map<string, string>();
  for (const n of Object.values(nodes)) {
    for (const r of await queryRows(
      n.pool,
      'SELECT seq, hlc FROM clinicsync_log WHERE origin = ?',
      [n.nodeId],
    ))
      own.set(`${n.nodeId}:${String(r.seq)}`, String(r.hlc));
  }
  for (const name of NODE_NAMES) {
    const n = nodes[name];
    for (const d of await duplicateLogEntries(n)) out.push(`${name}: log holds ${d}`);
    const held = new Map(
      (await queryRows(n.pool, 'SELECT origin, seq, hlc FROM clinicsync_log')).map((r) => [
        `${String(r.origin)}:${String(r.seq)}`,
        String(r.hlc),
      ]),
    );
    for (const [id, hlc] of own) {
      if (!held.has(id)) out.push(`${name}: log lacks ${id}`);
      else if (held.get(id) !== hlc)
        out.push(`${name}: ${id} has clock ${held.get(id)}, origin ${hlc}`);
    }
    for (const id of held.keys()) if (!own.has(id)) out.push(`${name}: log holds unknown ${id}`);
  }
  return out;
}

/**
 * For a failure's report: the writes to each row a problem names, in clock order, and the order
 * in which each node's log received them.
 */
async function histories(
  nodes: Record<NodeName, SyncNode>,
  events: ReplayEvent[],
  problems: string[],
): Promise<string[]> {
  const nameOf = new Map(NODE_NAMES.map((n) => [nodes[n].nodeId, n]));
  const who = (origin: string) => nameOf.get(origin) ?? 'start';
  const keys = [...new Set(events.map((e) => e.key))].filter((k) =>
    problems.some((p) => p.includes(` ${k} `) || p.endsWith(` ${k}`)),
  );
  const out: string[] = [];
  for (const key of keys.slice(0, 4)) {
    out.push(`${key}, by clock:`);
    const mine = events
      .filter((e) => e.key === key)
      .sort((a, b) => (later(a.stamp, b.stamp) ? 1 : later(b.stamp, a.stamp) ? -1 : 0));
    for (const e of mine) {
      const base = e.op === 'update' ? ` on the insert of ${who(e.base.origin)}@${e.base.hlc}` : '';
      const values = 'values' in e ? ' ' + JSON.stringify(e.values) : '';
      out.push(`  ${who(e.stamp.origin)}@${e.stamp.hlc} ${e.op}${values}${base}`);
    }
    for (const n of NODE_NAMES) {
      const rows = await queryRows(
        nodes[n].pool,
        "SELECT origin, seq, op, hlc FROM clinicsync_log WHERE tbl = 'person' AND ident = ? ORDER BY lsn",
        [key],
      );
      out.push(
        `  arrived at ${n}: ${rows.map((r) => `${who(String(r.origin))}:${String(r.seq)} ${String(r.op)}@${String(r.hlc)}`).join(', ')}`,
      );
    }
  }
  return out;
}

let runNo = 0;

async function property({ clocks, ops }: Scenario): Promise<void> {
  const tree = new Tree();
  try {
    const t = await buildTree(tree);
    const work = new Workload(t, String(++runNo), clocks);
    const started = Date.now();
    for (const op of ops) await work.run(op);
    const passes = await work.settle();

    const events = await work.events();
    const expected = replay(events, { units: PERSON_UNITS });
    const problems: string[] = [];
    for (const name of NODE_NAMES)
      problems.push(...againstModel(name, await personsAt(t.nodes[name]), expected));
    problems.push(...(await logsAgree(t.nodes)));
    for (const name of NODE_NAMES)
      for (const p of await parkedOn(t.nodes[name])) problems.push(`${name}: parked ${p}`);
    for (const name of Object.keys(PARENT) as ChildName[])
      problems.push(...(await verifyAgainstParent(name, t.nodes[name], t.nodes[PARENT[name]])));

    if (LOG) {
      const count = (k: string) => work.writes.filter((w) => w.op === k).length;
      console.log(
        `run ${runNo}: clocks ${JSON.stringify(clocks)}, ${ops.length} ops, ${count('insert')} inserts, ${count('update')} updates, ${count('delete')} deletes, ` +
          `${ops.filter((o) => o.kind === 'exchange').length} exchanges, ${work.trace.filter((l) => l.includes('skipped')).length} skipped; ` +
          `settled in ${passes} passes; ${expected.size} persons expected; ${Date.now() - started} ms` +
          (LOG > 1 ? '\n' + work.trace.join('\n') : ''),
      );
    }
    if (problems.length) {
      throw new Error(
        [
          `${problems.length} problem(s) after ${ops.length} operations:`,
          ...problems.slice(0, 40),
          '',
          ...(await histories(t.nodes, events, problems)),
          'what was done:',
          ...work.trace,
        ].join('\n'),
      );
    }
  } finally {
    await tree.close();
  }
}

describe('a five-node tree under random edits, exchanges and lost replies', () => {
  it(
    'ends with every node equal to an independent replay of the writes, and verify clean',
    async () => {
      await fc.assert(
        // Unbiased: every run as long as chance makes it (0 to MAX_OPS), not short ones first.
        fc.asyncProperty(fc.noBias(scenarioArb(MAX_OPS)), property),
        {
          seed: SEED,
          path: PATH,
          numRuns: RUNS,
          endOnFailure: !SHRINK_MINUTES,
          // reports the smallest failure found when the time is up
          plugins: SHRINK_MINUTES ? [fc.interruptAfterTimeLimit(SHRINK_MINUTES * 60_000)] : [],
        },
      );
    },
    SHRINK_MINUTES * 60_000 + RUNS * 90_000,
  );
});

/**
 * Failures the property found, cut down by hand to the fewest steps (DESIGN §6: a delete wins over
 * every update; an insert made after a delete creates the row again). Writes carry explicit wall
 * clocks, a second apart and an hour ago, so their order by clock is fixed and the skew guard
 * stays out of it. Each names its expected end state by the rules, and every node must hold it.
 */
describe('counterexamples the property found: deleting and creating a row again', () => {
  const T = Date.now() - 3_600_000;
  const at = (s: number) => T + s * 1000;
  const DEL = "DELETE FROM person WHERE uuid = 'seed-1'";
  const INS = `INSERT INTO person (gender, birthdate, creator, date_created, uuid)
               VALUES ('F', ?, 1, ?, 'seed-1')`;

  /** seed-1 on every node after everything has settled: its birthdate, or null where absent. */
  async function onTree(
    steps: (t: PropertyTree) => Promise<void>,
  ): Promise<Record<string, string | null>> {
    const tree = new Tree();
    try {
      const t = await buildTree(tree);
      await steps(t);
      await settle(t);
      const out: Record<string, string | null> = {};
      for (const name of NODE_NAMES)
        out[name] = (await personsAt(t.nodes[name])).get('seed-1')?.birthdate ?? null;
      return out;
    } finally {
      await tree.close();
    }
  }
  const everywhere = (v: string | null) => Object.fromEntries(NODE_NAMES.map((n) => [n, v]));
  const write = async (n: SyncNode, s: number, sql: string, params: unknown[] = []) => {
    await writeAt(n, at(s), sql, params);
    await n.pickup();
  };

  it('a later delete meeting an older tombstone still beats an insert made between them', async () => {
    const end = await onTree(async ({ tree, nodes: { R, M, S, L2 } }) => {
      await write(S, 1, DEL); // D1
      await tree.sync(S, R); // R holds D1's tombstone
      await write(S, 2, INS, ['1990-01-01', '2025-06-01']); // made again after D1
      await write(L2, 3, DEL); // D3, on the copy L2 still had: the latest word on the row
      await tree.sync(L2, M);
      await tree.sync(M, R); // R: D3 meets D1's tombstone
      await tree.sync(S, R); // R: the insert, later than D1, earlier than D3
    });
    expect(end).toEqual(everywhere(null));
  });

  it('an update made on a copy that was deleted loses, even clocked after the row was made again', async () => {
    const end = await onTree(async ({ nodes: { R, L2 } }) => {
      await write(R, 1, DEL);
      await write(R, 2, INS, ['1990-01-01', '2025-06-01']);
      // L2 has seen neither: it edits the row as it was before the delete
      await write(L2, 3, "UPDATE person SET birthdate = '1970-07-07' WHERE uuid = 'seed-1'");
    });
    expect(end).toEqual(everywhere('1990-01-01'));
  });

  it('an insert arriving where another insert made the row again still outlives an earlier delete', async () => {
    const end = await onTree(async (t) => {
      const {
        tree,
        nodes: { R, M, S, L1 },
      } = t;
      await write(R, 1, DEL);
      await settle(t); // every node holds the tombstone
      await write(M, 2, INS, ['1991-01-01', '2025-06-02']); // made again at M
      await tree.sync(L1, M);
      await write(L1, 3, DEL); // L1 deletes M's row
      await write(S, 4, INS, ['1992-02-02', '2025-06-03']); // made again at S, later than both
      await tree.exchange(M, R); // R: M's insert
      await tree.sync(S, R); // R: S's insert lands on M's row
      await tree.sync(L1, M);
      await tree.sync(M, R); // R: L1's delete, earlier than S's insert
    });
    expect(end).toEqual(everywhere('1992-02-02'));
  });
});
