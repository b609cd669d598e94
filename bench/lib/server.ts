import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { openPool, type Pool } from '../../src/engine/db/pool.js';
import { parseDbUrl, type DbTarget } from '../../src/engine/db/url.js';

/** The database server the benches use: the tests' one (127.0.0.1:3306, root) unless told. */
export const SERVER = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: process.env.MYSQL_USER ?? 'root',
  password: process.env.MYSQL_PWD ?? '',
};

export interface BenchDb {
  name: string;
  /** mysql://user@host:port/name, without the password (it travels in MYSQL_PWD) */
  url: string;
  target: DbTarget;
  pool: Pool;
  drop(): Promise<void>;
}

/** A new, empty, uniquely named database; drop() removes it. */
export async function createBenchDb(prefix: string): Promise<BenchDb> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = await mysql.createConnection({ ...SERVER });
  try {
    await admin.query(`CREATE DATABASE \`${name}\` DEFAULT CHARACTER SET utf8mb4`);
  } finally {
    await admin.end();
  }
  const url = `mysql://${SERVER.user}@${SERVER.host}:${SERVER.port}/${name}`;
  const target = { ...parseDbUrl(url), password: SERVER.password };
  const pool = openPool(target);
  return {
    name,
    url,
    target,
    pool,
    async drop() {
      await pool.end().catch(() => undefined);
      const a = await mysql.createConnection({ ...SERVER });
      try {
        await a.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await a.end();
      }
    },
  };
}

/** The environment for a child process that talks to the server (its password, if any). */
export function serverEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, MYSQL_PWD: SERVER.password };
}

/** The connection options of the mariadb/mysql command-line tools. */
export function clientArgs(): string[] {
  return ['-h', SERVER.host, '-P', String(SERVER.port), '-u', SERVER.user];
}
