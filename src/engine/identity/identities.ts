import { createHash } from 'node:crypto';
import type { Queryable, RowDataPacket } from '../db/pool.js';
import { chunks, queryRows } from '../db/pool.js';
import { q } from '../db/ident.js';
import { khash, keySql, whereKey } from '../capture/rowSql.js';
import { joinParts, splitParts, type TablePlan } from './plan.js';

export function ihash(ident: string): Buffer {
  return createHash('md5').update(ident, 'utf8').digest();
}

/** One row of a table as a map key: the table and its identity hash. */
export function rowId(table: string, hash: Buffer): string {
  return `${table}\u0000${hash.toString('hex')}`;
}

/** The local key encoding of a single-column key value (as the triggers write it). */
export function lkeyOf(value: string): string {
  return Buffer.from(value, 'utf8').toString('hex').toUpperCase();
}

function valueOfLkey(lkey: string): string {
  return Buffer.from(lkey, 'hex').toString('utf8');
}

const CHUNK = 500;

/**
 * Turns local ids into global identities and back (DESIGN §4). Answers are cached for the life of
 * one object: make one per pickup step or applied batch.
 */
export class Identities {
  private toGlobal = new Map<string, Map<string, string | null>>();
  private toLocal = new Map<string, Map<string, string | null>>();

  constructor(
    readonly db: Queryable,
    private readonly plans: Map<string, TablePlan>,
    private readonly nodeId: string,
  ) {}

  plan(table: string): TablePlan | undefined {
    return this.plans.get(table);
  }

  /** Identities of rows of `table` given their (single-column) primary-key values. */
  async globalIds(table: string, values: string[]): Promise<Map<string, string>> {
    const cache = cacheOf(this.toGlobal, table);
    const missing = [...new Set(values)].filter((v) => !cache.has(v));
    if (missing.length) await this.fetchGlobal(table, missing, cache);
    const out = new Map<string, string>();
    for (const v of values) {
      const id = cache.get(v);
      if (id) out.set(v, id);
    }
    return out;
  }

  private async fetchGlobal(
    table: string,
    values: string[],
    cache: Map<string, string | null>,
  ): Promise<void> {
    const plan = this.plans.get(table);
    if (!plan) return;
    const id = plan.identity;
    const pk = plan.table.primaryKey[0]!;
    for (const v of values) cache.set(v, null);
    if (id.kind === 'natural' && id.parts.length === 1) {
      const part = id.parts[0]!;
      if (part.ref === null) for (const v of values) cache.set(v, v);
      else for (const [v, g] of await this.globalIds(part.ref, values)) cache.set(v, g);
      return;
    }
    if (id.kind === 'uuid') {
      for (const part of chunks(values, CHUNK)) {
        const rows = await queryRows(
          this.db,
          `SELECT CAST(${q(pk)} AS CHAR) AS v, uuid FROM ${q(table)} WHERE ${q(pk)} IN (${part.map(() => '?').join(',')})`,
          part,
        );
        for (const r of rows) cache.set(String(r.v), String(r.uuid));
      }
    }
    // Anything else, and uuid rows already gone, are known by their recorded state.
    const unknown = values.filter((v) => cache.get(v) === null);
    for (const part of chunks(unknown, CHUNK)) {
      const rows = await queryRows(
        this.db,
        `SELECT lkey, ident FROM clinicsync_row WHERE tbl = ? AND khash IN (${part.map(() => '?').join(',')})`,
        [table, ...part.map((v) => khash(lkeyOf(v)))],
      );
      for (const r of rows)
        if (r.ident != null) cache.set(valueOfLkey(String(r.lkey)), String(r.ident));
    }
    // A row of this node that no pickup has recorded yet is this node's own new row.
    if (id.kind === 'registry') {
      for (const v of values) if (cache.get(v) === null) cache.set(v, `${this.nodeId}:${v}`);
    }
  }

  /** Local primary-key values of `table` for global identities; absent where no such row is here. */
  async localIds(table: string, idents: string[]): Promise<Map<string, string>> {
    const cache = cacheOf(this.toLocal, table);
    const missing = [...new Set(idents)].filter((i) => !cache.has(i));
    if (missing.length) await this.fetchLocal(table, missing, cache);
    const out = new Map<string, string>();
    for (const i of idents) {
      const v = cache.get(i);
      if (v != null) out.set(i, v);
    }
    return out;
  }

  private async fetchLocal(
    table: string,
    idents: string[],
    cache: Map<string, string | null>,
  ): Promise<void> {
    const plan = this.plans.get(table);
    for (const i of idents) cache.set(i, null);
    if (!plan || plan.table.primaryKey.length !== 1) return;
    const id = plan.identity;
    const pk = plan.table.primaryKey[0]!;
    let candidates = new Map<string, string>();
    if (id.kind === 'uuid') {
      for (const part of chunks(idents, CHUNK)) {
        const rows = await queryRows(
          this.db,
          `SELECT CAST(${q(pk)} AS CHAR) AS v, uuid FROM ${q(table)} WHERE uuid IN (${part.map(() => '?').join(',')})`,
          part,
        );
        for (const r of rows) cache.set(String(r.uuid), String(r.v));
      }
      return;
    }
    if (id.kind === 'natural') {
      const part = id.parts[0]!;
      candidates =
        part.ref === null
          ? new Map(idents.map((i) => [i, i]))
          : await this.localIds(part.ref, idents);
    } else {
      for (const part of chunks(idents, CHUNK)) {
        const rows = await queryRows(
          this.db,
          `SELECT lkey, ident FROM clinicsync_row WHERE tbl = ? AND ihash IN (${part.map(() => '?').join(',')})`,
          [table, ...part.map(ihash)],
        );
        for (const r of rows)
          if (r.ident != null) candidates.set(String(r.ident), valueOfLkey(String(r.lkey)));
      }
    }
    // Only rows that exist here count: a reference to anything else must wait.
    const values = [...new Set(candidates.values())];
    const present = new Set<string>();
    for (const part of chunks(values, CHUNK)) {
      const rows = await queryRows(
        this.db,
        `SELECT CAST(${q(pk)} AS CHAR) AS v FROM ${q(table)} WHERE ${q(pk)} IN (${part.map(() => '?').join(',')})`,
        part,
      );
      for (const r of rows) present.add(String(r.v));
    }
    for (const [i, v] of candidates) if (present.has(v)) cache.set(i, v);
  }

  /** The identity of a row read from the table, with its recorded identity when it has one. */
  async identOf(plan: TablePlan, row: RowDataPacket, recorded: string | null): Promise<string> {
    const id = plan.identity;
    switch (id.kind) {
      case 'uuid':
        return String(row['uuid']);
      case 'registry':
        return recorded ?? `${this.nodeId}:${joinParts(id.key.map((c) => text(row[c])))}`;
      case 'natural': {
        const parts: string[] = [];
        for (const p of id.parts) {
          const v = text(row[p.column]);
          if (p.ref === null) parts.push(v);
          else parts.push((await this.globalIds(p.ref, [v])).get(v) ?? recorded ?? `?${v}`);
        }
        return joinParts(parts);
      }
      case 'image':
        return recorded ?? '';
    }
  }

  /**
   * Where the row with this identity is here, as a local key, or null. For a natural key the key
   * values come from the identity itself.
   */
  async locate(
    plan: TablePlan,
    ident: string,
  ): Promise<{ lkey: string | null; keyValues: Map<string, string> | null }> {
    const id = plan.identity;
    const t = plan.table;
    if (id.kind === 'image') return { lkey: null, keyValues: null };
    let keyValues: Map<string, string> | null = null;
    if (id.kind === 'natural') {
      const parts = splitParts(ident, id.parts.length);
      if (!parts) return { lkey: null, keyValues: null };
      keyValues = new Map();
      for (const [i, p] of id.parts.entries()) {
        if (p.ref === null) keyValues.set(p.column, parts[i]!);
        else {
          const local = (await this.localIds(p.ref, [parts[i]!])).get(parts[i]!);
          if (local === undefined) return { lkey: null, keyValues: null };
          keyValues.set(p.column, local);
        }
      }
      const where = t.primaryKey.map((c) => `${q(c)} = ?`).join(' AND ');
      const rows = await queryRows(
        this.db,
        `SELECT ${keySql(t)} AS k FROM ${q(t.name)} WHERE ${where}`,
        t.primaryKey.map((c) => keyValues!.get(c)),
      );
      return { lkey: rows.length ? String(rows[0]!.k) : null, keyValues };
    }
    if (id.kind === 'uuid') {
      const rows = await queryRows(
        this.db,
        `SELECT ${keySql(t)} AS k FROM ${q(t.name)} WHERE uuid = ? LIMIT 1`,
        [ident],
      );
      return { lkey: rows.length ? String(rows[0]!.k) : null, keyValues: null };
    }
    const rows = await queryRows(
      this.db,
      'SELECT lkey FROM clinicsync_row WHERE tbl = ? AND ihash = ? LIMIT 1',
      [t.name, ihash(ident)],
    );
    if (!rows.length) return { lkey: null, keyValues: null };
    const lkey = String(rows[0]!.lkey);
    const w = whereKey(t, lkey);
    const exists = await queryRows(this.db, `SELECT 1 FROM ${q(t.name)} WHERE ${w.sql}`, w.params);
    return { lkey: exists.length ? lkey : null, keyValues: null };
  }

  /**
   * Records a row this step just made (table with a single-column key): its identity and local key
   * value are known without asking the database, and every other answer held stays true.
   */
  learn(table: string, ident: string, value: string): void {
    cacheOf(this.toLocal, table).set(ident, value);
    cacheOf(this.toGlobal, table).set(value, ident);
  }

  /** Drops what is cached for these identities (rows just written): they are looked up again. */
  unlearn(table: string, idents: string[]): void {
    const cache = this.toLocal.get(table);
    if (cache) for (const i of idents) cache.delete(i);
  }

  forget(): void {
    this.toGlobal.clear();
    this.toLocal.clear();
  }
}

function cacheOf(
  m: Map<string, Map<string, string | null>>,
  table: string,
): Map<string, string | null> {
  let c = m.get(table);
  if (!c) {
    c = new Map();
    m.set(table, c);
  }
  return c;
}

function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Buffer.isBuffer(v)) return v.toString('hex');
  return String(v);
}
