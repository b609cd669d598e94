import { SyncError } from '../errors.js';

/** Where a database lives: parsed from `mysql://user[:password]@host[:port]/database`. */
export interface DbTarget {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
}

const DB_NAME = /^[A-Za-z0-9_$-]{1,64}$/;

export function parseDbUrl(url: string): DbTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SyncError(
      'usage',
      `"${redactDbUrl(url)}" is not a database address; write it like mysql://user@127.0.0.1:3306/openmrs.`,
    );
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') {
    throw new SyncError(
      'usage',
      `The database address must start with mysql:// (got ${u.protocol}//).`,
    );
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!DB_NAME.test(database)) {
    throw new SyncError(
      'usage',
      'The database address must end with the database name, like /openmrs.',
    );
  }
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username || 'root'),
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database,
  };
}

/** The URL without its password: safe to store, log and print. */
export function dbUrlOf(t: DbTarget): string {
  return `mysql://${encodeURIComponent(t.user)}@${t.host}:${t.port}/${t.database}`;
}

export function redactDbUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:/@]*):[^@]*@/, '$1:***@');
}
