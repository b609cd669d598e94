import { fromBase36, toBase36 } from './escape.js';
import type { Basis } from './types.js';

/**
 * The `b` and `p` attributes of an update (docs/protocol.md): what it was made upon. Each stamp is
 * written relative to the update's own clock (they are always earlier, so the number is small):
 * `D` for a stamp of the update's own origin, `D.O` for one of origin index O, and `_` for the
 * starting value. `p` lists one stamp per carried column in column order, or a single stamp when
 * every column replaced values of the same clock (the usual case).
 */

const START = '_';
/** In `p` (v2 on): every carried column replaced a value of the update's base clock. */
const SAME_AS_BASE = '=';
const STAMP_TEXT = /^([0-9]{1,20}):([0-9a-f]{16})$/;
const STAMP_REF = /^(-?[0-9a-z]{1,14})(?:\.([0-9]{1,6}))?$/;

/** Node ids a basis names, so the encoder can list them among the batch's origins. */
export function basisOrigins(basis: Basis | undefined): string[] {
  if (!basis) return [];
  const stamps = [basis.base, ...Object.values(basis.prior ?? {})];
  return stamps.flatMap((s) => (s === undefined ? [] : [STAMP_TEXT.exec(s)?.[2] ?? '']));
}

/** Whether a stamp text is one the format carries ("hlc:origin", 16 hex digits of origin). */
export function isStampText(s: string): boolean {
  const m = STAMP_TEXT.exec(s);
  return m !== null && BigInt(m[1]!) < 1n << 64n;
}

function refOf(
  stamp: string | undefined,
  hlc: bigint,
  origin: string,
  index: (node: string) => number,
): string {
  if (stamp === undefined) return START;
  const m = STAMP_TEXT.exec(stamp)!;
  const d = toBase36(hlc - BigInt(m[1]!));
  return m[2] === origin ? d : `${d}.${index(m[2]!)}`;
}

/** Attributes (with their leading space) for an update's basis; '' when it has none. */
export function encodeBasis(
  basis: Basis | undefined,
  columns: string[],
  hlc: bigint,
  origin: string,
  index: (node: string) => number,
  sameAsBase = false,
): string {
  if (!basis) return '';
  let out = '';
  const b = basis.base === undefined ? undefined : refOf(basis.base, hlc, origin, index);
  if (b !== undefined) out += ` b="${b}"`;
  const prior = basis.prior ?? {};
  if (Object.keys(prior).length) {
    const own = (c: string) => (Object.hasOwn(prior, c) ? prior[c] : undefined);
    const refs = columns.map((c) => refOf(own(c), hlc, origin, index));
    const one = refs.every((r) => r === refs[0]);
    // An edit of a row as it arrived (the usual case) replaced values all stamped with its base.
    if (sameAsBase && one && refs[0] === b) out += ` p="${SAME_AS_BASE}"`;
    else out += ` p="${one ? refs[0] : refs.join(' ')}"`;
  }
  return out;
}

/**
 * Reads `b` and `p` (`p="="`, the same stamp as `b`, only where `sameAsBase` is allowed: v2);
 * returns a sentence for what is wrong instead of throwing, so the decoder refuses with its own
 * wording.
 */
export function decodeBasis(
  b: string | undefined,
  p: string | undefined,
  columns: string[],
  hlc: bigint,
  origin: string,
  origins: readonly string[],
  sameAsBase = false,
): Basis | string {
  const stampOf = (ref: string): string | undefined | null => {
    if (ref === START) return undefined;
    const m = STAMP_REF.exec(ref);
    if (!m) return null;
    const d = fromBase36(m[1]!);
    if (d === null) return null;
    const at = hlc - d;
    if (at < 0n || at >= 1n << 64n) return null;
    const node = m[2] === undefined ? origin : origins[Number(m[2])];
    return node === undefined ? null : `${at}:${node}`;
  };
  const basis: Basis = {};
  if (b !== undefined) {
    const s = stampOf(b);
    if (s === null) return 'has a basis clock ("b") that cannot be read';
    if (s !== undefined) basis.base = s;
  }
  if (p === SAME_AS_BASE && sameAsBase) {
    if (b === undefined) return 'has prior clocks ("p") the same as a basis ("b") it lacks';
    p = b;
  }
  if (p !== undefined) {
    const refs = p.split(' ');
    if (refs.length !== 1 && refs.length !== columns.length)
      return 'has a different number of prior clocks ("p") than columns';
    const prior: [string, string][] = [];
    for (const [i, col] of columns.entries()) {
      const s = stampOf(refs.length === 1 ? refs[0]! : refs[i]!);
      if (s === null) return 'has a prior clock ("p") that cannot be read';
      if (s !== undefined) prior.push([col, s]);
    }
    // fromEntries makes own properties, even of a column named __proto__
    if (prior.length) basis.prior = Object.fromEntries(prior);
  }
  return basis;
}
