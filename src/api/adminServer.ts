import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Home } from '../engine/config/home.js';
import { SyncError } from '../engine/errors.js';
import { HTTP_STATUS, ROUTES, type Route } from './routes.js';
import {
  API_OPERATIONS,
  ApiError,
  isApiError,
  type ApiErrorBody,
  type ApiEvent,
  type ApiOperation,
  type SyncApi,
} from './types.js';

/*
 * The engine's admin HTTP API (DESIGN §2, §8): SyncApi as REST plus a Server-Sent Events stream
 * (Syncthing-style), for a browser on the same computer and for the desktop app attaching to a
 * running service. Loopback only; every request carries the admin token. Routes: routes.ts.
 */

export const ADMIN_TOKEN_SECRET = 'admin-token';

/** The admin token in the node's secrets, made (32 random bytes) on first use. */
export function adminToken(home: Home): string {
  const stored = home.readSecret(ADMIN_TOKEN_SECRET)?.trim();
  if (stored && stored.length >= 32) return stored;
  const token = randomBytes(32).toString('base64url');
  home.writeSecret(ADMIN_TOKEN_SECRET, token);
  return token;
}

/** The window's Content-Security-Policy: its own scripts, styles and API only. */
export const RENDERER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface AdminServerOptions {
  api: SyncApi;
  /** a loopback address: 127.0.0.1 (or another 127.x.x.x), ::1 or localhost */
  host: string;
  /** 0 picks a free port */
  port: number;
  token: string;
  /** the built renderer, served at / (optional) */
  staticDir?: string;
  /** largest request body accepted, in bytes (default 64 KiB) */
  bodyLimit?: number;
  /** seconds between keep-alive comments on the event stream (default 15) */
  heartbeatSeconds?: number;
}

export interface AdminServer {
  /** like http://127.0.0.1:8751, without the token */
  url: string;
  port: number;
  close(): Promise<void>;
}

const DEFAULT_BODY_LIMIT = 64 * 1024;

/** The loopback address to bind, or a usage error for anything that would reach the network. */
export function loopbackHost(host: string): string {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return '127.0.0.1';
  if (net.isIPv4(h) && h.startsWith('127.')) return h;
  if (net.isIPv6(h) && (h === '::1' || h === '0:0:0:0:0:0:0:1')) return '::1';
  throw new SyncError(
    'usage',
    `The admin API listens on this computer only (127.0.0.1 or ::1), not on ${host}: it controls the node, so it must not be reachable from the network.`,
  );
}

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const host = loopbackHost(opts.host);
  if (opts.token.length < 16) {
    throw new SyncError('usage', 'The admin token must be at least 16 characters long.');
  }
  checkApi(opts.api);
  const tokenDigest = digest(opts.token);
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const heartbeatMs = (opts.heartbeatSeconds ?? 15) * 1000;
  const staticRoot = opts.staticDir ? path.resolve(opts.staticDir) : null;
  const streams = new Set<http.ServerResponse>();
  let port = opts.port;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, internal(e));
      else res.destroy();
    });
  });
  server.headersTimeout = 20_000;
  server.requestTimeout = 0; // syncNow and the event stream run long; the body limit bounds input

  const cookieName = () => `clinicsync_admin_${port}`;

  function authorized(req: http.IncomingMessage, url: URL): boolean {
    const header = req.headers.authorization;
    const bearer = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    const candidates = [bearer, url.searchParams.get('token'), cookieOf(req, cookieName())];
    let ok = false;
    // Every candidate is compared (in constant time), so timing says nothing about which matched.
    for (const c of candidates) if (c && timingSafeEqual(digest(c), tokenDigest)) ok = true;
    return ok;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // A page from another site that resolves its own name to 127.0.0.1 (DNS rebinding) is refused.
    if (!loopbackHostHeader(req.headers.host)) {
      sendError(res, new ApiError('unauthorized', 'The admin API answers only to this computer.'));
      return;
    }
    const url = new URL(req.url ?? '/', 'http://loopback');
    if (!authorized(req, url)) {
      drain(req);
      sendError(
        res,
        new ApiError(
          'unauthorized',
          'The admin token is missing or wrong; open the address "clinic-sync admin-url" prints.',
        ),
      );
      return;
    }
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) {
      await handleApi(req, res, url);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(
        res,
        new ApiError(
          'not-found',
          `${req.method} ${url.pathname} is not an address of the admin API.`,
        ),
      );
      return;
    }
    if (url.searchParams.has('token')) {
      // The first page load carries the token in its address: keep it in a cookie for the page's
      // own requests, and take it out of the address bar and history.
      const clean = new URL(url);
      clean.searchParams.delete('token');
      res.writeHead(303, {
        location: clean.pathname + clean.search,
        'set-cookie': `${cookieName()}=${encodeURIComponent(opts.token)}; HttpOnly; SameSite=Strict; Path=/`,
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
      });
      res.end();
      return;
    }
    if (!staticRoot) {
      sendError(
        res,
        new ApiError(
          'not-found',
          'This engine serves the admin API only; the window is not installed here.',
        ),
      );
      return;
    }
    await serveStatic(staticRoot, url.pathname, req, res);
  }

  async function handleApi(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
  ): Promise<void> {
    const match = matchRoute(req.method ?? 'GET', url.pathname);
    if (!match) {
      drain(req);
      sendError(
        res,
        new ApiError(
          'not-found',
          `${req.method} ${url.pathname} is not an operation of the admin API.`,
        ),
      );
      return;
    }
    if (match.op === 'subscribe') {
      openEventStream(req, res);
      return;
    }
    let body: unknown;
    try {
      body = await readJson(req, bodyLimit);
    } catch (e) {
      sendError(res, toApiError(e), isTooLarge(e) ? 413 : undefined);
      return;
    }
    try {
      const result = await call(opts.api, match.op, match.key, body, url);
      sendJson(res, 200, result ?? null);
    } catch (e) {
      sendError(res, toApiError(e));
    }
  }

  function openEventStream(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-content-type-options': 'nosniff',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    streams.add(res);
    let id = 0;
    const write = (text: string) => {
      if (!res.writableEnded && !res.destroyed) res.write(text);
    };
    const unsubscribe = opts.api.subscribe((e: ApiEvent) => {
      write(`id: ${++id}\ndata: ${JSON.stringify(e)}\n\n`);
    });
    const beat = setInterval(() => write(': ping\n\n'), heartbeatMs);
    beat.unref();
    const done = () => {
      clearInterval(beat);
      unsubscribe();
      streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(
        e.code === 'EADDRINUSE'
          ? new SyncError(
              'state',
              `The admin address ${host}:${opts.port} is already in use; stop what uses it or choose another port with --admin.`,
              { cause: e },
            )
          : new SyncError(
              'state',
              `The admin API cannot listen on ${host}:${opts.port}: ${e.message}.`,
              { cause: e },
            ),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(opts.port, host);
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the admin server has no address');
  port = address.port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.end();
        streams.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Routing

function matchRoute(
  method: string,
  pathname: string,
): { op: ApiOperation; key: string | null } | null {
  for (const op of API_OPERATIONS) {
    const route: Route = ROUTES[op];
    const head = method === 'HEAD' && route.method === 'GET' && op !== 'subscribe';
    if (route.method !== method && !head) continue;
    if (route.path.endsWith('/:key')) {
      const prefix = route.path.slice(0, -':key'.length);
      const rest = pathname.startsWith(prefix) ? pathname.slice(prefix.length) : '';
      if (rest && !rest.includes('/')) {
        try {
          return { op, key: decodeURIComponent(rest) };
        } catch {
          return null;
        }
      }
    } else if (route.path === pathname) {
      return { op, key: null };
    }
  }
  return null;
}

async function call(
  api: SyncApi,
  op: Exclude<ApiOperation, 'subscribe'>,
  key: string | null,
  body: unknown,
  url: URL,
): Promise<unknown> {
  const limit = () => {
    const raw = url.searchParams.get('limit');
    // A limit that is not a number reaches the API's own check as NaN, which refuses it.
    return raw === null ? {} : { limit: raw.trim() === '' ? Number.NaN : Number(raw) };
  };
  switch (op) {
    case 'getStatus':
      return api.getStatus();
    case 'listChildren':
      return api.listChildren();
    case 'syncNow':
      return api.syncNow();
    case 'pauseSync':
      return api.pauseSync(body as Parameters<SyncApi['pauseSync']>[0]);
    case 'resumeSync':
      return api.resumeSync();
    case 'getSettings':
      return api.getSettings();
    case 'updateSetting': {
      const value = isRecord(body) ? body.value : undefined;
      return api.updateSetting(key ?? '', value as string);
    }
    case 'setOpenmrsLogin':
      return api.setOpenmrsLogin(body as Parameters<SyncApi['setOpenmrsLogin']>[0]);
    case 'createPairingCode':
      return api.createPairingCode(body as Parameters<SyncApi['createPairingCode']>[0]);
    case 'listConflicts':
      return api.listConflicts(limit());
    case 'listHistory':
      return api.listHistory(limit());
    case 'listParked':
      return api.listParked(limit());
    case 'startClone':
      return api.startClone(body as Parameters<SyncApi['startClone']>[0]);
    case 'cloneProgress':
      return api.cloneProgress();
    case 'getSetupState':
      return api.getSetupState();
    case 'saveSetupProgress':
      return api.saveSetupProgress((body ?? null) as Parameters<SyncApi['saveSetupProgress']>[0]);
    case 'detectOpenmrs':
      return api.detectOpenmrs();
    case 'testDatabase':
      return api.testDatabase(body as Parameters<SyncApi['testDatabase']>[0]);
    case 'initRoot':
      return api.initRoot(body as Parameters<SyncApi['initRoot']>[0]);
    case 'checkParent':
      return api.checkParent(body as Parameters<SyncApi['checkParent']>[0]);
    case 'listDrives':
      return api.listDrives();
    case 'findTransferFiles':
      return api.findTransferFiles(body as Parameters<SyncApi['findTransferFiles']>[0]);
    case 'exportTransfer':
      return api.exportTransfer(body as Parameters<SyncApi['exportTransfer']>[0]);
    case 'importTransfer':
      return api.importTransfer(body as Parameters<SyncApi['importTransfer']>[0]);
  }
}

function checkApi(api: SyncApi): void {
  for (const op of API_OPERATIONS) {
    if (typeof api[op] !== 'function') throw new Error(`the SyncApi given lacks ${op}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Requests and responses

class TooLarge extends ApiError {
  constructor(limit: number) {
    super('usage', `The request is larger than the admin API accepts (${limit} bytes).`);
  }
}

function isTooLarge(e: unknown): boolean {
  return e instanceof TooLarge;
}

/** The JSON body, or undefined when there is none. */
async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new TooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new TooLarge(limit);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError('usage', 'The request body is not valid JSON.');
  }
}

function drain(req: http.IncomingMessage): void {
  req.resume();
}

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res: http.ServerResponse, e: ApiError, status?: number): void {
  const body: ApiErrorBody = { kind: e.kind, message: e.message };
  const headers: Record<string, string> = {};
  if (e.kind === 'unauthorized') headers['www-authenticate'] = 'Bearer realm="clinic-sync"';
  const text = JSON.stringify(body);
  res.writeHead(status ?? HTTP_STATUS[e.kind], {
    ...JSON_HEADERS,
    ...headers,
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function toApiError(e: unknown): ApiError {
  return isApiError(e) ? e : internal(e);
}

function internal(e: unknown): ApiError {
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError('internal', `ClinicSync stopped on an unexpected error: ${message}`);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function cookieOf(req: http.IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

function loopbackHostHeader(value: string | undefined): boolean {
  if (value === undefined) return true;
  const m = value.match(/^(\[[^\]]+\]|[^:]+)(:\d+)?$/);
  if (!m) return false;
  const name = m[1]!.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return name === 'localhost' || name === '::1' || (net.isIPv4(name) && name.startsWith('127.'));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------
// The built renderer

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves a file under root. The path is normalised before it is joined (so `..` cannot climb),
 * hidden names are refused, and the real path must still lie inside root (so a symlink cannot
 * lead out). A path without an extension that names no file gets index.html (client routing).
 */
async function serveStatic(
  root: string,
  pathname: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const notFound = () =>
    sendError(res, new ApiError('not-found', `There is no page at ${pathname}.`));
  let rel: string;
  try {
    rel = decodeURIComponent(pathname);
  } catch {
    notFound();
    return;
  }
  if (rel.includes('\0') || rel.includes('\\')) {
    notFound();
    return;
  }
  const normal = path.posix.normalize(`/${rel}`);
  if (normal.split('/').some((part) => part.startsWith('.'))) {
    notFound();
    return;
  }
  let file = path.join(root, ...normal.split('/').filter(Boolean));
  let stat = await fs.stat(file).catch(() => null);
  if (stat?.isDirectory()) {
    file = path.join(file, 'index.html');
    stat = await fs.stat(file).catch(() => null);
  }
  if (!stat && path.posix.extname(normal) === '') {
    file = path.join(root, 'index.html');
    stat = await fs.stat(file).catch(() => null);
  }
  if (!stat?.isFile()) {
    notFound();
    return;
  }
  const [realRoot, realFile] = await Promise.all([fs.realpath(root), fs.realpath(file)]);
  if (!realFile.startsWith(realRoot + path.sep)) {
    notFound();
    return;
  }
  const body = await fs.readFile(realFile);
  const type = CONTENT_TYPES[path.extname(realFile).toLowerCase()] ?? 'application/octet-stream';
  res.writeHead(200, {
    'content-type': type,
    'content-length': body.length,
    'content-security-policy': RENDERER_CSP,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cache-control': type.startsWith('text/html') ? 'no-store' : 'no-cache',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
