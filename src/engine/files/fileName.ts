/*
 * The file behind a complex obs. OpenMRS writes `obs.value_complex` as "title|key" (AbstractHandler:
 * the key is the part after the last "|", the whole value when there is none) and keeps the file
 * under that key in its complex obs folder. A name read from a database or from a neighbour is
 * used as a path, so only a plain file name is accepted.
 */

/** Longest name accepted: the column clinicsync_file_* keep it in. */
const MAX_NAME = 255;

/** The file name a complex obs value points at, or null when it names none safely. */
export function fileOfComplexValue(value: string): string | null {
  const parts = value.split('|');
  const name = parts[parts.length - 1]!.trim();
  return isSafeFileName(name) ? name : null;
}

/**
 * True for a plain file name: no folder separator of any system, not "." or "..", no drive
 * letter, no control characters, at most 255 characters. Anything else could write outside the
 * complex obs folder.
 */
export function isSafeFileName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME) return false;
  if (name === '.' || name === '..') return false;
  if (/[/\\:]/.test(name)) return false;
  for (const ch of name) {
    const code = ch.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) return false;
  }
  // Windows drops trailing dots and spaces, so "a.." could name another file there.
  return !/[. ]$/.test(name);
}
