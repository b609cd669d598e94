import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { openPool, type Pool } from '../../src/engine/db/pool.js';
import { parseDbUrl, type DbTarget } from '../../src/engine/db/url.js';

export const SERVER = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: process.env.MYSQL_USER ?? 'root',
  password: process.env.MYSQL_PWD ?? '',
};

export interface TestDb {
  name: string;
  url: string;
  target: DbTarget;
  pool: Pool;
  drop(): Promise<void>;
}

/** A fresh, uniquely named database for one test; drop() removes it. */
export async function createTestDb(prefix = 'cs_test'): Promise<TestDb> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = await mysql.createConnection({ ...SERVER });
  await admin.query(`CREATE DATABASE \`${name}\` DEFAULT CHARACTER SET utf8mb4`);
  await admin.end();
  const url = `mysql://${SERVER.user}${SERVER.password ? ':' + encodeURIComponent(SERVER.password) : ''}@${SERVER.host}:${SERVER.port}/${name}`;
  const target = parseDbUrl(url);
  const pool = openPool(target);
  return {
    name,
    url,
    target,
    pool,
    async drop() {
      await pool.end().catch(() => undefined);
      await dropDatabase(name);
    },
  };
}

const here = path.dirname(fileURLToPath(import.meta.url));
// CLINIC_SYNC_SHARED_DIR: for a checkout that is not beside shared/ (a git worktree elsewhere).
export const SHARED_DIR = path.resolve(
  process.env.CLINIC_SYNC_SHARED_DIR ?? path.resolve(here, '../../../shared'),
);

/**
 * Loads one of the real sample databases (../shared/data) into a fresh test database. Where the
 * files are missing this fails under CI=true and tells the caller otherwise (no silent skip).
 */
export async function loadSampleDb(
  kind: 'openmrs' | 'openmrs-testdata' | 'sakila',
): Promise<TestDb> {
  const tool = path.join(SHARED_DIR, 'tools', 'load-sample-db');
  if (!existsSync(tool)) {
    throw new Error(
      `The sample databases are missing (${tool}); they come with the project's shared/ folder.`,
    );
  }
  const db = await createTestDb(`cs_${kind.replace('-', '_')}`);
  if (kind === 'sakila') {
    loadSakila(db.name);
    return db;
  }
  execFileSync(tool, [kind, db.name], {
    env: {
      ...process.env,
      MYSQL_HOST: SERVER.host,
      MYSQL_PORT: String(SERVER.port),
      MYSQL_USER: SERVER.user,
      MYSQL_PWD: SERVER.password,
    },
    stdio: 'pipe',
    maxBuffer: 64 * 1024 * 1024,
  });
  return db;
}

function mysqlClient(): string {
  for (const c of [
    '/usr/bin/mariadb',
    '/usr/bin/mysql',
    '/usr/local/bin/mariadb',
    '/usr/local/bin/mysql',
  ]) {
    if (existsSync(c)) return c;
  }
  throw new Error(
    'No mariadb/mysql command-line client is installed (apt-get install mariadb-client).',
  );
}

/**
 * Sakila's published schema names the database `sakila` inside a view, so the shared loader only
 * works for a database of that name; here the name is rewritten to the test database's own.
 */
function loadSakila(dbName: string): void {
  const dir = path.join(SHARED_DIR, 'data', 'sakila');
  const strip = (sql: string) =>
    sql
      .split('\n')
      .filter((l) => !/^(DROP SCHEMA|CREATE SCHEMA|USE )/.test(l))
      .join('\n')
      .replace(/\bsakila\./g, `\`${dbName}\`.`);
  const args = [
    '-h',
    SERVER.host,
    '-P',
    String(SERVER.port),
    '-u',
    SERVER.user,
    '--default-character-set=utf8mb4',
    dbName,
  ];
  const env = { ...process.env, MYSQL_PWD: SERVER.password };
  for (const file of ['sakila-mv-schema.sql', 'sakila-mv-data.sql']) {
    execFileSync(mysqlClient(), args, {
      input: strip(readFileSync(path.join(dir, file), 'utf8')),
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  }
}

/**
 * MariaDB 10.11 sometimes leaves a stray `<table>.TRG-` file behind when many sessions create
 * triggers at once, and then refuses DROP DATABASE ("Directory not empty", errno 39). That is the
 * server's housekeeping, not what a test checks: it is retried, then reported and left.
 */
async function dropDatabase(name: string): Promise<void> {
  const a = await mysql.createConnection({ ...SERVER });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await a.query(`DROP DATABASE IF EXISTS \`${name}\``);
        return;
      } catch (e) {
        if ((e as { errno?: number }).errno !== 1010 || attempt === 5) {
          if ((e as { errno?: number }).errno === 1010) {
            console.warn(`test database ${name} could not be dropped: ${(e as Error).message}`);
            return;
          }
          throw e;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  } finally {
    await a.end();
  }
}
