import { SyncError } from '../errors.js';
import type { Schema, Table } from './schema.js';

/** Backtick-quotes one identifier. Only ever called on names checked against a schema. */
export function q(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** The table, if the local schema has it; a name from outside never reaches SQL unchecked. */
export function checkedTable(schema: Schema, name: string): Table {
  const t = schema.tables.get(name);
  if (!t)
    throw new SyncError(
      'protocol',
      `The table "${name.slice(0, 64)}" does not exist in this database.`,
    );
  return t;
}

export function checkedColumn(table: Table, name: string): string {
  if (!table.columns.some((c) => c.name === name)) {
    throw new SyncError(
      'protocol',
      `The table "${table.name}" has no column "${name.slice(0, 64)}".`,
    );
  }
  return name;
}
