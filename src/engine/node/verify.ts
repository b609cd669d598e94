import { createHash } from 'node:crypto';
import type { Queryable } from '../db/pool.js';
import { queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { dataColumns, keySql } from '../capture/rowSql.js';
import { Identities } from '../identity/identities.js';
import { toWire, warmRefs } from '../identity/wire.js';
import { imageIdent, planSchema, type TablePlan } from '../identity/plan.js';
import { introspect } from '../db/schema.js';
import { syncedTables, type TableSelection } from '../capture/tableFilter.js';
import { SyncError } from '../errors.js';

/**
 * What `verify` compares (DESIGN §10): every synced row by global identity, its values in wire
 * form (foreign keys as identities, local ids left out), so two nodes agree exactly when their
 * digests do, whatever their local ids.
 */
export interface TableDigest {
  rows: number;
  /** order-independent: the sum of the rows' hashes, modulo 2^128 */
  digest: string;
}

const MOD = 1n << 128n;

function rowHash(ident: string, wire: Record<string, unknown>, columns: string[]): bigint {
  const h = createHash('sha256');
  h.update(ident).update('\u0000');
  for (const c of columns) h.update(JSON.stringify(wire[c] ?? null)).update('\u0001');
  return BigInt('0x' + h.digest('hex').slice(0, 32));
}

/** Each row of a table by identity, with its hash. */
export async function rowDigests(
  db: Queryable,
  plan: TablePlan,
  plans: Map<string, TablePlan>,
  nodeId: string,
): Promise<Map<string, string>> {
  const t = plan.table;
  const ids = new Identities(db, plans, nodeId);
  const rows = await queryRows(
    db,
    `SELECT ${dataColumns(t)
      .map((c) => q(c.name))
      .join(', ')}, ${keySql(t)} AS __k FROM ${q(t.name)}`,
  );
  await warmRefs(ids, plan, rows);
  const recorded = new Map<string, string>();
  if (plan.identity.kind === 'registry') {
    for (const r of await queryRows(db, 'SELECT lkey, ident FROM clinicsync_row WHERE tbl = ?', [
      t.name,
    ])) {
      if (r.ident != null) recorded.set(String(r.lkey), String(r.ident));
    }
  }
  const columns = [...plan.wireColumns].sort();
  const sums = new Map<string, bigint>();
  for (const r of rows) {
    const wire = await toWire(ids, plan, r);
    const ident =
      plan.identity.kind === 'image'
        ? imageIdent(plan, wire)
        : await ids.identOf(plan, r, recorded.get(String(r.__k)) ?? null);
    // a keyless table may hold the same image twice: the copies add up
    sums.set(ident, ((sums.get(ident) ?? 0n) + rowHash(ident, wire, columns)) % MOD);
  }
  return new Map([...sums].map(([ident, h]) => [ident, h.toString(16)]));
}

export function digestOf(rows: Map<string, string>): TableDigest {
  let sum = 0n;
  for (const h of rows.values()) sum = (sum + BigInt('0x' + h)) % MOD;
  return { rows: rows.size, digest: sum.toString(16) };
}

/*
 * `verify` (issue 5, item 6): this node's synced rows against its parent's, over a slow link.
 *
 * Both sides answer the same three questions (RowSource): the digest of each table, the digests of
 * a table's buckets (its rows split by a hash of their identity, 2^bits of them), and the rows of
 * some buckets (identity → hash). The child asks for the tables first; only where a table's digest
 * differs does it narrow down, 256 buckets at a time, to the buckets that differ, and fetches the
 * rows of those alone. One changed row in a table of 500,000 costs about 20 KB on the wire, not
 * the 37 MB of every identity.
 *
 * Verify compares the nodes as they are: a change captured on one side and not yet exchanged
 * shows as a real difference. It is meaningful right after `sync` has finished, on a quiet tree.
 */

/** A table that differs between the two sides. Identities are sorted. */
export interface TableDifference {
  table: string;
  rowsHere: number;
  rowsThere: number;
  /** rows this node holds that the other side does not */
  onlyHere: string[];
  /** rows the other side holds that this node does not */
  onlyThere: string[];
  /** rows both hold, with other values */
  different: string[];
}

export interface VerifyReport {
  match: boolean;
  tables: TableDifference[];
  /** tables compared (synced on both sides), and this node's rows in them */
  compared: number;
  rows: number;
  /** synced here but not on the other side, and the other way round: not compared */
  syncedOnlyHere: string[];
  syncedOnlyThere: string[];
}

/** One side of the comparison, in process (LocalRows) or across the network. */
export interface RowSource {
  /**
   * Digests of the named tables this side syncs; the others are left out. `alsoSynced`: tables
   * this side syncs that were not asked for.
   */
  tables(names: string[]): Promise<{ tables: Map<string, TableDigest>; alsoSynced: string[] }>;
  /**
   * Digests of the non-empty buckets of a table at `bits` whose bucket at `parentBits` (fewer) is
   * one of `parents`; bucket → digest.
   */
  buckets(
    table: string,
    bits: number,
    parentBits: number,
    parents: number[],
  ): Promise<Map<number, string>>;
  /** The rows of the given buckets at `bits` (bits 0, bucket 0: every row); identity → hash. */
  rows(table: string, bits: number, buckets: number[]): Promise<Map<string, string>>;
}

/** Bucket bits: 0 (the whole table) up to this; deeper levels go 8 bits at a time. */
export const MAX_BUCKET_BITS = 24;
const LEVEL_BITS = 8;
/** Rows fetched at once rather than narrowed down further. */
const DIRECT_ROWS = 256;
/** Tables, and rows in them (as counted here), per question for table digests. */
const GROUP_TABLES = 40;
const GROUP_ROWS = 200_000;

/** The bucket of an identity at `bits`: the top bits of its sha256. */
export function bucketOf(ident: string, bits: number): number {
  if (bits === 0) return 0;
  const top = createHash('sha256').update(ident).digest().readUInt32BE(0);
  return top >>> (32 - bits);
}

/** Digests of the non-empty buckets at `bits` within the given parents at `parentBits`. */
export function bucketDigests(
  rows: Map<string, string>,
  bits: number,
  parentBits: number,
  parents: number[],
): Map<number, string> {
  const wanted = new Set(parents);
  const sums = new Map<number, bigint>();
  for (const [ident, h] of rows) {
    const b = bucketOf(ident, bits);
    if (!wanted.has(b >>> (bits - parentBits))) continue;
    sums.set(b, ((sums.get(b) ?? 0n) + BigInt('0x' + h)) % MOD);
  }
  return new Map([...sums].map(([b, s]) => [b, s.toString(16)]));
}

/** The rows of some buckets at `bits`. */
export function rowsIn(
  rows: Map<string, string>,
  bits: number,
  buckets: number[],
): Map<string, string> {
  if (bits === 0) return buckets.includes(0) ? new Map(rows) : new Map();
  const wanted = new Set(buckets);
  return new Map([...rows].filter(([ident]) => wanted.has(bucketOf(ident, bits))));
}

/** The tables a node syncs and how their rows are identified, read without changing anything. */
export interface VerifyScope {
  plans: Map<string, TablePlan>;
  /** synced tables, sorted */
  tables: string[];
}

export async function verifyScope(
  db: Queryable,
  database: string,
  selection: TableSelection,
): Promise<VerifyScope> {
  // Read-only on purpose (not capture.reconcile, which installs triggers): verify runs beside
  // the engine that holds the node, and on a parent for a child's request.
  const schema = await introspect(db, database);
  const plans = planSchema(schema);
  const synced = syncedTables(selection, schema);
  const tables = [...plans.keys()].filter((t) => synced(t)).sort();
  return { plans, tables };
}

/** Rows of tables already read, so the questions of one comparison read each table once. */
export class RowCache {
  private entry: { table: string; at: number; rows: Map<string, string> } | null = null;

  /** Keeps the last table read, for `keepMs`. */
  constructor(private readonly keepMs = Infinity) {}

  get(table: string): Map<string, string> | undefined {
    if (this.entry?.table !== table) return undefined;
    if (Date.now() - this.entry.at > this.keepMs) {
      this.entry = null;
      return undefined;
    }
    return this.entry.rows;
  }

  set(table: string, rows: Map<string, string>): void {
    this.entry = { table, at: Date.now(), rows };
  }

  clear(): void {
    this.entry = null;
  }
}

/** One node's rows, read from its database. */
export class LocalRows implements RowSource {
  constructor(
    private readonly db: Queryable,
    private readonly scope: VerifyScope,
    private readonly nodeId: string,
    private readonly cache = new RowCache(),
  ) {}

  static async of(
    node: {
      pool: Queryable;
      db: { database: string };
      settings: { tables: TableSelection };
      nodeId: string;
    },
    cache?: RowCache,
  ): Promise<LocalRows> {
    return new LocalRows(
      node.pool,
      await verifyScope(node.pool, node.db.database, node.settings.tables),
      node.nodeId,
      cache,
    );
  }

  get synced(): string[] {
    return this.scope.tables;
  }

  syncs(table: string): boolean {
    return this.scope.tables.includes(table);
  }

  /** Identity → hash of every row of a synced table. */
  async allRows(table: string): Promise<Map<string, string>> {
    const plan = this.syncs(table) ? this.scope.plans.get(table) : undefined;
    if (!plan) throw new SyncError('usage', `The table ${table} is not synced here.`);
    const kept = this.cache.get(table);
    if (kept) return kept;
    const rows = await rowDigests(this.db, plan, this.scope.plans, this.nodeId);
    this.cache.set(table, rows);
    return rows;
  }

  async tables(
    names: string[],
  ): Promise<{ tables: Map<string, TableDigest>; alsoSynced: string[] }> {
    const asked = new Set(names);
    const tables = new Map<string, TableDigest>();
    for (const t of this.scope.tables) {
      if (asked.has(t)) tables.set(t, digestOf(await this.allRows(t)));
    }
    return { tables, alsoSynced: this.scope.tables.filter((t) => !asked.has(t)) };
  }

  async buckets(
    table: string,
    bits: number,
    parentBits: number,
    parents: number[],
  ): Promise<Map<number, string>> {
    return bucketDigests(await this.allRows(table), bits, parentBits, parents);
  }

  async rows(table: string, bits: number, buckets: number[]): Promise<Map<string, string>> {
    return rowsIn(await this.allRows(table), bits, buckets);
  }
}

/** This node's side of a comparison: the tables it syncs and their rows (LocalRows). */
export interface LocalSide {
  readonly synced: string[];
  allRows(table: string): Promise<Map<string, string>>;
}

/**
 * Compares this node (`here`) with another (`there`), table by table: digests first, then
 * buckets, then rows only where they differ.
 */
export async function compareRows(here: LocalSide, there: RowSource): Promise<VerifyReport> {
  const mine = new Map<string, TableDigest>();
  for (const t of here.synced) mine.set(t, digestOf(await here.allRows(t)));
  // The other side reads the tables of one question before it answers: a few at a time, so no
  // answer waits longer than the client's timeout on a big database.
  const groups: string[][] = [[]];
  let groupRows = 0;
  for (const [t, d] of mine) {
    let g = groups[groups.length - 1]!;
    if (g.length && (g.length >= GROUP_TABLES || groupRows + d.rows > GROUP_ROWS)) {
      g = [];
      groups.push(g);
      groupRows = 0;
    }
    g.push(t);
    groupRows += d.rows;
  }
  const theirs = new Map<string, TableDigest>();
  const alsoSynced = new Set<string>();
  for (const g of groups) {
    const answer = await there.tables(g);
    for (const [t, d] of answer.tables) theirs.set(t, d);
    for (const t of answer.alsoSynced) if (!mine.has(t)) alsoSynced.add(t);
  }
  const report: VerifyReport = {
    match: true,
    tables: [],
    compared: 0,
    rows: 0,
    syncedOnlyHere: here.synced.filter((t) => !theirs.has(t)),
    syncedOnlyThere: [...alsoSynced].sort(),
  };
  for (const [table, d] of mine) {
    const atParent = theirs.get(table);
    if (!atParent) continue;
    report.compared++;
    report.rows += d.rows;
    if (atParent.digest === d.digest && atParent.rows === d.rows) continue;
    report.tables.push(await compareTable(table, await here.allRows(table), atParent, there));
  }
  report.tables = report.tables.filter(
    (t) => t.onlyHere.length + t.onlyThere.length + t.different.length > 0,
  );
  report.match = report.tables.length === 0;
  return report;
}

async function compareTable(
  table: string,
  mine: Map<string, string>,
  theirs: TableDigest,
  there: RowSource,
): Promise<TableDifference> {
  // Narrow down level by level to the buckets whose digests differ, while they hold many rows.
  let bits = 0;
  let differing = [0];
  let size = Math.max(mine.size, theirs.rows);
  while (size > DIRECT_ROWS && bits < MAX_BUCKET_BITS && differing.length > 0) {
    const next = Math.min(bits + LEVEL_BITS, MAX_BUCKET_BITS);
    const here = bucketDigests(mine, next, bits, differing);
    const away = await there.buckets(table, next, bits, differing);
    const changed = new Set<number>();
    for (const [b, h] of here) if (away.get(b) !== h) changed.add(b);
    for (const b of away.keys()) if (!here.has(b)) changed.add(b);
    differing = [...changed].sort((a, b) => a - b);
    bits = next;
    // rows expected in the buckets left, from a table's rows spread evenly over its buckets
    size = Math.ceil((Math.max(mine.size, theirs.rows) * differing.length) / 2 ** bits);
  }
  const here = rowsIn(mine, bits, differing);
  const away = differing.length
    ? await there.rows(table, bits, differing)
    : new Map<string, string>();
  const diff: TableDifference = {
    table,
    rowsHere: mine.size,
    rowsThere: theirs.rows,
    onlyHere: [],
    onlyThere: [],
    different: [],
  };
  for (const [ident, h] of here) {
    const t = away.get(ident);
    if (t === undefined) diff.onlyHere.push(ident);
    else if (t !== h) diff.different.push(ident);
  }
  for (const ident of away.keys()) if (!here.has(ident)) diff.onlyThere.push(ident);
  diff.onlyHere.sort();
  diff.onlyThere.sort();
  diff.different.sort();
  return diff;
}
