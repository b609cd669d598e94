/*
 * The addresses a person types in the wizard, as the engine takes them: the database from its
 * parts, and the main server from an IP address or a DDNS name.
 */

export interface DbFields {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

export const EMPTY_DB: DbFields = {
  host: '127.0.0.1',
  port: '3306',
  database: 'openmrs',
  user: 'openmrs',
  password: '',
};

/** mysql://user[:password]@host:port/database (the password only when asked for). */
export function dbUrl(f: DbFields, withPassword: boolean): string {
  const host = f.host.includes(':') && !f.host.startsWith('[') ? `[${f.host}]` : f.host;
  const pw = withPassword && f.password !== '' ? `:${encodeURIComponent(f.password)}` : '';
  return `mysql://${encodeURIComponent(f.user.trim())}${pw}@${host.trim()}:${f.port.trim()}/${f.database.trim()}`;
}

/** The parts of mysql://user[:password]@host[:port]/database, or null. */
export function dbFields(url: string, password: string | null = null): DbFields | null {
  const m =
    /^mysql:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/([^/?#]+)$/.exec(
      url.trim(),
    );
  if (!m) return null;
  const decode = (s: string | undefined) => {
    try {
      return decodeURIComponent(s ?? '');
    } catch {
      return s ?? '';
    }
  };
  return {
    user: decode(m[1]) || 'root',
    password: password ?? decode(m[2]),
    host: m[3]!.replace(/^\[(.*)\]$/, '$1'),
    port: m[4] ?? '3306',
    database: m[5]!,
  };
}

export const DEFAULT_PARENT_PORT = 8750;

/**
 * A main server's address from what a person types: `192.168.1.10`, `district.ddns.net` or
 * `district.ddns.net:9000` (http, port 8750 unless given), or a whole http(s):// address, taken
 * as written. Null when it is none of those.
 */
export function parentUrl(typed: string): string | null {
  const text = typed.trim();
  if (text === '') return null;
  const withScheme = /^https?:\/\//i.test(text);
  try {
    const u = new URL(withScheme ? text : `http://${text}`);
    if (!/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)$/i.test(u.hostname)) return null;
    if (u.pathname !== '/' || u.search || u.hash || u.username) return null;
    if (withScheme) return u.origin;
    // URL drops a port 80 it considers the default; the one typed is kept.
    const typedPort = /:(\d{1,5})\/?$/.exec(text)?.[1];
    return `http://${u.hostname}:${typedPort ?? DEFAULT_PARENT_PORT}`;
  } catch {
    return null;
  }
}
