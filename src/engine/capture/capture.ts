import type { Pool } from '../db/pool.js';
import { execute, inTransaction, queryRows } from '../db/pool.js';
import { introspect, type Schema, type Table } from '../db/schema.js';
import { getMeta, setMeta } from '../node/meta.js';
import { baselineTable } from './baseline.js';
import { Colsets } from './colsets.js';
import { pickupAll } from './pickup.js';
import { hasKey } from './rowSql.js';
import { syncedTables, type TableSelection } from './tableFilter.js';
import { planSchema, type TablePlan } from '../identity/plan.js';
import { dropTriggers, installTriggers, installedTriggers } from './triggers.js';

/**
 * The capture side of one node: its triggers, their upkeep across schema changes, and pickup into
 * the outgoing log.
 */
export class Capture {
  private schema: Schema | null = null;
  private signature = '';
  private planCache: { schema: Schema; plans: Map<string, TablePlan> } | null = null;
  readonly colsets: Colsets;

  constructor(
    private readonly pool: Pool,
    private readonly database: string,
    private readonly nodeId: string,
    private readonly selection: TableSelection,
  ) {
    this.colsets = new Colsets(pool);
  }

  /** First install: triggers on every captured table, then the shared starting state of its rows. */
  async install(): Promise<void> {
    const schema = await this.loadSchema();
    for (const t of this.capturedTables(schema)) {
      await installTriggers(this.pool, t);
      // Triggers first: a row changed between the two steps is already in the baseline, and its
      // capture row then finds nothing new. Nothing can slip between them.
      await this.baseline(t);
    }
    await this.remember(schema);
  }

  async isPaused(): Promise<boolean> {
    return (await getMeta(this.pool, 'capture_paused')) === '1';
  }

  /**
   * Brackets an application upgrade: the triggers go, so nothing the upgrade does is captured
   * (every node runs the same upgrade) and no trigger can get in its way.
   */
  async pause(): Promise<void> {
    await this.pickupAll();
    const schema = await this.loadSchema();
    for (const name of (await installedTriggers(this.pool)).keys())
      await dropTriggers(this.pool, name);
    for (const t of schema.tables.values()) await dropTriggers(this.pool, t.name);
    await setMeta(this.pool, 'capture_paused', '1');
  }

  /** Triggers back on the schema as it now is; rows are recorded afresh as the new starting point. */
  async resume(): Promise<void> {
    const schema = await this.loadSchema();
    await inTransaction(this.pool, async (conn) => {
      await execute(conn, 'DELETE FROM clinicsync_capture');
    });
    for (const t of this.capturedTables(schema)) {
      await installTriggers(this.pool, t);
      await this.baseline(t);
    }
    await setMeta(this.pool, 'capture_paused', '0');
    await this.remember(schema);
  }

  /**
   * Notices schema changes (an upgrade, a DBA's ALTER) and brings triggers and recorded state in
   * line: new tables get triggers and a starting state, tables whose key changed get new triggers,
   * dropped tables are forgotten. Cheap when nothing changed: one query on information_schema.
   */
  async reconcile(): Promise<boolean> {
    if (await this.isPaused()) return false;
    const sig = await this.readSignature();
    if (this.schema && sig === this.signature) return false;
    const before = await this.rememberedShapes();
    const now = await introspect(this.pool, this.database);
    this.schema = now;
    const present = await installedTriggers(this.pool);
    for (const t of this.capturedTables(now)) {
      const old = before.get(t.name);
      const shape = triggerShape(t);
      if (old === undefined || (present.get(t.name)?.length ?? 0) < 3 || old !== shape) {
        await installTriggers(this.pool, t);
        // A new table, or one whose key changed (so recorded keys no longer match), starts from
        // its current rows. Upgrades that change keys run between `capture pause` and `resume`.
        if (old !== shape) {
          await execute(this.pool, 'DELETE FROM clinicsync_capture WHERE tbl = ?', [t.name]);
          await this.baseline(t);
        }
      }
    }
    for (const name of present.keys()) {
      if (!now.tables.has(name) || !this.synced()(name)) await dropTriggers(this.pool, name);
    }
    for (const name of before.keys()) {
      if (!now.tables.has(name))
        await execute(this.pool, 'DELETE FROM clinicsync_row WHERE tbl = ?', [name]);
    }
    this.colsets.forget();
    await this.remember(now, sig);
    return true;
  }

  /** Everything committed so far into the outgoing log; returns the number of new log entries. */
  async pickupAll(): Promise<number> {
    await this.reconcile();
    return this.pickupReconciled();
  }

  /** pickupAll, for a caller that has just run reconcile itself. */
  async pickupReconciled(): Promise<number> {
    const schema = this.schema ?? (await this.loadSchema());
    return pickupAll({
      pool: this.pool,
      schema,
      plans: this.plans(),
      colsets: this.colsets,
      nodeId: this.nodeId,
      captured: this.synced(),
    });
  }

  private async baseline(t: Table): Promise<void> {
    const plans = this.plans();
    await baselineTable(this.pool, plans.get(t.name)!, plans, this.colsets, this.nodeId);
  }

  /** How each table's rows are identified, for the schema last read. */
  plans(): Map<string, TablePlan> {
    if (!this.schema) throw new Error('schema not loaded');
    if (!this.planCache || this.planCache.schema !== this.schema) {
      this.planCache = { schema: this.schema, plans: planSchema(this.schema) };
    }
    return this.planCache.plans;
  }

  /** The tables synced here, for the schema last read. */
  synced(): (table: string) => boolean {
    if (!this.schema) throw new Error('schema not loaded');
    return syncedTables(this.selection, this.schema);
  }

  private capturedTables(schema: Schema): Table[] {
    const synced = syncedTables(this.selection, schema);
    return [...schema.tables.values()].filter((t) => synced(t.name));
  }

  private async loadSchema(): Promise<Schema> {
    this.schema = await introspect(this.pool, this.database);
    return this.schema;
  }

  /** Trigger shapes last seen, kept in the database so a restarted engine can tell what changed. */
  private async rememberedShapes(): Promise<Map<string, string>> {
    const v = await getMeta(this.pool, 'schema_shape');
    return new Map(v ? Object.entries(JSON.parse(v) as Record<string, string>) : []);
  }

  private async remember(schema: Schema, sig?: string): Promise<void> {
    this.schema = schema;
    this.signature = sig ?? (await this.readSignature());
    const shapes: Record<string, string> = {};
    for (const t of schema.tables.values()) shapes[t.name] = triggerShape(t);
    await setMeta(this.pool, 'schema_shape', JSON.stringify(shapes));
  }

  private async readSignature(): Promise<string> {
    // One round trip: every exchange starts here. EVENT_OBJECT_SCHEMA, not TRIGGER_SCHEMA: MariaDB
    // reads only this database's triggers for it, while a TRIGGER_SCHEMA filter scans every
    // database on the server (10 s of a 16 s demo).
    const [sig] = await queryRows(
      this.pool,
      `SELECT c.n, c.s, (SELECT COUNT(*) FROM information_schema.TRIGGERS
                          WHERE EVENT_OBJECT_SCHEMA = ? AND TRIGGER_NAME LIKE 'clinicsync\\_%') AS t
         FROM (SELECT COUNT(*) AS n,
                      COALESCE(SUM(CRC32(CONCAT_WS(':', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, COLUMN_KEY, EXTRA))), 0) AS s
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?) c`,
      [this.database, this.database],
    );
    return `${sig!.n}:${sig!.s}:${sig!.t}`;
  }
}

/** What the triggers of a table depend on: its key columns, its uuid, or (keyless) nothing. */
function triggerShape(t: Table): string {
  if (!hasKey(t)) return 'keyless';
  const uuid = t.columns.some((c) => c.name === 'uuid');
  return `key:${t.primaryKey.join(',')}${uuid ? ';uuid' : ''}`;
}
