import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import { createHash } from 'node:crypto';
import type { Table } from '../db/schema.js';
import { dataColumns } from './rowSql.js';

/**
 * Row-state hashes are positional; a colset records which columns, in which order, a hash string
 * was computed over, so rows recorded before a schema change can still be compared by name.
 *
 * A new colset is written on a connection of its own and committed at once, never inside the
 * caller's transaction: the id is kept here, and a batch rolled back (then tried again) must not
 * leave row states pointing at a colset that was rolled back with it.
 */
export class Colsets {
  private byId = new Map<number, string[]>();
  private current = new Map<string, { id: number; fingerprint: string }>();

  constructor(private readonly pool: Queryable) {}

  async idFor(t: Table): Promise<number> {
    const cols = dataColumns(t).map((c) => c.name);
    // Hashes are positional, so the key is the ordered list of names, not the table fingerprint.
    const key = createHash('sha256').update(JSON.stringify(cols)).digest('base64url').slice(0, 32);
    const cached = this.current.get(t.name);
    if (cached && cached.fingerprint === key) return cached.id;
    await execute(
      this.pool,
      'INSERT IGNORE INTO clinicsync_colset (tbl, cols, fingerprint) VALUES (?, ?, ?)',
      [t.name, JSON.stringify(cols), key],
    );
    const rows = await queryRows(
      this.pool,
      'SELECT id FROM clinicsync_colset WHERE tbl = ? AND fingerprint = ?',
      [t.name, key],
    );
    const id = Number(rows[0]!.id);
    this.current.set(t.name, { id, fingerprint: key });
    this.byId.set(id, cols);
    return id;
  }

  async columns(db: Queryable, id: number): Promise<string[]> {
    let cols = this.byId.get(id);
    if (!cols) {
      const rows = await queryRows(db, 'SELECT cols FROM clinicsync_colset WHERE id = ?', [id]);
      cols = rows.length ? (JSON.parse(String(rows[0]!.cols)) as string[]) : [];
      this.byId.set(id, cols);
    }
    return cols;
  }

  forget(): void {
    this.current.clear();
  }
}
