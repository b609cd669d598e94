/**
 * Hybrid logical clock (DESIGN §5–6): 48 bits of wall-clock milliseconds and 16 bits of counter in
 * one 64-bit integer, so stamps order like times, survive a clock that goes backwards, and are
 * never equal for two changes of one node.
 */
export type Hlc = bigint;

const COUNTER_BITS = 16n;

export function hlcFromMillis(ms: number): Hlc {
  return BigInt(Math.floor(ms)) << COUNTER_BITS;
}

export function hlcMillis(h: Hlc): number {
  return Number(h >> COUNTER_BITS);
}

/** The next stamp after `last` for an event that happened at `atMs` (wall clock). */
export function hlcNext(last: Hlc, atMs: number): Hlc {
  const physical = hlcFromMillis(atMs);
  return physical > last ? physical : last + 1n;
}

/** MySQL DATETIME(6) text in UTC ('2026-11-26 10:11:15.123456') to milliseconds. */
export function millisFromSqlTime(s: string): number {
  const ms = Date.parse(s.replace(' ', 'T') + 'Z');
  if (Number.isNaN(ms)) throw new Error(`not a time: ${s}`);
  return ms;
}

export function hlcToIso(h: Hlc): string {
  return new Date(hlcMillis(h)).toISOString();
}
