import { SyncError } from '../errors.js';

/** Throws the protocol error every refusal of a received batch ends in: one plain sentence. */
export function refuse(sentence: string): never {
  throw new SyncError('protocol', sentence);
}

/** Throws a usage error: the caller handed the encoder an envelope the format cannot carry. */
export function misuse(sentence: string): never {
  throw new SyncError('usage', sentence);
}

/**
 * Hostile text fit to quote in a sentence: at most `max` characters, control and other invisible
 * characters shown as \u{hex}, so an error message never carries more than a glimpse of the input.
 */
export function quote(s: string, max = 60): string {
  const chars = Array.from(s.length > max * 2 ? s.slice(0, max * 2) : s);
  const clipped = chars.length > max ? chars.slice(0, max - 1).join('') + '…' : chars.join('');
  const shown = clipped.replace(
    /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/gu,
    (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`,
  );
  return `"${shown}"`;
}

/** "1 value", "5 values". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** 16777216 → "16 MiB"; sizes that are not whole MiB or KiB in bytes. */
export function size(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)} MiB`;
  if (bytes >= 1 << 10 && bytes % (1 << 10) === 0) return `${bytes / (1 << 10)} KiB`;
  return plural(bytes, 'byte');
}
