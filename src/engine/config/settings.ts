import { z } from 'zod';
import { SyncError } from '../errors.js';
import { parseDbUrl } from '../db/url.js';

export const SETTINGS_VERSION = 1;

/*
 * The one schema for a node's settings file (DESIGN §9), shared by the CLI and the desktop app.
 * Each field's description is the rule it enforces, worded to finish the sentence
 * "The setting X …", so every validation failure reads as one plain sentence.
 */

function isPasswordlessDbUrl(value: string): boolean {
  try {
    return parseDbUrl(value).password === undefined;
  } catch {
    return false;
  }
}

function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}

const wholeNumber = (min: number, max: number) => z.number().int().min(min).max(max);

const syncSchema = z
  .object({
    intervalSeconds: wholeNumber(10, 7 * 86_400)
      .default(600)
      .describe('must be a whole number of seconds from 10 to 604800'),
    timeoutSeconds: wholeNumber(5, 3_600)
      .default(120)
      .describe('must be a whole number of seconds from 5 to 3600'),
    // One exchange gets timeoutSeconds plus the time its bytes need at the measured link speed,
    // at most this long; a batch that cannot make it in time is made smaller.
    maxTimeoutSeconds: wholeNumber(5, 86_400)
      .default(3_600)
      .describe('must be a whole number of seconds from 5 to 86400'),
    retries: wholeNumber(0, 100).default(5).describe('must be a whole number from 0 to 100'),
    retryDelaySeconds: wholeNumber(1, 3_600)
      .default(15)
      .describe('must be a whole number of seconds from 1 to 3600'),
    retryMaxDelaySeconds: wholeNumber(1, 86_400)
      .default(600)
      .describe('must be a whole number of seconds from 1 to 86400'),
    compression: z.boolean().default(true).describe('must be true or false'),
    batchRecords: wholeNumber(1, 100_000)
      .default(200)
      .describe('must be a whole number of records from 1 to 100000'),
    batchBytes: wholeNumber(1_024, 64 * 1_048_576)
      .default(262_144)
      .describe('must be a whole number of bytes from 1024 to 67108864'),
    clockAheadMinutes: wholeNumber(1, 10_080)
      .default(10)
      .describe('must be a whole number of minutes from 1 to 10080'),
  })
  .strict();

const tableName = z
  .string()
  .regex(/^[A-Za-z0-9_$]{1,64}$/)
  .describe('must be a table name');

export const tablesSchema = z
  .object({
    preset: z.enum(['openmrs', 'all']).default('all').describe('must be openmrs or all'),
    include: z
      .array(tableName)
      .default([])
      .describe('must be a list of table names (letters, digits, _ and $)'),
    exclude: z
      .array(tableName)
      .default([])
      .describe('must be a list of table names (letters, digits, _ and $)'),
  })
  .strict();

export const serverSchema = z
  .object({
    https: z.boolean().default(false).describe('must be true or false'),
  })
  .strict();

export const storageSchema = z
  .object({
    minFreeMegabytes: wholeNumber(0, 10_000_000)
      .default(500)
      .describe('must be a whole number of megabytes from 0 to 10000000'),
    childSilentDays: wholeNumber(1, 3_650)
      .default(90)
      .describe('must be a whole number of days from 1 to 3650'),
    journalKeepHours: wholeNumber(0, 8_760)
      .default(24)
      .describe('must be a whole number of hours from 0 to 8760'),
    logMaxBytes: wholeNumber(65_536, 1_073_741_824)
      .default(5_242_880)
      .describe('must be a whole number of bytes from 65536 to 1073741824'),
    logFiles: wholeNumber(1, 100).default(5).describe('must be a whole number from 1 to 100'),
  })
  .strict();

// Complex obs files (issue 12 item 6): the files OpenMRS keeps beside its database travel too.
export const complexObsSchema = z
  .object({
    // OpenMRS's application data folder (it holds complex_obs); empty or null: files stay put.
    dataDir: z
      .string()
      .nullable()
      .default(null)
      .describe("must be the folder of OpenMRS's application data, like /var/lib/OpenMRS"),
    maxFileMegabytes: wholeNumber(1, 100_000)
      .default(100)
      .describe('must be a whole number of megabytes from 1 to 100000'),
    // One piece of a file per request part: small, so a 1 kbit/s link still moves a piece a minute.
    chunkBytes: wholeNumber(256, 16_777_216)
      .default(4_096)
      .describe('must be a whole number of bytes from 256 to 16777216'),
  })
  .strict();

/*
 * The running OpenMRS this node's database belongs to, refreshed after each applied batch (its
 * caches and search index). An empty url turns that off. Its password is a secret, not a setting.
 */
export const openmrsSchema = z
  .object({
    url: z
      .string()
      .refine((s) => s === '' || isHttpUrl(s))
      .default('')
      .describe("must be OpenMRS's address, like http://localhost:8080/openmrs, or empty for none"),
    user: z
      .string()
      .max(100)
      .regex(/^[^\s:]*$/)
      .default('')
      .describe('must be an OpenMRS user name (no spaces or colons), or empty'),
    refreshBatch: wholeNumber(1, 1_000)
      .default(50)
      .describe('must be a whole number of refresh calls from 1 to 1000'),
  })
  .strict();

export const settingsSchema = z
  .object({
    settingsVersion: z
      .literal(SETTINGS_VERSION)
      .default(SETTINGS_VERSION)
      .describe(`must be ${SETTINGS_VERSION}`),
    db: z
      .string()
      .refine(isPasswordlessDbUrl)
      .describe(
        'must be a database address without a password, like mysql://openmrs@127.0.0.1:3306/openmrs (give the password with --db-password-file or MYSQL_PWD)',
      ),
    name: z
      .string()
      .regex(/^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,39}$/u)
      .describe(
        'must be 1 to 40 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit',
      ),
    role: z.enum(['root', 'child']).describe('must be root or child'),
    parent: z
      .string()
      .refine(isHttpUrl)
      .nullable()
      .default(null)
      .describe(
        "must be the parent node's address, like https://district.example.org:8443, or null",
      ),
    sync: syncSchema.prefault({}).describe('must be a group of sync settings'),
    tables: tablesSchema.prefault({}).describe('must be a group of table settings'),
    server: serverSchema.prefault({}).describe('must be a group of server settings'),
    storage: storageSchema.prefault({}).describe('must be a group of storage settings'),
    complexObs: complexObsSchema
      .prefault({})
      .describe('must be a group of complex obs file settings'),
    openmrs: openmrsSchema.prefault({}).describe('must be a group of OpenMRS settings'),
  })
  .strict()
  .refine((s) => (s.role === 'root') === (s.parent === null), {
    message: 'a root node has no parent, and a child node needs one',
  });

export type Settings = z.output<typeof settingsSchema>;

// electron-store keeps its migration marker in the same file (DESIGN §9); it is not ours to check.
const STORE_INTERNAL_KEY = '__internal__';

/**
 * Validates raw settings (from the file, the desktop app or the CLI) and fills in defaults.
 * `source` names where they came from, for the error sentence.
 */
export function parseSettings(data: unknown, source?: string): Settings {
  const where = source ? ` (in ${source})` : '';
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new SyncError('config', `The settings${where} are not a JSON object.`);
  }
  const fields: Record<string, unknown> = { ...data };
  delete fields[STORE_INTERNAL_KEY];
  const version = fields.settingsVersion;
  if (typeof version === 'number' && version > SETTINGS_VERSION) {
    throw new SyncError(
      'config',
      `The settings${where} were written by a newer ClinicSync (settings version ${version}); install that version or newer.`,
    );
  }
  const result = settingsSchema.safeParse(fields);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new SyncError('config', `The settings${where} are invalid.`);
  if (issue.code === 'unrecognized_keys') {
    const key = [...issue.path.map(String), issue.keys[0] ?? ''].join('.');
    throw new SyncError(
      'config',
      `"${key}" is not a ClinicSync setting${where}; the settings are ${leafKeys().join(', ')}.`,
    );
  }
  if (issue.path.length === 0) {
    throw new SyncError('config', `The settings${where} do not fit together: ${issue.message}.`);
  }
  // An error inside a list names the list, not the item's position.
  const key = issue.path.filter((p) => typeof p === 'string').join('.');
  if (valueAt(fields, issue.path) === undefined) {
    throw new SyncError('config', `The setting ${key} is missing${where}.`);
  }
  throw new SyncError('config', `The setting ${key} ${settingRule(key)}${where}.`);
}

/** Settings for a new node: everything not given takes its default. */
export function defaultSettings(opts: {
  db: string;
  name: string;
  role?: Settings['role'];
  parent?: string | null;
}): Settings {
  return parseSettings({
    db: opts.db,
    name: opts.name,
    role: opts.role ?? 'root',
    parent: opts.parent ?? null,
  });
}

/** Every setting by dotted path, e.g. `sync.intervalSeconds`. */
export function leafKeys(): string[] {
  const keys: string[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string) => {
    for (const [name, field] of Object.entries(shape)) {
      const base = unwrap(field);
      if (base instanceof z.ZodObject) walk(base.shape, `${prefix}${name}.`);
      else keys.push(`${prefix}${name}`);
    }
  };
  walk(settingsSchema.shape, '');
  return keys;
}

/** The keys `config set` accepts; name, role and parent belong to init and clone. */
export function settableKeys(): string[] {
  return leafKeys().filter(
    (k) => k === 'db' || /^(sync|tables|server|storage|complexObs|openmrs)\./.test(k),
  );
}

export type SettingValue = string | number | boolean | string[] | null;

export function getSetting(settings: Settings, key: string): SettingValue {
  if (!leafKeys().includes(key)) {
    throw new SyncError(
      'usage',
      `"${key}" is not a ClinicSync setting; the settings are ${leafKeys().join(', ')}.`,
    );
  }
  return valueAt(settings, key.split('.')) as SettingValue;
}

/** Prints a value so that `config set KEY <printed>` gives it back. */
export function formatSetting(value: SettingValue): string {
  if (Array.isArray(value)) return value.join(',');
  return value === null ? '' : String(value);
}

/**
 * Returns new settings with `key` set from its command-line spelling: numbers, booleans as
 * true/false/on/off, lists comma-separated. Every failure is a usage error.
 */
export function setSetting(settings: Settings, key: string, raw: string): Settings {
  const settable = settableKeys();
  if (!settable.includes(key)) {
    const why = leafKeys().includes(key)
      ? `${key} is set by init or clone, not by config set`
      : `"${key}" is not a setting config set can change`;
    throw new SyncError('usage', `${why}; the settable ones are ${settable.join(', ')}.`);
  }
  const value = coerce(key, raw);
  const next: Record<string, unknown> = structuredClone(settings);
  const path = key.split('.');
  const last = path.pop() as string;
  let node = next;
  for (const part of path) node = node[part] as Record<string, unknown>;
  node[last] = value;
  try {
    return parseSettings(next);
  } catch (e) {
    if (e instanceof SyncError) throw new SyncError('usage', rejected(key, raw));
    throw e;
  }
}

function coerce(key: string, raw: string): unknown {
  const base = unwrap(schemaAt(key));
  const text = raw.trim();
  if (base instanceof z.ZodNumber) {
    if (!/^-?\d+(\.\d+)?$/.test(text)) throw new SyncError('usage', rejected(key, raw));
    return Number(text);
  }
  if (base instanceof z.ZodBoolean) {
    const word = text.toLowerCase();
    if (word === 'true' || word === 'on') return true;
    if (word === 'false' || word === 'off') return false;
    throw new SyncError('usage', rejected(key, raw));
  }
  if (base instanceof z.ZodArray) {
    return text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }
  return text;
}

function rejected(key: string, raw: string): string {
  return `The setting ${key} ${settingRule(key)}, not "${raw}".`;
}

/** What a setting must be, as the end of the sentence "The setting X …". */
export function settingRule(key: string): string {
  return schemaAt(key).description ?? 'has an invalid value';
}

function schemaAt(key: string): z.ZodType {
  let schema: z.ZodType = settingsSchema;
  for (const part of key.split('.')) {
    const base = unwrap(schema);
    const next =
      base instanceof z.ZodObject ? (base.shape as Record<string, z.ZodType>)[part] : undefined;
    if (!next) return schema;
    schema = next;
  }
  return schema;
}

function unwrap(schema: z.ZodType): z.ZodType {
  if (
    schema instanceof z.ZodDefault ||
    schema instanceof z.ZodPrefault ||
    schema instanceof z.ZodNullable ||
    schema instanceof z.ZodOptional
  ) {
    return unwrap(schema.unwrap() as z.ZodType);
  }
  return schema;
}

function valueAt(data: unknown, path: readonly PropertyKey[] | string[]): unknown {
  let node = data;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}
