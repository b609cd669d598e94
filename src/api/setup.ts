import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { DB_PASSWORD_SECRET, resolveDbTarget, type Home } from '../engine/config/home.js';
import { defaultSettings, settingRule, settingsSchema } from '../engine/config/settings.js';
import { q } from '../engine/db/ident.js';
import { explainDbError, openPool, queryRows, type PoolConnection } from '../engine/db/pool.js';
import { checkPrivileges } from '../engine/db/privileges.js';
import { dbUrlOf, parseDbUrl } from '../engine/db/url.js';
import { isSyncError } from '../engine/errors.js';
import {
  findOpenmrsRuntime,
  openmrsDataDirFor,
  type FindOptions,
} from '../engine/openmrs/runtimeProperties.js';
import { namesOpenmrs } from '../engine/openmrs/presence.js';
import { ADMIN_TOKEN_SECRET } from './adminServer.js';
import { httpUrl } from './cloneJob.js';
import {
  ApiError,
  type DatabaseTest,
  type InitRequest,
  type OpenmrsDetection,
  type ParentCheck,
  type SetupProgress,
} from './types.js';

/*
 * The setup operations of SyncApi (the window's wizard), shared by the running node's api
 * (local.ts) and the setup-mode api of a computer with no node yet (setupMode.ts). They work on
 * the home and on databases named in the request, never on a running node.
 */

// ---------------------------------------------------------------------------------------------
// The wizard's progress, in the home

const PROGRESS_FILE = 'setup-progress.json';

const progressSchema = z
  .object({
    step: z.string().regex(/^[a-z0-9-]{1,40}$/),
    role: z.enum(['root', 'child']).nullable(),
    dbUrl: z.string().max(1_000).nullable(),
    name: z.string().max(40).nullable(),
    parentUrl: z.string().max(1_000).nullable(),
  })
  .strict();

export function loadProgress(home: Home): SetupProgress | null {
  try {
    const r = progressSchema.safeParse(
      JSON.parse(fs.readFileSync(path.join(home.dir, PROGRESS_FILE), 'utf8')),
    );
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Keeps the wizard's progress (null forgets it); a database address with a password is refused. */
export function saveProgress(home: Home, progress: unknown): SetupProgress | null {
  const file = path.join(home.dir, PROGRESS_FILE);
  if (progress === null) {
    fs.rmSync(file, { force: true });
    return null;
  }
  const r = progressSchema.safeParse(progress);
  if (!r.success) {
    throw new ApiError(
      'usage',
      "The wizard's progress must name its step, the role, and the database, name and main server entered so far.",
    );
  }
  if (r.data.dbUrl !== null) {
    let password: string | undefined;
    try {
      password = parseDbUrl(r.data.dbUrl).password;
    } catch {
      // An address still being typed is kept as it is.
    }
    if (password !== undefined) {
      throw new ApiError(
        'usage',
        "The wizard's progress is kept without the database password; leave it out of the address.",
      );
    }
  }
  fs.mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify(r.data, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(temp, file);
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// OpenMRS on this computer

export async function detectOpenmrs(opts: FindOptions = {}): Promise<OpenmrsDetection> {
  const found = await findOpenmrsRuntime(opts);
  return {
    file: found?.file ?? null,
    dbUrl: found?.dbUrl ?? null,
    password: found?.password ?? null,
    appDataDir: found?.appDataDir ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Testing a database

const testSchema = z
  .object({ dbUrl: z.string().min(1).max(1_000), create: z.boolean().optional() })
  .strict();

/**
 * Connects to the server named by the address, then looks at the database: whether it exists
 * (and creates it, empty, when asked), what it holds, and whether the user has every privilege
 * ClinicSync needs. Failures to connect come back in the result, for the wizard to explain.
 */
export async function testDatabase(req: unknown): Promise<DatabaseTest> {
  const valid = testSchema.safeParse(req);
  if (!valid.success) {
    throw new ApiError(
      'usage',
      'A database test needs the database address, like mysql://user@host/db.',
    );
  }
  const target = parseApiDbUrl(valid.data.dbUrl);
  const result: DatabaseTest = {
    connected: false,
    error: null,
    server: null,
    exists: false,
    created: false,
    tables: 0,
    openmrs: false,
    clinicSync: false,
    privileges: null,
  };
  // The server first, without the database: a database that does not exist is a finding.
  const pool = openPool({ ...target, database: '' }, { connectionLimit: 1 });
  let conn: PoolConnection | null = null;
  try {
    try {
      conn = await pool.getConnection();
    } catch (e) {
      const s = explainDbError(e, target);
      return { ...result, error: { kind: s.kind, message: s.message } };
    }
    result.connected = true;
    const [v] = await queryRows(conn, 'SELECT VERSION() AS v');
    result.server = v?.v == null ? null : String(v.v);
    const db = target.database;
    const exists = async () =>
      (
        await queryRows(
          conn!,
          'SELECT 1 AS x FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
          [db],
        )
      ).length > 0;
    result.exists = await exists();
    if (!result.exists && valid.data.create) {
      try {
        await conn.query(`CREATE DATABASE ${q(db)} DEFAULT CHARACTER SET utf8mb4`);
        result.created = result.exists = true;
      } catch (e) {
        const s = explainDbError(e, target);
        result.error = {
          kind: 'privileges',
          message: `The database user ${target.user} may not create the database ${db}: ${s.message}`,
        };
      }
    }
    const grants = await checkPrivileges(conn, db);
    result.privileges = { ok: grants.ok, missing: grants.missing, sentence: grants.sentence };
    if (result.exists) {
      const names = (
        await queryRows(
          conn,
          'SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
          [db],
        )
      ).map((r) => String(r.n));
      result.tables = names.length;
      result.openmrs = namesOpenmrs(names);
      result.clinicSync = names.some((n) => n.startsWith('clinicsync_'));
    }
    return result;
  } catch (e) {
    const s = isSyncError(e) ? e : explainDbError(e, target);
    return { ...result, error: { kind: s.kind, message: s.message } };
  } finally {
    conn?.release();
    await pool.end().catch(() => undefined);
  }
}

function parseApiDbUrl(url: string) {
  try {
    return parseDbUrl(url);
  } catch (e) {
    if (isSyncError(e)) throw new ApiError(e.kind, e.message);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Making the main server

const initSchema = z
  .object({
    dbUrl: z.string().min(1).max(1_000),
    name: z.string().max(100),
    preset: z.enum(['openmrs', 'all']).optional(),
  })
  .strict();

/**
 * `clinic-sync init` for the wizard: the database becomes the root of a new tree, its password
 * kept in the home's secrets. Nothing is left half-made when it fails, and the admin token the
 * window uses survives the failure.
 */
export async function initRootNode(home: Home, req: InitRequest): Promise<void> {
  const valid = initSchema.safeParse(req);
  if (!valid.success) {
    throw new ApiError('usage', 'Making the main server needs the database address and a name.');
  }
  const existing = home.load();
  if (existing) {
    throw new ApiError(
      'state',
      `This computer already holds the node "${existing.name}" (${existing.db}).`,
    );
  }
  const { target, passwordSource } = resolveDbTarget(valid.data.dbUrl, { env: {} }, home);
  if (!settingsSchema.shape.name.safeParse(valid.data.name).success) {
    throw new ApiError('usage', `The name ${settingRule('name')}.`);
  }
  const settings = defaultSettings({ db: dbUrlOf(target), name: valid.data.name, role: 'root' });
  // Chosen before the triggers are made: they are installed on the tables the preset syncs.
  if (valid.data.preset) settings.tables.preset = valid.data.preset;
  settings.complexObs.dataDir = await openmrsDataDirFor(target);
  home.save(settings);
  if (passwordSource !== 'secret' && target.password) {
    home.writeSecret(DB_PASSWORD_SECRET, target.password);
  }
  try {
    const { SyncNode } = await import('../engine/node/node.js');
    const node = await SyncNode.init({ db: target, name: settings.name, settings, home });
    await node.close();
  } catch (e) {
    const token = home.readSecret(ADMIN_TOKEN_SECRET);
    home.forgetNode();
    if (token !== null) home.writeSecret(ADMIN_TOKEN_SECRET, token);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Who answers at a main server's address

const parentSchema = z.object({ parentUrl: httpUrl }).strict();

export async function checkParent(req: unknown, timeoutSeconds = 20): Promise<ParentCheck> {
  const valid = parentSchema.safeParse(req);
  if (!valid.success) {
    throw new ApiError(
      'usage',
      "The main server's address must start with http:// or https://, like http://district.example.org:8750.",
    );
  }
  const { ParentClient } = await import('../engine/transport/client.js');
  // No certificate trusted yet: over HTTPS the client meets the parent's and says which it was,
  // for the person to compare with the one the main server shows (DESIGN §8, first contact).
  const client = new ParentClient({
    url: valid.data.parentUrl,
    timeoutSeconds,
    compression: true,
    fingerprint: null,
  });
  try {
    const hello = await client.hello();
    return { name: hello.name, nodeId: hello.nodeId, fingerprint: client.fingerprint };
  } finally {
    await client.close();
  }
}
