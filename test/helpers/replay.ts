/**
 * The expected end state of a set of rows, worked out by replaying every operation the test made
 * under the documented conflict rules (DESIGN §6), with no code shared with the engine: the
 * engine's apply decides one change at a time against what one node holds; this decides each row
 * once, from all of its history, by clock.
 *
 * The rules, as this model states them:
 * - Every change has a stamp: the hybrid logical clock its origin's engine gave it (the effective
 *   clock in the origin's log), ties broken by origin node id, the higher id winning. Rows that
 *   were there when the tree was cloned have the oldest stamp of all.
 * - A row exists at the end when its latest insert is later than its latest delete: a delete wins
 *   over every update, and an insert made after a delete (a later clock) creates the row again.
 * - A delete also wins over every update made to the row as it was before that delete, however
 *   late that update's clock: an update counts only where the insert it was made upon (`base`) is
 *   later than the row's latest delete. (DESIGN §6 read literally: an update made without
 *   knowing of a delete is concurrent with it, and the delete wins.)
 * - Each unit (one column, or a group of columns that mean one thing together, such as OpenMRS's
 *   void group) takes the value of the latest of: the row's latest insert, and the counted updates
 *   that wrote that unit. So concurrent edits of different units both survive, and a group is
 *   never mixed from two writers.
 */

export interface Stamp {
  hlc: bigint;
  /** origin node id (hex); '' for rows that were there before any change */
  origin: string;
}

/** The stamp of rows that existed when the tree was cloned: older than any change. */
export const START: Stamp = { hlc: 0n, origin: '' };

/** column → value as the server renders it as text (null for NULL) */
export type Values = Record<string, string | null>;

export type ReplayEvent =
  | { op: 'insert'; key: string; stamp: Stamp; values: Values }
  | {
      op: 'update';
      key: string;
      stamp: Stamp;
      /** the columns written; a group's columns are all present or all absent */
      values: Values;
      /** the stamp of the insert that made the row the update was made upon */
      base: Stamp;
    }
  | { op: 'delete'; key: string; stamp: Stamp };

/** Later by clock, then by origin node id (as a number: ids are hex). */
export function later(a: Stamp, b: Stamp): boolean {
  if (a.hlc !== b.hlc) return a.hlc > b.hlc;
  return idNumber(a.origin) > idNumber(b.origin);
}

function idNumber(id: string): bigint {
  return id === '' ? -1n : BigInt('0x' + id);
}

function latest<T extends { stamp: Stamp }>(xs: T[]): T | undefined {
  let best: T | undefined;
  for (const x of xs) if (!best || later(x.stamp, best.stamp)) best = x;
  return best;
}

export interface ReplaySpec {
  /**
   * The resolution units: each is a list of columns resolved together. Every column an insert
   * writes must belong to exactly one unit.
   */
  units: string[][];
}

/** key → expected row, for the rows expected to exist at the end */
export type Expected = Map<string, Values>;

export function replay(events: ReplayEvent[], spec: ReplaySpec): Expected {
  const byKey = new Map<string, ReplayEvent[]>();
  for (const e of events) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
  const out: Expected = new Map();
  for (const [key, history] of byKey) {
    const inserts = history.filter((e) => e.op === 'insert');
    const deletes = history.filter((e) => e.op === 'delete');
    const lastInsert = latest(inserts);
    const lastDelete = latest(deletes);
    if (!lastInsert) {
      throw new Error(`replay: ${key} was changed but never inserted (nor there at the start)`);
    }
    if (lastDelete && later(lastDelete.stamp, lastInsert.stamp)) continue; // deleted at the end
    const counted = history.filter(
      (e): e is Extract<ReplayEvent, { op: 'update' }> =>
        e.op === 'update' && (!lastDelete || later(e.base, lastDelete.stamp)),
    );
    const row: Values = {};
    for (const unit of spec.units) {
      const writers = [
        lastInsert,
        ...counted.filter((u) => unit.some((c) => c in u.values)),
      ] as ReplayEvent[];
      const winner = latest(writers)!;
      const values = (winner as { values: Values }).values;
      for (const c of unit) {
        if (!(c in values))
          throw new Error(`replay: ${key}: a write of ${unit.join(', ')} lacks ${c}`);
        row[c] = values[c] ?? null;
      }
    }
    out.set(key, row);
  }
  return out;
}
