import { TRANSFER_EXTENSION } from './sealed.js';

/**
 * A transfer file's name says who wrote it, for whom and when (UTC, to the minute), and nothing
 * else: node names only, never anything about patients. Like
 * clinicsync-butaro-to-district-20261126T1432Z.csync.
 */
export function transferFileName(from: string, to: string, at: Date): string {
  const t = at.toISOString(); // 2026-11-26T14:32:05.000Z
  const stamp = `${t.slice(0, 4)}${t.slice(5, 7)}${t.slice(8, 10)}T${t.slice(11, 13)}${t.slice(14, 16)}Z`;
  return `clinicsync-${slug(from)}-to-${slug(to)}-${stamp}${TRANSFER_EXTENSION}`;
}

/** A node name as a file name part: lowercase letters, digits and single dashes. */
function slug(name: string): string {
  const s = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return s || 'node';
}
