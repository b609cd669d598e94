import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { SyncError } from '../engine/errors.js';

/*
 * The demo's database server (issue 4, item 6): the one named by CLINIC_SYNC_DEMO_DB, else
 * 127.0.0.1:3306 as root if it answers, else a private throwaway mariadbd/mysqld in a temporary
 * folder when one is installed, else one sentence saying how to get one.
 */

const run = promisify(execFile);

/** How to log in to a server, without a database. */
export interface ServerAddress {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
}

export interface DemoServer {
  /** one phrase for the user, e.g. "MariaDB 10.11.19 on 127.0.0.1:3306 (root, no password)" */
  description: string;
  address: ServerAddress;
  /** the temporary folder of a private server (data, socket, error log); null otherwise */
  folder: string | null;
  /** `mysql://user[:password]@host:port/database` on this server */
  url(database: string): string;
  /** stops a private server and deletes its folder; nothing for a server the demo did not start */
  stop(): Promise<void>;
}

export interface FindServerOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Try 127.0.0.1:3306 before starting a private server (default: yes, unless the environment
   * sets CLINIC_SYNC_DEMO_PRIVATE=1).
   */
  tryDefault?: boolean;
  /** folders to look for mariadbd/mysqld and the installers in (default: PATH and the sbin's) */
  searchDirs?: string[];
  /** how long a private server may take to answer, in milliseconds (default 60 s) */
  startTimeoutMs?: number;
  /** tells the user what is happening while a server is found or started */
  note?: (line: string) => void;
}

export const INSTALL_SENTENCE =
  'No MariaDB or MySQL server answers on 127.0.0.1:3306 and none is installed; install one with `sudo apt-get install mariadb-server` (or set CLINIC_SYNC_DEMO_DB=mysql://user:password@host:port) and run npm run demo again.';

export async function findDemoServer(opts: FindServerOptions = {}): Promise<DemoServer> {
  const env = opts.env ?? process.env;
  const note = opts.note ?? (() => undefined);

  const named = env.CLINIC_SYNC_DEMO_DB;
  if (named !== undefined && named.trim() !== '') return namedServer(named.trim(), env);

  let refusedByDefault = false;
  const tryDefault = opts.tryDefault ?? env.CLINIC_SYNC_DEMO_PRIVATE !== '1';
  if (tryDefault) {
    const address: ServerAddress = {
      host: '127.0.0.1',
      port: 3306,
      user: 'root',
      password: env.MYSQL_PWD || undefined,
    };
    const probe = await probeServer(address);
    if (probe.ok) {
      const login = address.password ? 'root, password from MYSQL_PWD' : 'root, no password';
      return externalServer(address, `${probe.product} on 127.0.0.1:3306 (${login})`);
    }
    if (probe.refused) {
      refusedByDefault = true;
      note(
        `The server on 127.0.0.1:3306 refuses root ${address.password ? 'with the password in MYSQL_PWD' : 'without a password'}, so the demo starts its own.`,
      );
    }
  }

  const binaries = findBinaries(opts.searchDirs ?? defaultSearchDirs(env));
  if (!binaries) {
    if (refusedByDefault) {
      throw new SyncError(
        'database',
        'The server on 127.0.0.1:3306 refuses root and no other MariaDB or MySQL is installed; set MYSQL_PWD to its root password (or set CLINIC_SYNC_DEMO_DB=mysql://user:password@host:port) and run npm run demo again.',
      );
    }
    throw new SyncError('database', INSTALL_SENTENCE);
  }
  const noneAnswers = tryDefault && !refusedByDefault;
  return startPrivateServer(binaries, opts.startTimeoutMs ?? 60_000, (product, file) => {
    const starting = `a private ${product} (${file}) for the demo`;
    note(
      noneAnswers
        ? `No database server answers on 127.0.0.1:3306; starting ${starting}.`
        : `Starting ${starting}.`,
    );
  });
}

/** The demo's URL form: `mysql://user[:password]@host[:port]`, a database part being ignored. */
export function parseServerUrl(url: string, env: NodeJS.ProcessEnv = process.env): ServerAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SyncError(
      'usage',
      'CLINIC_SYNC_DEMO_DB is not a server address; write it like mysql://user:password@127.0.0.1:3306 and run npm run demo again.',
    );
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') {
    throw new SyncError(
      'usage',
      `CLINIC_SYNC_DEMO_DB must start with mysql:// (got ${u.protocol}//); write it like mysql://user:password@127.0.0.1:3306.`,
    );
  }
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username || 'root'),
    password: u.password ? decodeURIComponent(u.password) : env.MYSQL_PWD || undefined,
  };
}

export function serverUrl(a: ServerAddress, database: string): string {
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  const login =
    encodeURIComponent(a.user) + (a.password ? `:${encodeURIComponent(a.password)}` : '');
  return `mysql://${login}@${host}:${a.port}/${database}`;
}

async function namedServer(url: string, env: NodeJS.ProcessEnv): Promise<DemoServer> {
  const address = parseServerUrl(url, env);
  const where = `mysql://${address.user}@${address.host}:${address.port}`;
  const probe = await probeServer(address);
  if (!probe.ok) {
    throw new SyncError(
      'database',
      probe.refused
        ? `The server named by CLINIC_SYNC_DEMO_DB (${where}) refuses user "${address.user}"; fix the user or password in CLINIC_SYNC_DEMO_DB and run npm run demo again.`
        : `No database server answers at ${address.host}:${address.port}, named by CLINIC_SYNC_DEMO_DB (${probe.reason}); start it or fix the address and run npm run demo again.`,
    );
  }
  return externalServer(address, `${probe.product} at ${where} (named by CLINIC_SYNC_DEMO_DB)`);
}

function externalServer(address: ServerAddress, description: string): DemoServer {
  return {
    description,
    address,
    folder: null,
    url: (database) => serverUrl(address, database),
    stop: async () => undefined,
  };
}

type Probe = { ok: true; product: string } | { ok: false; refused: boolean; reason: string };

/** Whether a server answers and lets the user in; `product` is e.g. "MariaDB 10.11.19". */
async function probeServer(a: ServerAddress, extra: { socketPath?: string } = {}): Promise<Probe> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({
      host: a.host,
      port: a.port,
      user: a.user,
      password: a.password ?? '',
      connectTimeout: 3_000,
      ...extra,
    });
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT VERSION() AS v');
    return { ok: true, product: productName(String(rows[0]?.v ?? '')) };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const refused =
      err.code === 'ER_ACCESS_DENIED_ERROR' ||
      err.code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR' ||
      err.code === 'ER_HOST_NOT_PRIVILEGED';
    return { ok: false, refused, reason: err.code ?? err.message ?? String(e) };
  } finally {
    await conn?.end().catch(() => undefined);
  }
}

/** "10.11.19-MariaDB-0+deb12u1" → "MariaDB 10.11.19"; "8.0.36" → "MySQL 8.0.36". */
export function productName(version: string): string {
  const number = /^\d+(\.\d+)*/.exec(version)?.[0] ?? version;
  return /mariadb/i.test(version) ? `MariaDB ${number}` : `MySQL ${number}`;
}

// ---------------------------------------------------------------------------------------------
// A private throwaway server

interface Binaries {
  /** mariadbd or mysqld */
  server: string;
  /** mariadb-install-db or mysql_install_db (MariaDB); MySQL 5.7+ initialises with the server */
  installer: string | null;
}

function defaultSearchDirs(env: NodeJS.ProcessEnv): string[] {
  const fromPath = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  const extra = [
    '/usr/sbin',
    '/usr/local/sbin',
    '/usr/local/mysql/bin',
    '/usr/local/bin',
    '/opt/homebrew/bin',
  ];
  return [...new Set([...fromPath, ...extra])];
}

function findBinaries(dirs: string[]): Binaries | null {
  const find = (names: string[]): string | null => {
    const suffix = process.platform === 'win32' ? '.exe' : '';
    for (const name of names) {
      for (const dir of dirs) {
        const file = path.join(dir, name + suffix);
        try {
          fs.accessSync(file, fs.constants.X_OK);
          if (fs.statSync(file).isFile()) return file;
        } catch {
          // not here
        }
      }
    }
    return null;
  };
  const server = find(['mariadbd', 'mysqld']);
  if (!server) return null;
  return { server, installer: find(['mariadb-install-db', 'mysql_install_db']) };
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

async function startPrivateServer(
  bin: Binaries,
  timeoutMs: number,
  announce: (product: string, file: string) => void,
): Promise<DemoServer> {
  const version = await commandOutput(bin.server, ['--no-defaults', '--version']);
  const product = productName(/Ver\s+(\S+)/.exec(version)?.[1] ?? '');
  const mariadb = /mariadb/i.test(version);
  announce(product, bin.server);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-demo-db-'));
  const dataDir = path.join(dir, 'data');
  const socket = path.join(dir, 'mysqld.sock');
  const errorLog = path.join(dir, 'error.log');
  const asRoot = isRoot() ? ['--user=root'] : [];
  let child: ChildProcess | null = null;

  // Safety net: whatever way the process ends, a private server does not outlive it.
  const onExit = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child) await stopProcess(child);
      fs.rmSync(dir, { recursive: true, force: true });
      process.removeListener('exit', onExit);
    })();
    return stopping;
  };

  try {
    fs.mkdirSync(dataDir);
    if (mariadb) {
      if (!bin.installer) {
        throw new SyncError(
          'database',
          `${bin.server} is installed but mariadb-install-db is not, so no private server can be made; install mariadb-server (or set CLINIC_SYNC_DEMO_DB=mysql://user:password@host:port) and run npm run demo again.`,
        );
      }
      const help = await commandOutput(bin.installer, ['--help']);
      const args = ['--no-defaults', `--datadir=${dataDir}`, ...asRoot];
      if (help.includes('--auth-root-authentication-method')) {
        args.push('--auth-root-authentication-method=normal');
      }
      if (help.includes('--skip-test-db')) args.push('--skip-test-db');
      await runChecked(bin.installer, args, 'could not initialise its data folder');
    } else {
      await runChecked(
        bin.server,
        ['--no-defaults', '--initialize-insecure', `--datadir=${dataDir}`, ...asRoot],
        'could not initialise its data folder',
      );
    }

    const port = await freePort();
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--log-error=${errorLog}`,
      `--tmpdir=${dir}`,
      '--innodb-buffer-pool-size=64M',
      ...(mariadb ? [] : ['--mysqlx=OFF']),
      ...asRoot,
    ];
    // Its own process group: a Ctrl-C in the terminal reaches the demo, which then drops its
    // database before it stops the server.
    const started = spawn(bin.server, args, { stdio: 'ignore', detached: true });
    child = started;
    started.unref();

    const address: ServerAddress = { host: '127.0.0.1', port, user: 'root', password: undefined };
    await waitUntilReady(started, address, socket, errorLog, timeoutMs);
    return {
      description: `a private ${product} on 127.0.0.1:${port} in ${dir} (removed at the end)`,
      address,
      folder: dir,
      url: (database) => serverUrl(address, database),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function waitUntilReady(
  child: ChildProcess,
  address: ServerAddress,
  socket: string,
  errorLog: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new SyncError(
        'database',
        `The private database server stopped while starting (${lastError(errorLog)}); install a working mariadb-server or set CLINIC_SYNC_DEMO_DB=mysql://user:password@host:port and run npm run demo again.`,
      );
    }
    const viaSocket = await probeServer(address, { socketPath: socket });
    if (viaSocket.ok) break;
    if (Date.now() > deadline) {
      throw new SyncError(
        'database',
        `The private database server did not answer within ${Math.round(timeoutMs / 1000)} s (${lastError(errorLog)}); set CLINIC_SYNC_DEMO_DB=mysql://user:password@host:port and run npm run demo again.`,
      );
    }
    await sleep(150);
  }
  // root@localhost may not match a TCP login from 127.0.0.1 (skip-name-resolve and the like).
  if ((await probeServer(address)).ok) return;
  const conn = await mysql.createConnection({ user: 'root', password: '', socketPath: socket });
  try {
    await conn.query("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'");
    await conn.query("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION");
  } finally {
    await conn.end().catch(() => undefined);
  }
  const tcp = await probeServer(address);
  if (!tcp.ok) {
    throw new SyncError(
      'database',
      `The private database server refuses root over TCP (${tcp.reason}); set CLINIC_SYNC_DEMO_DB=mysql://user:password@host:port and run npm run demo again.`,
    );
  }
}

/** SIGTERM (a clean shutdown), then SIGKILL after 30 s. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), 30_000);
  });
  try {
    if ((await Promise.race([exited, late])) === 'late') {
      child.kill('SIGKILL');
      await exited;
    }
  } finally {
    clearTimeout(timer);
  }
}

function lastError(errorLog: string): string {
  try {
    const lines = fs
      .readFileSync(errorLog, 'utf8')
      .split('\n')
      .filter((l) => /\[ERROR\]/.test(l));
    const last = lines.at(-1);
    if (last) return last.replace(/^.*\[ERROR\]\s*/, '').trim();
  } catch {
    // no log yet
  }
  return 'no error was logged';
}

async function commandOutput(file: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(file, args, { timeout: 30_000 });
    return `${stdout}${stderr}`;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `${err.stdout ?? ''}${err.stderr ?? ''}`;
  }
}

async function runChecked(file: string, args: string[], what: string): Promise<void> {
  try {
    await run(file, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    const detail = (err.stderr || err.message || String(e)).trim().split('\n').at(-1) ?? '';
    throw new SyncError(
      'database',
      `The private database server ${what} (${path.basename(file)}: ${detail}); set CLINIC_SYNC_DEMO_DB=mysql://user:password@host:port and run npm run demo again.`,
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
