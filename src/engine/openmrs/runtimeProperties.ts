import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseDbUrl, type DbTarget } from '../db/url.js';

/*
 * Finds the OpenMRS installed on this computer through its openmrs-runtime.properties, the file
 * OpenMRS itself reads its database connection from, so the setup wizard can pre-fill the
 * database (issue "OpenMRS-aware", item 2). Only reads; never writes the file.
 */

/** What the file says, as ClinicSync uses it. */
export interface OpenmrsRuntime {
  /** the file read */
  file: string;
  /**
   * the database as ClinicSync spells it, mysql://user@host:port/database (never with the
   * password), or null when the file names no MySQL/MariaDB database
   */
  dbUrl: string | null;
  /** connection.password, or null when the file has none */
  password: string | null;
  /** OpenMRS's application data folder (complex obs, modules), or null when not set */
  appDataDir: string | null;
}

export interface FindOptions {
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  /** the user's home folder (default os.homedir()) */
  homeDir?: string;
  /** reads a file; rejects when it is missing (tests give files of their own) */
  readFile?: (file: string) => Promise<Buffer>;
}

const FILE_NAME = 'openmrs-runtime.properties';

/**
 * The places OpenMRS looks for its runtime properties, in its own order (OpenmrsUtil): the file
 * named by OPENMRS_RUNTIME_PROPERTIES_FILE, the application data folder named by
 * OPENMRS_APPLICATION_DATA_DIRECTORY, then the default application data folder of the user
 * running Tomcat: ~/.OpenMRS on Linux, %APPDATA%\OpenMRS on Windows. Tomcat usually runs as its
 * own user (a service account), so the usual homes of that user follow.
 */
export function runtimePropertiesCandidates(opts: FindOptions = {}): string[] {
  const env = opts.env ?? process.env;
  const platform = opts.platform ?? process.platform;
  const p = platform === 'win32' ? path.win32 : path.posix;
  const home = opts.homeDir ?? os.homedir();
  const out: string[] = [];
  if (env.OPENMRS_RUNTIME_PROPERTIES_FILE) out.push(env.OPENMRS_RUNTIME_PROPERTIES_FILE);
  if (env.OPENMRS_APPLICATION_DATA_DIRECTORY) {
    out.push(p.join(env.OPENMRS_APPLICATION_DATA_DIRECTORY, FILE_NAME));
  }
  if (platform === 'win32') {
    if (env.APPDATA) out.push(p.join(env.APPDATA, 'OpenMRS', FILE_NAME));
    out.push(p.join(home, 'AppData', 'Roaming', 'OpenMRS', FILE_NAME));
    // Tomcat installed as a Windows service runs as LocalSystem, whose profile lives here.
    const systemRoot = env.SystemRoot ?? env.SYSTEMROOT ?? 'C:\\Windows';
    const system = p.join(systemRoot, 'System32', 'config', 'systemprofile');
    out.push(p.join(system, 'AppData', 'Roaming', 'OpenMRS', FILE_NAME));
    out.push(p.join(env.ProgramData ?? env.PROGRAMDATA ?? 'C:\\ProgramData', 'OpenMRS', FILE_NAME));
  } else {
    out.push(p.join(home, '.OpenMRS', FILE_NAME));
    for (const tomcat of ['tomcat9', 'tomcat8', 'tomcat7', 'tomcat']) {
      out.push(p.join('/usr/share', tomcat, '.OpenMRS', FILE_NAME));
      out.push(p.join('/var/lib', tomcat, '.OpenMRS', FILE_NAME));
    }
    out.push(p.join('/opt/tomcat/.OpenMRS', FILE_NAME));
    out.push(p.join('/var/lib/OpenMRS', FILE_NAME));
    // The OpenMRS Docker images keep their data folder here.
    out.push(p.join('/openmrs/data', FILE_NAME));
    out.push(p.join('/root/.OpenMRS', FILE_NAME));
  }
  return [...new Set(out)];
}

/** The first runtime properties file found in the usual places, read; null when there is none. */
export async function findOpenmrsRuntime(opts: FindOptions = {}): Promise<OpenmrsRuntime | null> {
  const read = opts.readFile ?? ((file: string) => fs.readFile(file));
  const env = opts.env ?? process.env;
  const p = (opts.platform ?? process.platform) === 'win32' ? path.win32 : path.posix;
  for (const file of runtimePropertiesCandidates(opts)) {
    let bytes: Buffer;
    try {
      bytes = await read(file);
    } catch {
      continue;
    }
    // Every other place is an application data folder itself: OpenMRS uses the one it found the
    // file in when the file names none.
    const named = file === env.OPENMRS_RUNTIME_PROPERTIES_FILE;
    return readRuntimeProperties(bytes, file, named ? null : p.dirname(file));
  }
  return null;
}

/**
 * What one runtime properties file says; `defaultAppDataDir` is the application data folder
 * OpenMRS uses when the file names none.
 */
export function readRuntimeProperties(
  bytes: Buffer,
  file: string,
  defaultAppDataDir: string | null = null,
): OpenmrsRuntime {
  const props = parseProperties(decode(bytes));
  const user = props.get('connection.username') ?? null;
  const url = props.get('connection.url') ?? null;
  const jdbc = url === null ? null : jdbcToDb(url);
  const password = props.get('connection.password') ?? jdbc?.password ?? null;
  return {
    file,
    dbUrl: jdbc ? dbUrl({ ...jdbc, user: user ?? jdbc.user ?? 'root' }) : null,
    password: password === '' ? null : password,
    appDataDir: props.get('application_data_directory') || defaultAppDataDir,
  };
}

/**
 * OpenMRS reads this file as UTF-8 (OpenmrsUtil.loadProperties); a file that is not valid UTF-8
 * was written as Java's classic ISO-8859-1.
 */
function decode(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/**
 * A Java properties file (java.util.Properties.load): `key=value`, `key: value` or `key value`;
 * `#` and `!` comments; a line ending in an odd number of backslashes goes on on the next one;
 * escapes `\t \n \r \f \uXXXX` and a backslash before any other character keeps that character
 * (Properties.store writes `jdbc\:mysql\://…` and `autoReconnect\=true`). A key given twice keeps
 * its last value, as in Java.
 */
export function parseProperties(text: string): Map<string, string> {
  const props = new Map<string, string>();
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.replace(/^[ \t\f]+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    while (endsInEscape(line) && i + 1 < lines.length) {
      line = line.slice(0, -1) + lines[++i]!.replace(/^[ \t\f]+/, '');
    }
    if (endsInEscape(line)) line = line.slice(0, -1);
    const { key, rest } = splitKey(line);
    props.set(unescape(key), unescape(rest));
  }
  return props;
}

function endsInEscape(line: string): boolean {
  const m = /\\+$/.exec(line);
  return m !== null && m[0].length % 2 === 1;
}

function splitKey(line: string): { key: string; rest: string } {
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === '=' || c === ':' || c === ' ' || c === '\t' || c === '\f') break;
    i++;
  }
  const key = line.slice(0, i);
  let j = i;
  while (j < line.length && /[ \t\f]/.test(line[j]!)) j++;
  if (j < line.length && (line[j] === '=' || line[j] === ':')) j++;
  while (j < line.length && /[ \t\f]/.test(line[j]!)) j++;
  return { key, rest: line.slice(j) };
}

function unescape(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const n = s[++i]!;
    if (n === 't') out += '\t';
    else if (n === 'n') out += '\n';
    else if (n === 'r') out += '\r';
    else if (n === 'f') out += '\f';
    else if (n === 'u' && /^[0-9A-Fa-f]{4}$/.test(s.slice(i + 1, i + 5))) {
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 5), 16));
      i += 4;
    } else out += n;
  }
  return out;
}

interface JdbcDb {
  host: string;
  port: number;
  database: string;
  user: string | null;
  password: string | null;
}

/**
 * A MySQL or MariaDB JDBC URL (`jdbc:mysql://host:port/db?options`, `jdbc:mariadb://…`) as its
 * parts; the first host of a list is taken. Null for anything else (another database, no
 * database name).
 */
export function jdbcToDb(jdbc: string): JdbcDb | null {
  const m = /^jdbc:(mysql|mariadb)(?::[a-z]+)?:\/\/([^/?]*)\/([^?;]*)(?:[?;](.*))?$/i.exec(
    jdbc.trim(),
  );
  if (!m) return null;
  const firstHost = m[2]!.split(',')[0]!.trim();
  const hm = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:]*))(?::(\d{1,5}))?$/.exec(firstHost);
  if (!hm) return null;
  const host = hm[1] ? `[${hm[1]}]` : hm[2] || 'localhost';
  const port = hm[3] ? Number(hm[3]) : 3306;
  let database: string;
  try {
    database = decodeURIComponent(m[3]!);
  } catch {
    return null;
  }
  if (!/^[A-Za-z0-9_$-]{1,64}$/.test(database) || port < 1 || port > 65_535) return null;
  const options = new URLSearchParams((m[4] ?? '').replace(/;/g, '&'));
  return { host, port, database, user: options.get('user'), password: options.get('password') };
}

function dbUrl(db: JdbcDb & { user: string }): string {
  return `mysql://${encodeURIComponent(db.user)}@${db.host}:${db.port}/${db.database}`;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * OpenMRS's application data folder (where its complex obs files live) when the OpenMRS found on
 * this computer uses the database `target`; null otherwise. Setup fills the complex obs setting
 * with it, so a clinic's attached files travel without anyone looking for the folder.
 */
export async function openmrsDataDirFor(
  target: DbTarget,
  opts: FindOptions = {},
): Promise<string | null> {
  const found = await findOpenmrsRuntime(opts);
  if (!found?.dbUrl || !found.appDataDir) return null;
  let theirs: DbTarget;
  try {
    theirs = parseDbUrl(found.dbUrl);
  } catch {
    return null;
  }
  const sameHost =
    theirs.host === target.host || (LOOPBACK.has(theirs.host) && LOOPBACK.has(target.host));
  return sameHost && theirs.port === target.port && theirs.database === target.database
    ? found.appDataDir
    : null;
}
