import type { Schema } from '../db/schema.js';

/**
 * Which tables are synced. The OpenMRS preset leaves out what each server must keep for itself;
 * the reasons are shown to the data manager in the settings.
 */
export interface TableSelection {
  preset: 'openmrs' | 'all';
  include: string[];
  exclude: string[];
}

export const OPENMRS_LEFT_OUT: { pattern: RegExp; reason: string }[] = [
  { pattern: /^liquibase/, reason: 'records which database upgrades ran on this server' },
  { pattern: /^scheduler_task_config/, reason: 'background tasks are set up per server' },
  { pattern: /^hl7_in_/, reason: 'incoming HL7 messages are processed where they arrive' },
  {
    pattern: /^idgen_(seq_id_gen|pooled_identifier|log_entry|reserved_identifier)/,
    reason: 'identifier generator state must differ per server',
  },
  { pattern: /^sync_/, reason: 'tables of the old OpenMRS sync module' },
  {
    pattern: /^(notification_alert_recipient|user_property)$/,
    reason: 'per-server sign-in and screen state (failed sign-ins, lockouts, alerts read)',
  },
  {
    pattern: /^concept_word$/,
    reason: 'the concept search index of OpenMRS 1.x, which each server rebuilds from the concepts',
  },
  {
    pattern: /^concept_set_derived$/,
    reason: 'a cache of concept sets that each server of OpenMRS 1.x rebuilds',
  },
];

/**
 * Tables the application's own triggers keep up to date (Sakila's film_text from film): every node
 * runs those triggers when it applies the source table's changes, so syncing them too would write
 * each row twice. Listing one in `include` syncs it anyway.
 */
export function maintainedByTriggers(schema: Schema): Set<string> {
  return new Set(schema.triggers.flatMap((t) => t.writes.filter((w) => w !== t.table)));
}

/** The tables this node captures, applies and passes on. */
export function syncedTables(sel: TableSelection, schema: Schema): (table: string) => boolean {
  const chosen = tableFilter(sel);
  const maintained = maintainedByTriggers(schema);
  const include = new Set(sel.include);
  return (table) => chosen(table) && (!maintained.has(table) || include.has(table));
}

export function tableFilter(sel: TableSelection): (table: string) => boolean {
  const include = new Set(sel.include);
  const exclude = new Set(sel.exclude);
  return (table) => {
    if (exclude.has(table)) return false;
    if (include.size && !include.has(table)) return false;
    if (sel.preset === 'openmrs' && OPENMRS_LEFT_OUT.some((p) => p.pattern.test(table)))
      return false;
    return true;
  };
}
