import {
  baseKey,
  clockText,
  columnBase,
  isLater,
  reserveKey,
  stampOf,
  type Clocks,
  type Stamp,
} from '../capture/rowState.js';
import type { StoredValue } from '../capture/values.js';

/**
 * Which value one column shows (DESIGN §6), decided the same way whatever order the writes arrive
 * in. Every write has a clock and a base: the clock of the copy of the row it was written upon (an
 * insert's base is its own clock). A write is dead once a delete at or after its base is known: the
 * delete beat it. Of the live writes the latest clock is shown.
 *
 * Because a delete can arrive after the writes it kills, a column keeps, besides the value shown,
 * the live writes that could still take over: those upon a later copy than every later write.
 * Usually there are none; there is one when an edit made upon a copy already deleted elsewhere
 * arrives before that delete does, and is later than the insert that made the row again.
 */
export interface Candidate {
  stamp: Stamp;
  base: Stamp;
  /** the wire value; undefined for the value the row shows now, read only when needed */
  value: StoredValue | undefined;
}

export function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.hlc === b.hlc && a.origin === b.origin;
}

export function alive(c: { base: Stamp }, tomb: Stamp | null): boolean {
  return tomb === null || isLater(c.base, tomb);
}

/** The candidate to show, and the reserves that could take over from it, latest first. */
export function choose(
  candidates: Candidate[],
  tomb: Stamp | null,
): { shown: Candidate | undefined; reserves: Candidate[] } {
  const live = candidates
    .filter((c) => alive(c, tomb))
    .sort((a, b) => (isLater(a.stamp, b.stamp) ? -1 : isLater(b.stamp, a.stamp) ? 1 : 0));
  const [shown, ...rest] = live;
  const reserves: Candidate[] = [];
  let floor = shown?.base;
  for (const c of rest) {
    if (sameStamp(c.stamp, shown!.stamp)) continue; // the same write, held twice
    // A write both earlier and upon no later copy than one already kept can never take over.
    if (isLater(c.base, floor!)) {
      reserves.push(c);
      floor = c.base;
    }
  }
  return { shown, reserves };
}

/** The value a column shows now, as a candidate (its value left to be read). */
export function shownOf(clocks: Clocks, col: string): Candidate {
  return { stamp: stampOf(clocks[col]), base: columnBase(clocks, col), value: undefined };
}

export function reservesOf(clocks: Clocks, col: string): Candidate[] {
  const text = clocks[reserveKey(col)];
  if (text === undefined) return [];
  return (JSON.parse(text) as [string, string, StoredValue][]).map(([s, b, v]) => ({
    stamp: stampOf(s),
    base: stampOf(b),
    value: v,
  }));
}

/** Records the choice in the row's clocks; reserves must carry their values. */
export function record(clocks: Clocks, col: string, shown: Candidate, reserves: Candidate[]): void {
  if (shown.stamp.hlc === 0n && shown.stamp.origin === '') delete clocks[col];
  else clocks[col] = clockText(shown.stamp);
  if (sameStamp(shown.base, shown.stamp)) delete clocks[baseKey(col)];
  else clocks[baseKey(col)] = shown.base.hlc === 0n ? '' : clockText(shown.base);
  if (reserves.length)
    clocks[reserveKey(col)] = JSON.stringify(
      reserves.map((r) => [clockText(r.stamp), clockText(r.base), r.value ?? null]),
    );
  else delete clocks[reserveKey(col)];
}
