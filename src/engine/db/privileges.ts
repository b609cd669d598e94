import type { Queryable, RowDataPacket } from './pool.js';
import { queryRows } from './pool.js';

/**
 * What ClinicSync needs on the application database (DESIGN §3): read and write every table, make
 * and change its own tables, install triggers, and lock tables for a consistent snapshot.
 */
export const REQUIRED_PRIVILEGES = [
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'CREATE',
  'ALTER',
  'DROP',
  'INDEX',
  'TRIGGER',
  'LOCK TABLES',
] as const;

export interface PrivilegeCheck {
  ok: boolean;
  /** privilege names as MySQL spells them, e.g. `TRIGGER`, `LOCK TABLES`, `SUPER` */
  missing: string[];
  /** one sentence naming what is missing and the statement a DBA would run; null when ok */
  sentence: string | null;
}

/** Everything about the server and session that the verdict depends on besides the grants. */
export interface GrantContext {
  database: string;
  /** CURRENT_USER(), e.g. `openmrs@localhost` */
  currentUser: string;
  /** @@log_bin: creating triggers then needs SUPER or log_bin_trust_function_creators */
  logBin: boolean;
  trustFunctionCreators: boolean;
  /** @@lower_case_table_names: 0 compares database names case-sensitively */
  lowerCaseTableNames: number;
}

/**
 * Works out from the server's own grant listing whether the connected user may run ClinicSync on
 * `database`, and if not, says what to grant in one sentence.
 */
export async function checkPrivileges(db: Queryable, database: string): Promise<PrivilegeCheck> {
  const [vars] = await queryRows(
    db,
    `SELECT CURRENT_USER() AS cu, @@log_bin AS log_bin,
            @@log_bin_trust_function_creators AS trust, @@lower_case_table_names AS lctn`,
  );
  const ctx: GrantContext = {
    database,
    currentUser: String(vars?.cu ?? ''),
    logBin: Number(vars?.log_bin ?? 0) === 1,
    trustFunctionCreators: Number(vars?.trust ?? 0) === 1,
    lowerCaseTableNames: Number(vars?.lctn ?? 0),
  };
  return evaluateGrants(await grantLines(db), ctx);
}

/**
 * The grant lines in force for this session: the user's own, those of its active roles (MariaDB
 * lists them, nested roles included, under plain SHOW GRANTS; MySQL 8 needs `USING`), and
 * MariaDB's PUBLIC. Roles are optional: servers without them answer with errors that are ignored.
 */
async function grantLines(db: Queryable): Promise<string[]> {
  const lines = new Set<string>();
  const add = async (sql: string, optional: boolean): Promise<void> => {
    try {
      for (const row of await queryRows<RowDataPacket>(db, sql)) {
        const v = Object.values(row)[0];
        if (v != null) lines.add(String(v));
      }
    } catch (e) {
      if (!optional) throw e;
    }
  };
  await add('SHOW GRANTS FOR CURRENT_USER()', false);
  // MariaDB: includes the grants of the current role and of the roles granted to it.
  await add('SHOW GRANTS', true);
  // MySQL 8: CURRENT_ROLE() lists the active roles as `r`@`%`,…; their grants need USING.
  let roles = '';
  try {
    const [r] = await queryRows(db, 'SELECT CURRENT_ROLE() AS r');
    roles = r?.r == null ? '' : String(r.r);
  } catch {
    // MySQL 5.x has no roles.
  }
  if (roles && roles !== 'NONE' && roles.includes('@')) {
    await add(`SHOW GRANTS FOR CURRENT_USER() USING ${roles}`, true);
  }
  // MariaDB 10.11+: privileges granted TO PUBLIC apply to every account.
  await add('SHOW GRANTS FOR PUBLIC', true);
  return [...lines];
}

// ---------------------------------------------------------------------------------------------
// Parsing grant lines

type Tok =
  | { kind: 'word'; text: string } // unquoted: keywords, privilege words, bare names
  | { kind: 'name'; text: string } // `quoted` or 'quoted' or "quoted", unescaped
  | { kind: 'punct'; text: string };

function tokenize(line: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < line.length) {
    const ch = line[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '`' || ch === "'" || ch === '"') {
      let text = '';
      i++;
      while (i < line.length) {
        const c = line[i]!;
        if (c === ch) {
          if (line[i + 1] === ch) {
            text += ch;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === '\\' && ch === "'" && i + 1 < line.length) {
          // String literals take backslash escapes; backquoted names keep backslashes (they are
          // the wildcard escapes of a database pattern, e.g. `open\_mrs`).
          text += line[i + 1];
          i += 2;
          continue;
        }
        text += c;
        i++;
      }
      out.push({ kind: 'name', text });
    } else if (',().*@;'.includes(ch)) {
      out.push({ kind: 'punct', text: ch });
      i++;
    } else {
      let text = '';
      while (i < line.length && !/[\s`'",().*@;]/.test(line[i]!)) text += line[i++];
      out.push({ kind: 'word', text });
    }
  }
  return out;
}

/** One `GRANT privs ON db.* TO grantee` (or a partial `REVOKE … FROM`) at global or database level. */
export interface ParsedGrant {
  revoke: boolean;
  privileges: string[];
  /** `*` for global (`*.*`), else the database name or pattern as stored (wildcards, `\_` escapes) */
  database: string;
  grantee: string;
}

const isWord = (t: Tok | undefined, w: string): boolean =>
  t?.kind === 'word' && t.text.toUpperCase() === w;

/**
 * Parses one SHOW GRANTS line. Returns null for lines that grant nothing database-wide: role
 * grants, table, column and routine grants, PROXY, SET DEFAULT ROLE.
 */
export function parseGrantLine(line: string): ParsedGrant | null {
  const toks = tokenize(line);
  const revoke = isWord(toks[0], 'REVOKE');
  if (!revoke && !isWord(toks[0], 'GRANT')) return null;
  let depth = 0;
  let on = -1;
  let to = -1;
  for (let i = 1; i < toks.length; i++) {
    const t = toks[i]!;
    if (t.kind === 'punct' && t.text === '(') depth++;
    else if (t.kind === 'punct' && t.text === ')') depth--;
    else if (depth === 0 && on < 0 && isWord(t, 'ON')) on = i;
    else if (depth === 0 && on >= 0 && isWord(t, revoke ? 'FROM' : 'TO')) {
      to = i;
      break;
    }
  }
  if (on < 0 || to < 0) return null;

  // Privileges: comma-separated words; one with a column list is column-level and grants no table.
  const privileges: string[] = [];
  let words: string[] = [];
  let columnLevel = false;
  depth = 0;
  const flush = () => {
    if (words.length && !columnLevel) {
      const p = words.join(' ').toUpperCase();
      privileges.push(p === 'ALL' ? 'ALL PRIVILEGES' : p);
    }
    words = [];
    columnLevel = false;
  };
  for (const t of toks.slice(1, on)) {
    if (t.kind === 'punct' && t.text === '(') {
      depth++;
      columnLevel = true;
    } else if (t.kind === 'punct' && t.text === ')') depth--;
    else if (depth > 0) continue;
    else if (t.kind === 'punct' && t.text === ',') flush();
    else words.push(t.text);
  }
  flush();

  // Target: [TABLE] db.* or *.*; routines, single tables and proxies are not database-wide.
  let target = toks.slice(on + 1, to);
  if (isWord(target[0], 'TABLE')) target = target.slice(1);
  if (target.length !== 3) return null;
  const [dbTok, dot, tblTok] = target;
  if (dot?.kind !== 'punct' || dot.text !== '.') return null;
  if (tblTok?.kind !== 'punct' || tblTok.text !== '*') return null;
  let database: string;
  if (dbTok?.kind === 'punct' && dbTok.text === '*') database = '*';
  else if (dbTok && dbTok.kind !== 'punct') database = dbTok.text;
  else return null;

  // Grantee: name [@ host]; PUBLIC and MariaDB roles have no host.
  const g = toks.slice(to + 1);
  const user = g[0];
  if (!user || user.kind === 'punct') return null;
  let grantee = user.text;
  if (g[1]?.kind === 'punct' && g[1].text === '@' && g[2] && g[2].kind !== 'punct') {
    grantee += '@' + g[2].text;
  }
  return { revoke, privileges, database, grantee };
}

// ---------------------------------------------------------------------------------------------
// Evaluating them

/** The privileges that `ALL PRIVILEGES ON db.*` carries and that ClinicSync asks about. */
const DB_LEVEL = new Set<string>(REQUIRED_PRIVILEGES);

interface DbPattern {
  regex: RegExp;
  /** MySQL's ordering of database rows: an exact name first, then the latest first wildcard */
  specificity: number;
  literal: boolean;
}

/** A database name as stored in a grant: `%` and `_` are wildcards, `\` escapes the next one. */
function dbPattern(stored: string, caseInsensitive: boolean): DbPattern {
  let re = '';
  let firstWild = -1;
  for (let i = 0; i < stored.length; i++) {
    const c = stored[i]!;
    if (c === '\\' && i + 1 < stored.length) {
      re += escapeRegex(stored[++i]!);
    } else if (c === '%' || c === '_') {
      if (firstWild < 0) firstWild = i;
      re += c === '%' ? '[\\s\\S]*' : '[\\s\\S]';
    } else {
      re += escapeRegex(c);
    }
  }
  return {
    regex: new RegExp(`^${re}$`, caseInsensitive ? 'iu' : 'u'),
    specificity: firstWild < 0 ? 1000 : firstWild,
    literal: firstWild < 0,
  };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function expand(privs: string[], level: 'global' | 'db'): Set<string> {
  const out = new Set<string>();
  for (const p of privs) {
    if (p === 'ALL PRIVILEGES') {
      for (const d of DB_LEVEL) out.add(d);
      if (level === 'global') out.add('SUPER');
    } else {
      out.add(p);
    }
  }
  return out;
}

interface Principal {
  global: Set<string>;
  dbRows: { pattern: DbPattern; privs: Set<string> }[];
  revoked: Set<string>;
}

/**
 * The verdict for a set of grant lines. Per grantee (the user, each active role, PUBLIC) the
 * server combines the global privileges with the ONE database-level row that matches first (an
 * exact name before any pattern, then the pattern whose first wildcard comes latest: not the union
 * of all matching patterns); the grantees' privileges add up.
 */
export function evaluateGrants(lines: string[], ctx: GrantContext): PrivilegeCheck {
  const ci = ctx.lowerCaseTableNames !== 0;
  const principals = new Map<string, Principal>();
  for (const line of lines) {
    const g = parseGrantLine(line);
    if (!g) continue;
    let p = principals.get(g.grantee);
    if (!p) {
      p = { global: new Set(), dbRows: [], revoked: new Set() };
      principals.set(g.grantee, p);
    }
    if (g.revoke) {
      // MySQL 8 partial revokes name one database literally.
      const pat = dbPattern(g.database, ci);
      if (g.database !== '*' && pat.regex.test(ctx.database)) {
        for (const x of expand(g.privileges, 'db')) p.revoked.add(x);
      }
    } else if (g.database === '*') {
      for (const x of expand(g.privileges, 'global')) p.global.add(x);
    } else {
      p.dbRows.push({ pattern: dbPattern(g.database, ci), privs: expand(g.privileges, 'db') });
    }
  }

  const have = new Set<string>();
  let patternRowInForce = false;
  const globalHave = new Set<string>();
  for (const p of principals.values()) {
    const matching = p.dbRows.filter((r) => r.pattern.regex.test(ctx.database));
    const best = Math.max(-1, ...matching.map((r) => r.pattern.specificity));
    const chosen = matching.filter((r) => r.pattern.specificity === best);
    // Rows of equal rank: the server takes whichever it sorted first; count only what all give.
    const dbPrivs = new Set<string>(chosen[0]?.privs ?? []);
    for (const r of chosen.slice(1)) {
      for (const x of [...dbPrivs]) if (!r.privs.has(x)) dbPrivs.delete(x);
    }
    if (chosen.length && !chosen[0]!.pattern.literal) patternRowInForce = true;
    for (const x of p.global) {
      if (p.revoked.has(x)) continue;
      have.add(x);
      globalHave.add(x);
    }
    for (const x of dbPrivs) have.add(x);
  }

  const missing: string[] = REQUIRED_PRIVILEGES.filter((x) => !have.has(x));
  const needSuper = ctx.logBin && !ctx.trustFunctionCreators && !globalHave.has('SUPER');
  if (needSuper) missing.push('SUPER');
  if (missing.length === 0) return { ok: true, missing: [], sentence: null };
  return { ok: false, missing, sentence: sentenceFor(missing, ctx, patternRowInForce, globalHave) };
}

function listInWords(xs: string[]): string {
  if (xs.length <= 1) return xs.join('');
  return `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}

function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The database as a GRANT target: wildcards escaped so the grant covers this database only. */
function grantTarget(database: string): string {
  return '`' + database.replace(/`/g, '``').replace(/([\\_%])/g, '\\$1') + '`.*';
}

function sentenceFor(
  missing: string[],
  ctx: GrantContext,
  patternRowInForce: boolean,
  globalHave: Set<string>,
): string {
  const at = ctx.currentUser.lastIndexOf('@');
  const user = at < 0 ? ctx.currentUser : ctx.currentUser.slice(0, at);
  const host = at < 0 ? '%' : ctx.currentUser.slice(at + 1);
  const account = `${sqlString(user)}@${sqlString(host)}`;
  const dbMissing = missing.filter((m) => m !== 'SUPER');
  const parts: string[] = [];
  const fixes: string[] = [];
  if (dbMissing.length) {
    parts.push(
      `lacks the ${listInWords(dbMissing)} ${dbMissing.length === 1 ? 'privilege' : 'privileges'} on ${ctx.database}`,
    );
    // A new grant on the exact name would take precedence over the pattern row in force now and
    // hide what that row gives, so the statement then names everything ClinicSync needs.
    const grant = patternRowInForce
      ? REQUIRED_PRIVILEGES.filter((x) => !globalHave.has(x))
      : dbMissing;
    fixes.push(`GRANT ${grant.join(', ')} ON ${grantTarget(ctx.database)} TO ${account};`);
  }
  if (missing.includes('SUPER')) {
    parts.push(
      `${dbMissing.length ? 'and ' : ''}may not create triggers while binary logging is on ` +
        '(that needs SUPER or the server setting log_bin_trust_function_creators = 1)',
    );
    fixes.push('SET GLOBAL log_bin_trust_function_creators = 1;');
  }
  const lasting = missing.includes('SUPER')
    ? ' and add log_bin_trust_function_creators = 1 to the server configuration so it survives a restart'
    : '';
  return `The database user ${ctx.currentUser} ${parts.join(' ')}; ask the administrator to run: ${fixes.join(' ')}${lasting}`;
}
