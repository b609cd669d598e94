import fc from 'fast-check';
import type { Queryable } from '../../src/engine/db/pool.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb } from './db.js';
import { createClinicSchema } from './fixture.js';
import { readModel } from './model.js';
import { START, type ReplayEvent, type Stamp, type Values } from './replay.js';
import type { Tree } from './tree.js';

/**
 * Random work on a tree of five nodes, for the property test of issue 5: what the clinics do
 * (insert, edit, void, unvoid, delete and re-create persons on any node), and exchanges over
 * random links with random lost replies. Every local write is recorded as the clinic made it, so
 * the expected end state can be worked out independently of the engine (see replay.ts).
 *
 *            R            three levels: R is the root; M and S its children;
 *          /   \          L1 and L2 children of M.
 *         M     S
 *        / \
 *      L1   L2
 */

export const NODE_NAMES = ['R', 'M', 'S', 'L1', 'L2'] as const;
export type NodeName = (typeof NODE_NAMES)[number];
export type ChildName = Exclude<NodeName, 'R'>;
export const PARENT: Record<ChildName, NodeName> = { M: 'R', S: 'R', L1: 'M', L2: 'M' };
const CHILDREN = Object.keys(PARENT) as ChildName[];

/** A full pass over the tree's links: leaves up to the root, then back down. */
const BOTTOM_UP: ChildName[] = ['L1', 'L2', 'M', 'S'];
const TOP_DOWN: ChildName[] = ['M', 'S', 'L1', 'L2'];

// ---------------------------------------------------------------------------------------------
// The schema: the clinic fixture, with the person table's whole OpenMRS void group.

/** The person columns the model follows, as units resolved together (DESIGN §6). */
export const PERSON_UNITS: string[][] = [
  ['gender'],
  ['birthdate'],
  ['creator'],
  ['date_created'],
  ['voided', 'voided_by', 'date_voided', 'void_reason'],
];
export const PERSON_COLUMNS = PERSON_UNITS.flat();

const USERS = ['u-admin', 'u-nurse', 'u-clerk'];
const GENDERS = ['F', 'M', 'O', 'U'];
const REASONS = ['duplicate', 'entered in error', 'patient moved', 'merged'];
/** How many persons exist on every node when the tree is cloned (no clocks: older than all). */
const SEEDS = 3;

/** Persons of the property test: seeded ones and ones the operations insert. */
const OURS = (uuid: string) => uuid.startsWith('seed-') || uuid.startsWith('prop-');

function timeText(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}
/** A birthdate: few distinct values, so two nodes often write the same one. */
const birthdate = (d: number) => timeText(Date.UTC(1980, 0, 1) + d * 86_400_000).slice(0, 10);
/** A unique creation time per insert: it tells which insert a node's copy of a row came from. */
const created = (n: number) => timeText(Date.UTC(2025, 0, 1) + n * 60_000);
const voidedAt = (d: number) => timeText(Date.UTC(2026, 2, 1, 8) + d * 3_600_000);

async function createPropertySchema(db: Queryable): Promise<Map<string, Values>> {
  await createClinicSchema(db);
  await execute(
    db,
    `ALTER TABLE person
       ADD COLUMN voided_by INT NULL AFTER voided,
       ADD COLUMN date_voided DATETIME NULL AFTER voided_by,
       ADD COLUMN void_reason VARCHAR(255) NULL AFTER date_voided,
       ADD CONSTRAINT person_voided_by FOREIGN KEY (voided_by) REFERENCES users (user_id)`,
  );
  await execute(db, "INSERT INTO users (username, uuid) VALUES ('nurse', ?), ('clerk', ?)", [
    USERS[1],
    USERS[2],
  ]);
  const seeds = new Map<string, Values>();
  for (let i = 1; i <= SEEDS; i++) {
    const row: Values = {
      gender: GENDERS[i % GENDERS.length]!,
      birthdate: birthdate(i),
      creator: USERS[0]!,
      date_created: created(-i),
      voided: '0',
      voided_by: null,
      date_voided: null,
      void_reason: null,
    };
    await execute(
      db,
      'INSERT INTO person (gender, birthdate, creator, date_created, uuid) VALUES (?, ?, 1, ?, ?)',
      [row.gender, row.birthdate, row.date_created, `seed-${i}`],
    );
    seeds.set(`seed-${i}`, row);
  }
  return seeds;
}

export interface PropertyTree {
  tree: Tree;
  nodes: Record<NodeName, SyncNode>;
  /** persons on every node when the tree was made, by uuid */
  seeds: Map<string, Values>;
}

/** The five-node tree, each child a clone of its parent. */
export async function buildTree(tree: Tree): Promise<PropertyTree> {
  const db = await createTestDb('cs_prop');
  const seeds = await createPropertySchema(db.pool);
  const R = await tree.root(db, 'R');
  const M = await tree.clone(R, 'M');
  const S = await tree.clone(R, 'S');
  const L1 = await tree.clone(M, 'L1');
  const L2 = await tree.clone(M, 'L2');
  return { tree, nodes: { R, M, S, L1, L2 }, seeds };
}

// ---------------------------------------------------------------------------------------------
// Operations: plain data, so fast-check can print and shrink them. Numbers pick among what the
// node holds when the operation runs (modulo its size); an operation with nothing to act on there
// is skipped.

export type Op =
  | { kind: 'insert'; node: NodeName; gender: number; birthdate: number; creator: number }
  | { kind: 'edit'; node: NodeName; pick: number; column: 'gender' | 'birthdate'; value: number }
  | { kind: 'void'; node: NodeName; pick: number; by: number; reason: number; at: number }
  | { kind: 'unvoid'; node: NodeName; pick: number }
  /** a voided person's void reason corrected: the whole void group travels with it */
  | { kind: 'reason'; node: NodeName; pick: number; reason: number }
  | { kind: 'delete'; node: NodeName; pick: number }
  /** a person this node saw deleted is created again with the same uuid */
  | { kind: 'reinsert'; node: NodeName; pick: number; gender: number; birthdate: number }
  | { kind: 'exchange'; child: ChildName; loseReply: boolean };

const node = fc.constantFrom(...NODE_NAMES);
const pick = fc.nat({ max: 15 });

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      node,
      gender: fc.nat({ max: 3 }),
      birthdate: fc.nat({ max: 9 }),
      creator: fc.nat({ max: 2 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('edit' as const),
      node,
      pick,
      column: fc.constantFrom('gender' as const, 'birthdate' as const),
      value: fc.nat({ max: 9 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('void' as const),
      node,
      pick,
      by: fc.nat({ max: 2 }),
      reason: fc.nat({ max: 3 }),
      at: fc.nat({ max: 5 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unvoid' as const), node, pick }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('reason' as const),
      node,
      pick,
      reason: fc.nat({ max: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), node, pick }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('reinsert' as const),
      node,
      pick,
      gender: fc.nat({ max: 3 }),
      birthdate: fc.nat({ max: 9 }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('exchange' as const),
      child: fc.constantFrom(...CHILDREN),
      loseReply: fc.nat({ max: 3 }).map((n) => n === 0),
    }),
  },
);

/**
 * The nodes' wall clocks, as the database's NOW() gives them to the capture triggers (the clock a
 * change is stamped with starts there). Real clocks order the writes almost as they happened, so
 * also: each node's clock some seconds behind (a later edit can carry an earlier clock and lose),
 * or every clock stopped at one instant a day ago, so stamps are counters that collide across
 * nodes and ties go to the higher node id. Never ahead: the skew guard is another test's subject.
 */
export interface Clocks {
  frozen: boolean;
  /** per node, in NODE_NAMES order: how far its clock runs behind, ms */
  behindMs: number[];
}

export interface Scenario {
  clocks: Clocks;
  ops: Op[];
}

export function scenarioArb(maxOps: number): fc.Arbitrary<Scenario> {
  return fc.record({
    clocks: fc.record({
      frozen: fc.boolean(),
      behindMs: fc.array(fc.constantFrom(0, 0, 500, 2_000, 5_000), {
        minLength: NODE_NAMES.length,
        maxLength: NODE_NAMES.length,
      }),
    }),
    ops: fc.array(opArb, { maxLength: maxOps, size: 'max' }),
  });
}

// ---------------------------------------------------------------------------------------------
// Running them, and recording each local write as the clinic made it.

/**
 * Every link exchanges until quiet, leaves to root and back down, until a whole pass moves
 * nothing: then every change has reached every node. Returns the number of passes.
 */
export async function settle(t: PropertyTree): Promise<number> {
  for (let pass = 1; pass <= 20; pass++) {
    let moved = 0;
    for (const c of [...BOTTOM_UP, ...TOP_DOWN]) {
      moved += (await t.tree.sync(t.nodes[c], t.nodes[PARENT[c]])) - 1;
    }
    if (moved === 0) return pass;
  }
  throw new Error('the tree did not go quiet after 20 passes');
}

/**
 * A write on a node's database with its wall clock at `wallMs` (the capture trigger's NOW(), where
 * the change's clock starts). Not picked up here.
 */
export async function writeAt(
  node: SyncNode,
  wallMs: number,
  sql: string,
  params: unknown[] = [],
): Promise<void> {
  const conn = await node.pool.getConnection();
  try {
    await conn.query('SET TIMESTAMP = ?', [wallMs / 1000]);
    await execute(conn, sql, params);
  } finally {
    await conn.query('SET TIMESTAMP = DEFAULT');
    conn.release();
  }
}

/** One local write, before its clock is known: that is read from the origin's log afterwards. */
interface LocalWrite {
  node: NodeName;
  seq: bigint;
  op: 'insert' | 'update' | 'delete';
  uuid: string;
  values?: Values;
  /** for an update: the creation time of the row as the node held it (names its insert) */
  baseCreated?: string;
}

export class Workload {
  readonly writes: LocalWrite[] = [];
  /** what was done, one line per operation, for a failure's report */
  readonly trace: string[] = [];
  private readonly lastSeq = new Map<NodeName, bigint>();
  private inserted = 0;
  private counter = 0;

  private readonly frozenAt = Date.now() - 86_400_000;

  constructor(
    readonly t: PropertyTree,
    /** keeps uuids apart between runs that share a server */
    private readonly tag: string,
    private readonly clocks: Clocks = { frozen: false, behindMs: [] },
  ) {}

  /** A write on a node's database, at that node's wall clock. */
  private async write(name: NodeName, sql: string, params: unknown[]): Promise<void> {
    const wall = this.clocks.frozen
      ? this.frozenAt
      : Date.now() - (this.clocks.behindMs[NODE_NAMES.indexOf(name)] ?? 0);
    await writeAt(this.t.nodes[name], wall, sql, params);
  }

  async run(op: Op): Promise<void> {
    if (op.kind === 'exchange') {
      const parent = PARENT[op.child];
      const r = await this.t.tree.exchange(this.t.nodes[op.child], this.t.nodes[parent], {
        loseReply: op.loseReply,
      });
      this.trace.push(
        `${op.child}→${parent}: up ${r.sent}, down ${op.loseReply ? 'lost' : r.received}`,
      );
      return;
    }
    const write = (sql: string, params: unknown[]) => this.write(op.node, sql, params);
    const persons = await personsAt(this.t.nodes[op.node]);
    const uuids = [...persons.keys()].sort();
    const chosen = (list: string[], n: number) => (list.length ? list[n % list.length]! : null);
    this.counter++;
    switch (op.kind) {
      case 'insert':
      case 'reinsert': {
        let uuid: string;
        if (op.kind === 'insert') uuid = `prop-${this.tag}-${++this.inserted}`;
        else {
          const gone = (await tombstonesAt(this.t.nodes[op.node])).filter(
            (u) => OURS(u) && !persons.has(u),
          );
          const u = chosen(gone.sort(), op.pick);
          if (!u) return this.skip(op);
          uuid = u;
        }
        const values: Values = {
          gender: GENDERS[op.gender]!,
          birthdate: birthdate(op.birthdate),
          creator: USERS[op.kind === 'insert' ? op.creator : 1]!,
          date_created: created(this.counter),
          voided: '0',
          voided_by: null,
          date_voided: null,
          void_reason: null,
        };
        await write(
          `INSERT INTO person (gender, birthdate, creator, date_created, uuid)
           VALUES (?, ?, (SELECT user_id FROM users WHERE uuid = ?), ?, ?)`,
          [values.gender, values.birthdate, values.creator, values.date_created, uuid],
        );
        return this.logged(op, 'insert', uuid, values);
      }
      case 'edit': {
        const uuid = chosen(uuids, op.pick);
        if (!uuid) return this.skip(op);
        const row = persons.get(uuid)!;
        // Always a real change (an unchanged value is no change to send).
        const domain =
          op.column === 'gender' ? GENDERS : Array.from({ length: 10 }, (_, d) => birthdate(d));
        let v = op.value % domain.length;
        if (domain[v] === row[op.column]) v = (v + 1) % domain.length;
        const value = domain[v]!;
        await write(`UPDATE person SET ${op.column} = ? WHERE uuid = ?`, [value, uuid]);
        return this.logged(op, 'update', uuid, { [op.column]: value }, row.date_created!);
      }
      case 'void': {
        const uuid = chosen(uuids, op.pick);
        if (!uuid) return this.skip(op);
        // A unique reason: voiding again is always a change.
        const group: Values = {
          voided: '1',
          voided_by: USERS[op.by]!,
          date_voided: voidedAt(op.at),
          void_reason: `${REASONS[op.reason]!} #${this.counter}`,
        };
        await write(SET_VOID_GROUP, voidParams(uuid, group));
        return this.logged(op, 'update', uuid, group, persons.get(uuid)!.date_created!);
      }
      case 'unvoid':
      case 'reason': {
        const voided = uuids.filter((u) => persons.get(u)!.voided === '1');
        const uuid = chosen(voided, op.pick);
        if (!uuid) return this.skip(op);
        const row = persons.get(uuid)!;
        // The group as this node then holds it: the columns not written travel with the one that is.
        const group: Values =
          op.kind === 'unvoid'
            ? { voided: '0', voided_by: null, date_voided: null, void_reason: null }
            : {
                voided: row.voided!,
                voided_by: row.voided_by!,
                date_voided: row.date_voided!,
                void_reason: `${REASONS[op.reason]!} (corrected) #${this.counter}`,
              };
        if (op.kind === 'unvoid') await write(SET_VOID_GROUP, voidParams(uuid, group));
        else
          await write('UPDATE person SET void_reason = ? WHERE uuid = ?', [
            group.void_reason,
            uuid,
          ]);
        return this.logged(op, 'update', uuid, group, row.date_created!);
      }
      case 'delete': {
        const uuid = chosen(uuids, op.pick);
        if (!uuid) return this.skip(op);
        await write('DELETE FROM person WHERE uuid = ?', [uuid]);
        return this.logged(op, 'delete', uuid);
      }
    }
  }

  private skip(op: Op): void {
    this.trace.push(`${'node' in op ? op.node : ''} ${op.kind}: nothing to act on, skipped`);
  }

  /**
   * Each write is picked up at once, so it is one entry of its node's log; that entry is found
   * (the node's next sequence number) and checked to be the change just made.
   */
  private async logged(
    op: Exclude<Op, { kind: 'exchange' }>,
    kind: LocalWrite['op'],
    uuid: string,
    values?: Values,
    baseCreated?: string,
  ): Promise<void> {
    const n = this.t.nodes[op.node];
    await n.pickup();
    const after = this.lastSeq.get(op.node) ?? 0n;
    const rows = await queryRows(
      n.pool,
      'SELECT seq, op, ident FROM clinicsync_log WHERE origin = ? AND seq > ? ORDER BY seq',
      [n.nodeId, after.toString()],
    );
    const want = { insert: 'I', update: 'U', delete: 'D' }[kind];
    if (rows.length !== 1 || rows[0]!.op !== want || rows[0]!.ident !== uuid) {
      throw new Error(
        `${op.node} ${op.kind} ${uuid}: expected one log entry ${want} ${uuid}, found ${JSON.stringify(rows)}`,
      );
    }
    const seq = BigInt(String(rows[0]!.seq));
    this.lastSeq.set(op.node, seq);
    this.writes.push({ node: op.node, seq, op: kind, uuid, values, baseCreated });
    this.trace.push(
      `${op.node} ${op.kind} ${uuid}${values ? ' ' + JSON.stringify(values) : ''} (seq ${seq})`,
    );
  }

  async settle(): Promise<number> {
    return settle(this.t);
  }

  /**
   * The replay events: each write with its effective clock, read from its origin's log after the
   * run, and for an update the clock of the insert it was made upon (the seeds': the start).
   */
  async events(): Promise<ReplayEvent[]> {
    const stamps = new Map<LocalWrite, Stamp>();
    for (const w of this.writes) {
      const n = this.t.nodes[w.node];
      const [r] = await queryRows(
        n.pool,
        'SELECT hlc FROM clinicsync_log WHERE origin = ? AND seq = ?',
        [n.nodeId, w.seq.toString()],
      );
      stamps.set(w, { hlc: BigInt(String(r!.hlc)), origin: n.nodeId });
    }
    const insertOf = new Map<string, Stamp>();
    for (const [uuid, row] of this.t.seeds) insertOf.set(`${uuid} ${row.date_created}`, START);
    for (const w of this.writes)
      if (w.op === 'insert') insertOf.set(`${w.uuid} ${w.values!.date_created}`, stamps.get(w)!);
    const events: ReplayEvent[] = [...this.t.seeds].map(([uuid, values]) => ({
      op: 'insert',
      key: uuid,
      stamp: START,
      values,
    }));
    for (const w of this.writes) {
      const stamp = stamps.get(w)!;
      if (w.op === 'insert') events.push({ op: 'insert', key: w.uuid, stamp, values: w.values! });
      else if (w.op === 'delete') events.push({ op: 'delete', key: w.uuid, stamp });
      else {
        const base = insertOf.get(`${w.uuid} ${w.baseCreated}`);
        if (!base) throw new Error(`${w.uuid} was edited on a copy no insert made`);
        events.push({ op: 'update', key: w.uuid, stamp, values: w.values!, base });
      }
    }
    return events;
  }
}

const SET_VOID_GROUP = `UPDATE person SET voided = ?, voided_by = (SELECT user_id FROM users WHERE uuid = ?),
            date_voided = ?, void_reason = ? WHERE uuid = ?`;
const voidParams = (uuid: string, g: Values) => [
  g.voided,
  g.voided_by,
  g.date_voided,
  g.void_reason,
  uuid,
];

/** The property test's persons on a node, by uuid, foreign keys as uuids (model.ts). */
export async function personsAt(n: SyncNode): Promise<Map<string, Values>> {
  const { model, duplicates } = await readModel(n.pool, { tables: ['person'] });
  if (duplicates.length) throw new Error(`duplicate uuids: ${duplicates.join(', ')}`);
  const out = new Map<string, Values>();
  for (const [uuid, row] of model.get('person')!) {
    if (!OURS(uuid)) continue;
    out.set(uuid, Object.fromEntries(PERSON_COLUMNS.map((c) => [c, row[c] ?? null])));
  }
  return out;
}

/** Persons this node holds a tombstone for: it has seen them deleted. */
async function tombstonesAt(n: SyncNode): Promise<string[]> {
  const rows = await queryRows(
    n.pool,
    "SELECT ident FROM clinicsync_tombstone WHERE tbl = 'person'",
  );
  return rows.map((r) => String(r.ident));
}
