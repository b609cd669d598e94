import type { Column } from '../db/schema.js';
import type { StoredValue } from '../capture/values.js';
import type { TablePlan } from '../identity/plan.js';
import { SyncError } from '../errors.js';
import type { Envelope } from '../protocol/types.js';

/*
 * A received batch checked against this database before anything of it is applied (DESIGN §7,
 * issue 8 item 5). The decoder already refused what is not a batch; this refuses a batch that
 * cannot be one of ours: a table this database does not have, or, for a table whose columns the
 * sender says are the same as here (equal fingerprints), a column this table does not have or a
 * value that cannot be of its column's type. A node running ClinicSync never sends such a batch,
 * so it comes from a broken or hostile sender, and it is refused whole: nothing of it is applied.
 *
 * A table whose fingerprint differs is not judged here: the sender runs another version of the
 * schema, and apply parks its rows with that reason while every other table keeps flowing.
 *
 * Sentences name tables and columns, never values (patient data stays out of answers and logs).
 * The type check trusts that both nodes have the same foreign keys (a clone copies them): a
 * column that is a reference travels as the referenced row's identity, not as a number.
 */

const INTEGER = /^-?[0-9]{1,20}$/;
const DECIMAL = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;
const FLOAT = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const DATE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/;
const DATETIME = /^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?$/;
const TIME = /^-?[0-9]{1,3}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?$/;
const YEAR = /^[0-9]{1,4}$/;

/** Whether a text value fits a column's type; null where the type is not checked here. */
function fits(col: Column, v: string): boolean | null {
  switch (col.dataType) {
    case 'tinyint':
    case 'smallint':
    case 'mediumint':
    case 'int':
    case 'integer':
    case 'bigint':
      return INTEGER.test(v);
    case 'decimal':
    case 'numeric':
      return DECIMAL.test(v);
    case 'float':
    case 'double':
    case 'real':
      return FLOAT.test(v);
    case 'date':
      return DATE.test(v);
    case 'datetime':
    case 'timestamp':
      return DATETIME.test(v);
    case 'time':
      return TIME.test(v);
    case 'year':
      return YEAR.test(v);
    case 'char':
    case 'varchar': {
      const m = /\((\d+)\)/.exec(col.columnType);
      return m ? countChars(v) <= Number(m[1]) : null;
    }
    case 'enum':
      return enumValues(col.columnType).includes(v);
    default:
      return null;
  }
}

/** Characters as MySQL counts them (code points, not UTF-16 units). */
function countChars(s: string): number {
  return Array.from(s).length;
}

/** The values of `enum('a','b''c')`, unescaped. */
function enumValues(columnType: string): string[] {
  const out: string[] = [];
  const re = /'((?:[^']|'')*)'/g;
  for (let m = re.exec(columnType); m; m = re.exec(columnType)) out.push(m[1]!.replace(/''/g, "'"));
  return out;
}

function kindOf(col: Column): string {
  switch (col.dataType) {
    case 'tinyint':
    case 'smallint':
    case 'mediumint':
    case 'int':
    case 'integer':
    case 'bigint':
      return 'a whole number';
    case 'decimal':
    case 'numeric':
    case 'float':
    case 'double':
    case 'real':
      return 'a number';
    case 'date':
      return 'a date';
    case 'datetime':
    case 'timestamp':
      return 'a date and time';
    case 'time':
      return 'a time';
    case 'year':
      return 'a year';
    case 'enum':
      return 'one of its allowed values';
    default:
      return `a ${col.columnType} of that length`;
  }
}

function refuse(sentence: string): never {
  throw new SyncError('protocol', `${sentence} Nothing of the batch was applied.`);
}

/** Throws a protocol error naming the first thing in `env` that cannot fit this database. */
export function checkBatchAgainstSchema(env: Envelope, plans: Map<string, TablePlan>): void {
  const declared = new Map(env.tables.map((t) => [t.name, t.fingerprint]));
  for (const c of env.changes) {
    if (c.op === 'S') continue;
    const plan = plans.get(c.table);
    if (!plan) {
      refuse(
        `The batch holds changes to a table named ${c.table}, which this database does not have. If that clinic added tables (a new OpenMRS module), add them here too, or leave them out there with "clinic-sync config set tables.exclude".`,
      );
    }
    if (declared.get(c.table) !== plan.table.fingerprint || !c.values) continue;
    const columns = new Map(plan.table.columns.map((col) => [col.name, col]));
    for (const [name, value] of Object.entries(c.values)) {
      const col = columns.get(name);
      if (!col) {
        refuse(
          `The batch sets a column ${name} of table ${c.table}, which this database's ${c.table} does not have, although the sender says its columns are the same.`,
        );
      }
      checkValue(plan, col, value, c.table);
    }
  }
}

function checkValue(plan: TablePlan, col: Column, value: StoredValue, table: string): void {
  if (value === null) return;
  // References travel as the referenced row's identity, not as this column's type.
  if (plan.refs.has(col.name) || plan.textRef?.column === col.name) return;
  if (typeof value === 'object') {
    if (col.binary) return;
    refuse(`The batch gives ${table}.${col.name} bytes where it holds text.`);
  }
  if (col.binary) return;
  if (fits(col, value) === false) {
    refuse(`The batch gives ${table}.${col.name} a value that is not ${kindOf(col)}.`);
  }
}
