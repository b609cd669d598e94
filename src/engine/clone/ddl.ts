import { createHash } from 'node:crypto';

/*
 * CREATE TABLE text as SHOW CREATE TABLE prints it, taken apart for a fast load: the table is made
 * with its primary key only, the rows go in in key order, and then its other indexes are built
 * in one ALTER (a sorted build, far cheaper than keeping ten B-trees up to date row by row) and,
 * once every table is loaded, its foreign keys are added (in place, without a check, because
 * foreign-key checks are off; the copy is checked separately). The server prints indexes and
 * constraints in a fixed order, so adding them back in the printed order gives the same
 * SHOW CREATE TABLE text as the parent's.
 */

export interface SplitTable {
  /** the CREATE TABLE to run first */
  create: string;
  /** `ADD …` clauses of the indexes left out of it, in printed order */
  indexes: string[];
  /** their names, to find which ones exist already (a resumed load) */
  indexNames: string[];
  /** `ADD CONSTRAINT … FOREIGN KEY …` clauses */
  foreignKeys: string[];
  foreignKeyNames: string[];
}

const NAME = '`((?:[^`]|``)+)`';
const PLAIN_INDEX = new RegExp(`^ {2}(UNIQUE KEY|KEY) ${NAME} \\((.*)$`);
const FOREIGN_KEY = new RegExp(`^ {2}CONSTRAINT ${NAME} FOREIGN KEY `);
const COLUMN = new RegExp(`^ {2}${NAME} `);

/**
 * Splits a table's CREATE text. Where its shape is not the plain one expected, nothing is left
 * out (the table is made as it is). Indexes stay in it where leaving them out would change the
 * table: a UNIQUE key of a table without a primary key (InnoDB would cluster on it), an index
 * that starts with the AUTO_INCREMENT column (the server requires one), and FULLTEXT and SPATIAL
 * indexes (adding them later rebuilds the table).
 */
export function splitCreateTable(ddl: string): SplitTable {
  const whole = asIs(ddl);
  const lines = ddl.split('\n');
  if (lines.length < 3 || !/^CREATE TABLE .* \($/.test(lines[0]!) || !/^\) /.test(lines.at(-1)!)) {
    return whole;
  }
  const body = lines.slice(1, -1);
  if (!body.every((l) => l.startsWith('  '))) return whole;
  const hasPrimary = body.some((l) => l.startsWith('  PRIMARY KEY ('));
  let autoColumn: string | null = null;
  for (const l of body) {
    const c = COLUMN.exec(l);
    if (c && / AUTO_INCREMENT( |,|$)/.test(l)) autoColumn = c[1]!.replace(/``/g, '`');
  }
  const kept: string[] = [];
  const out = { ...whole, create: '' };
  for (const line of body) {
    const l = line.replace(/,$/, '');
    const index = PLAIN_INDEX.exec(l);
    const fk = FOREIGN_KEY.exec(l);
    if (index) {
      const unique = index[1] === 'UNIQUE KEY';
      const firstColumn = /^`((?:[^`]|``)+)`/.exec(index[3]!)?.[1]?.replace(/``/g, '`');
      if ((unique && !hasPrimary) || (autoColumn !== null && firstColumn === autoColumn)) {
        kept.push(l);
        continue;
      }
      out.indexes.push(`ADD ${l.trim()}`);
      out.indexNames.push(index[2]!.replace(/``/g, '`'));
    } else if (fk) {
      out.foreignKeys.push(`ADD ${l.trim()}`);
      out.foreignKeyNames.push(fk[1]!.replace(/``/g, '`'));
    } else {
      kept.push(l);
    }
  }
  out.create = [lines[0], kept.join(',\n'), lines.at(-1)].join('\n');
  return out;
}

/** A table made as the parent printed it, nothing left for later. */
export function asIs(ddl: string): SplitTable {
  return { create: ddl, indexes: [], indexNames: [], foreignKeys: [], foreignKeyNames: [] };
}

/** The table's AUTO_INCREMENT counter from its CREATE text, or null where it has none. */
export function autoIncrementOf(ddl: string): string | null {
  return /\) .*\bAUTO_INCREMENT=(\d+)\b/.exec(ddl.slice(ddl.lastIndexOf('\n') + 1))?.[1] ?? null;
}

/**
 * Identifies a table's definition whatever its AUTO_INCREMENT counter (which moves with every
 * insert): a resumed clone keeps a table it loaded earlier only while this stays the same.
 */
export function ddlDigest(ddl: string): string {
  const lines = ddl.split('\n');
  const last = lines.pop() ?? '';
  lines.push(last.replace(/ AUTO_INCREMENT=\d+\b/, ''));
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}
