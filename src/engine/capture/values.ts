/**
 * A column value as ClinicSync carries it: text (numbers, dates and decimals are text too, exactly
 * as the server rendered them), bytes, or NULL.
 */
export type Value = string | Buffer | null;

/** JSON form of a value in the log: bytes become {"b": base64}. */
export type StoredValue = string | null | { b: string };

export function fromDriver(v: unknown): Value {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  throw new Error(`unexpected value type from the database driver: ${typeof v}`);
}

export function toStored(v: Value): StoredValue {
  return Buffer.isBuffer(v) ? { b: v.toString('base64') } : v;
}

export function fromStored(v: StoredValue): Value {
  return v !== null && typeof v === 'object' ? Buffer.from(v.b, 'base64') : v;
}
