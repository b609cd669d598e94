import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, SERVER, type TestDb } from '../helpers/db.js';
import { openPool, queryRows } from '../../src/engine/db/pool.js';
import {
  checkPrivileges,
  evaluateGrants,
  parseGrantLine,
  REQUIRED_PRIVILEGES,
  type GrantContext,
} from '../../src/engine/db/privileges.js';

/** What a grant target looks like for this database when its wildcards are escaped. */
const escaped = (name: string) => name.replace(/_/g, '\\_');

describe('checkPrivileges against real MariaDB accounts', () => {
  let db: TestDb;
  let admin: mysql.Connection;
  const accounts: string[] = [];

  beforeAll(async () => {
    db = await createTestDb('cs_priv');
    admin = await mysql.createConnection({ ...SERVER, database: db.name });
    await admin.query('CREATE TABLE t (id INT PRIMARY KEY, v INT)');
  });

  afterAll(async () => {
    for (const a of accounts) await admin.query(`DROP ${a}`).catch(() => undefined);
    await admin.end();
    await db.drop();
  });

  /** A fresh account '<name>'@'%' with a random password; `{db}` in a grant is this database. */
  async function newUser(grants: string[]): Promise<{ user: string; password: string }> {
    const user = `cs_priv_u_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('base64url');
    await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
    accounts.push(`USER IF EXISTS '${user}'@'%'`);
    for (const g of grants) {
      await admin.query(
        g.replaceAll('{db}', escaped(db.name)).replaceAll('{user}', `'${user}'@'%'`),
      );
    }
    return { user, password };
  }

  async function checkAs(u: { user: string; password: string }) {
    const pool = openPool(
      { ...db.target, user: u.user, password: u.password },
      { connectionLimit: 1 },
    );
    try {
      return await checkPrivileges(pool, db.name);
    } finally {
      await pool.end();
    }
  }

  /** What the server itself allows: try to create and drop a trigger and lock the table. */
  async function serverAllows(u: { user: string; password: string }): Promise<boolean> {
    const conn = await mysql.createConnection({
      host: SERVER.host,
      port: SERVER.port,
      user: u.user,
      password: u.password,
      database: db.name,
    });
    try {
      const trg = `clinicsync_probe_${randomBytes(3).toString('hex')}`;
      await conn.query(`CREATE TRIGGER ${trg} AFTER INSERT ON t FOR EACH ROW SET @x = 1`);
      await conn.query(`DROP TRIGGER ${trg}`);
      await conn.query('CREATE TABLE clinicsync_probe (id INT PRIMARY KEY)');
      await conn.query('ALTER TABLE clinicsync_probe ADD COLUMN v INT, ADD INDEX (v)');
      await conn.query('LOCK TABLES t READ, clinicsync_probe WRITE');
      await conn.query('UNLOCK TABLES');
      await conn.query('DROP TABLE clinicsync_probe');
      return true;
    } catch {
      return false;
    } finally {
      await conn.end();
    }
  }

  it('finds root (ALL PRIVILEGES ON *.*) sufficient', async () => {
    const r = await checkPrivileges(db.pool, db.name);
    expect(r).toEqual({ ok: true, missing: [], sentence: null });
  });

  it('names every missing privilege and the GRANT that fixes it, and the server agrees', async () => {
    const u = await newUser(['GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `{db}`.* TO {user}']);
    const r = await checkAs(u);
    expect(r.ok).toBe(false);
    expect(r.missing).toEqual(['ALTER', 'DROP', 'INDEX', 'TRIGGER', 'LOCK TABLES']);
    const grant = `GRANT ALTER, DROP, INDEX, TRIGGER, LOCK TABLES ON \`${escaped(db.name)}\`.* TO '${u.user}'@'%';`;
    expect(r.sentence).toBe(
      `The database user ${u.user}@% lacks the ALTER, DROP, INDEX, TRIGGER and LOCK TABLES privileges on ${db.name}; ask the administrator to run: ${grant}`,
    );
    expect(await serverAllows(u)).toBe(false);

    // The statement in the sentence is what a DBA runs; afterwards both agree it is enough.
    await admin.query(r.sentence!.split('ask the administrator to run: ')[1]!);
    expect(await checkAs(u)).toEqual({ ok: true, missing: [], sentence: null });
    expect(await serverAllows(u)).toBe(true);
  });

  it('says a single missing privilege in the singular', async () => {
    const u = await newUser([
      'GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, LOCK TABLES ON `{db}`.* TO {user}',
    ]);
    const r = await checkAs(u);
    expect(r.missing).toEqual(['TRIGGER']);
    expect(r.sentence).toBe(
      `The database user ${u.user}@% lacks the TRIGGER privilege on ${db.name}; ask the administrator to run: GRANT TRIGGER ON \`${escaped(db.name)}\`.* TO '${u.user}'@'%';`,
    );
  });

  it('counts ALL PRIVILEGES on the database and unescaped wildcard names', async () => {
    const u1 = await newUser(['GRANT ALL PRIVILEGES ON `{db}`.* TO {user}']);
    expect(await checkAs(u1)).toEqual({ ok: true, missing: [], sentence: null });
    // `_` unescaped is a one-character wildcard: the grant still covers this database.
    const u2 = await newUser([`GRANT ALL ON \`${db.name}\`.* TO {user}`]);
    expect(await checkAs(u2)).toEqual({ ok: true, missing: [], sentence: null });
    expect(await serverAllows(u2)).toBe(true);
  });

  it('follows the server: the most specific matching database row wins, patterns do not add up', async () => {
    // ALL on a broad pattern, and everything but TRIGGER on a narrower one (its first wildcard
    // comes later): the narrower row is the one in force.
    const broad = `${escaped(db.name.slice(0, 'cs_priv'.length))}%`;
    const narrow = `${escaped(db.name.slice(0, -2))}%`;
    const u = await newUser([
      `GRANT ALL PRIVILEGES ON \`${broad}\`.* TO {user}`,
      `GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, LOCK TABLES ON \`${narrow}\`.* TO {user}`,
    ]);
    const r = await checkAs(u);
    expect(r.missing).toEqual(['TRIGGER']);
    expect(await serverAllows(u)).toBe(false);
    // A grant on the exact name would hide the pattern row, so the fix names everything needed.
    const fix = r.sentence!.split('ask the administrator to run: ')[1]!;
    expect(fix).toBe(
      `GRANT ${REQUIRED_PRIVILEGES.join(', ')} ON \`${escaped(db.name)}\`.* TO '${u.user}'@'%';`,
    );
    await admin.query(fix);
    expect((await checkAs(u)).ok).toBe(true);
    expect(await serverAllows(u)).toBe(true);

    // And an exact-name row with less than the pattern gives hides the pattern.
    const v = await newUser([
      `GRANT ALL PRIVILEGES ON \`${broad}\`.* TO {user}`,
      'GRANT SELECT ON `{db}`.* TO {user}',
    ]);
    const rv = await checkAs(v);
    expect(rv.missing).toEqual(REQUIRED_PRIVILEGES.filter((p) => p !== 'SELECT'));
    expect(await serverAllows(v)).toBe(false);
  });

  it('counts the privileges of the default role, not of a role that is granted but inactive', async () => {
    const role = `cs_priv_r_${randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE ROLE ${role}`);
    accounts.push(`ROLE IF EXISTS ${role}`);
    await admin.query(
      `GRANT ALTER, DROP, INDEX, TRIGGER, LOCK TABLES ON \`${escaped(db.name)}\`.* TO ${role}`,
    );
    const u = await newUser([
      'GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `{db}`.* TO {user}',
      `GRANT ${role} TO {user}`,
    ]);
    const inactive = await checkAs(u);
    expect(inactive.missing).toEqual(['ALTER', 'DROP', 'INDEX', 'TRIGGER', 'LOCK TABLES']);
    expect(await serverAllows(u)).toBe(false);

    await admin.query(`SET DEFAULT ROLE ${role} FOR '${u.user}'@'%'`);
    expect(await checkAs(u)).toEqual({ ok: true, missing: [], sentence: null });
    expect(await serverAllows(u)).toBe(true);
  });

  it('parses the grant line this server prints for root', async () => {
    const rows = await queryRows(db.pool, 'SHOW GRANTS FOR CURRENT_USER()');
    const parsed = rows.map((r) => parseGrantLine(String(Object.values(r)[0])));
    expect(parsed).toContainEqual(
      expect.objectContaining({ database: '*', privileges: ['ALL PRIVILEGES'], revoke: false }),
    );
  });
});

describe('evaluateGrants on grant lines as other servers print them', () => {
  const ctx: GrantContext = {
    database: 'openmrs',
    currentUser: 'openmrs@localhost',
    logBin: false,
    trustFunctionCreators: false,
    lowerCaseTableNames: 0,
  };
  const mysql56 = [
    "GRANT USAGE ON *.* TO 'openmrs'@'localhost' IDENTIFIED BY PASSWORD '*6C8989366EAF75BB670AD8EA7A7FC1176A95CEF4'",
    "GRANT ALL PRIVILEGES ON `openmrs`.* TO 'openmrs'@'localhost'",
  ];

  it('accepts ALL PRIVILEGES on the database from MySQL 5.6', () => {
    expect(evaluateGrants(mysql56, ctx)).toEqual({ ok: true, missing: [], sentence: null });
  });

  it('asks for SUPER or log_bin_trust_function_creators when binary logging is on', () => {
    const r = evaluateGrants(mysql56, { ...ctx, logBin: true });
    expect(r.missing).toEqual(['SUPER']);
    expect(r.sentence).toBe(
      'The database user openmrs@localhost may not create triggers while binary logging is on (that needs SUPER or the server setting log_bin_trust_function_creators = 1); ask the administrator to run: SET GLOBAL log_bin_trust_function_creators = 1; and add log_bin_trust_function_creators = 1 to the server configuration so it survives a restart',
    );
    expect(evaluateGrants(mysql56, { ...ctx, logBin: true, trustFunctionCreators: true }).ok).toBe(
      true,
    );
    const withSuper = [...mysql56, "GRANT SUPER ON *.* TO 'openmrs'@'localhost'"];
    expect(evaluateGrants(withSuper, { ...ctx, logBin: true }).ok).toBe(true);
    // SUPER is global only: ALL on one database does not carry it.
    const both = evaluateGrants(["GRANT SELECT ON `openmrs`.* TO 'openmrs'@'localhost'"], {
      ...ctx,
      logBin: true,
    });
    expect(both.missing.at(-1)).toBe('SUPER');
    expect(both.sentence).toContain(
      'on openmrs and may not create triggers while binary logging is on',
    );
  });

  it('applies MySQL 8 partial revokes and ignores table, column and routine grants', () => {
    const lines = [
      'GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, LOCK TABLES, TRIGGER ON *.* TO `openmrs`@`localhost`',
      'GRANT APPLICATION_PASSWORD_ADMIN,XA_RECOVER_ADMIN ON *.* TO `openmrs`@`localhost`',
      'REVOKE TRIGGER ON `openmrs`.* FROM `openmrs`@`localhost`',
      'GRANT ALTER ROUTINE, EXECUTE ON PROCEDURE `openmrs`.`p` TO `openmrs`@`localhost`',
      'GRANT TRIGGER ON `openmrs`.`person` TO `openmrs`@`localhost`',
      'GRANT SELECT (`a`, `b`), TRIGGER (`c`) ON `openmrs`.`obs` TO `openmrs`@`localhost`',
      'GRANT `app_role`@`%` TO `openmrs`@`localhost`',
    ];
    const r = evaluateGrants(lines, ctx);
    expect(r.missing).toEqual(['TRIGGER']);
    // The revoke names one database only.
    expect(evaluateGrants(lines, { ...ctx, database: 'other' }).ok).toBe(true);
  });

  it('compares database names without case when lower_case_table_names is set', () => {
    const lines = ["GRANT ALL ON `OpenMRS`.* TO 'openmrs'@'localhost'"];
    expect(evaluateGrants(lines, ctx).ok).toBe(false);
    expect(evaluateGrants(lines, { ...ctx, lowerCaseTableNames: 1 }).ok).toBe(true);
  });

  it('parses odd names: escapes, quotes inside names, grantees without host', () => {
    expect(parseGrantLine('GRANT SELECT ON `a``b\\_c`.* TO `r`')).toEqual({
      revoke: false,
      privileges: ['SELECT'],
      database: 'a`b\\_c',
      grantee: 'r',
    });
    expect(parseGrantLine("GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION")).toBe(
      null,
    );
    expect(parseGrantLine('SET DEFAULT ROLE `r` FOR `u`@`%`')).toBe(null);
    // `\_` is a literal underscore, `_` any one character.
    const lit = evaluateGrants(['GRANT ALL ON `open\\_mrs`.* TO `u`@`%`'], {
      ...ctx,
      database: 'openXmrs',
    });
    expect(lit.ok).toBe(false);
    const wild = evaluateGrants(['GRANT ALL ON `open_mrs`.* TO `u`@`%`'], {
      ...ctx,
      database: 'openXmrs',
    });
    expect(wild.ok).toBe(true);
  });
});
