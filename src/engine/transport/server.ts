import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { execute, queryRows } from '../db/pool.js';
import { SyncError, isSyncError } from '../errors.js';
import { dbTrouble, withDbRetry } from '../node/dbRetry.js';
import { diskGuardOf } from '../node/disk.js';
import { getMeta } from '../node/meta.js';
import type { SyncNode } from '../node/node.js';
import type { Limits } from '../node/outgoing.js';
import { recloneMarkedAt, recloneSentence } from '../node/prune.js';
import {
  PROTOCOL_VERSION,
  SUPPORTED_VERSIONS,
  decodeEnvelope,
  encodeEnvelope,
  isCompressed,
} from '../protocol/xml.js';
import {
  HEADER,
  REFUSAL_SENTENCE,
  TIME_WINDOW_MS,
  headerValue,
  readSignedHeaders,
  sameSignature,
  sha256Hex,
  signRequest,
  signResponse,
  withinWindow,
  type Refusal,
} from './auth.js';
import { acceptPairing, type ParentIdentity } from './pairing.js';
import { checkBatchAgainstSchema } from './schemaCheck.js';
import { FILES_PATH, filesRoute } from '../files/network.js';

/*
 * The endpoints children call (issue 4, DESIGN §5 and §8), on node:http: the handful of routes
 * needs no framework, and the raw body bytes must be hashed and checked against the signature
 * before anything parses them, which node:http gives directly (a framework's body parsers would
 * have to be bypassed for that).
 *
 *   GET  /v1/hello     the parent's id, name and protocol versions; no authentication
 *   POST /v1/pair      a child presents a pairing code (see pairing.ts)
 *   POST /v1/exchange  one exchange: the child's envelope in, the parent's reply out (signed)
 *   POST <route>       further signed routes added with route() or extraRoutes (the snapshot)
 *
 * Every answer carries X-ClinicSync-Time (the parent's clock); every answer to a known node is
 * signed (X-ClinicSync-Signature, or a trailer of that name on a streamed body). Payloads are
 * never logged. One request per child at a time on exclusive routes (the exchange), any number
 * of children at once.
 *
 * The parent is reachable from the internet, so anyone can send it bytes (issue 8, item 5): every
 * refusal is a 4xx with one sentence and nothing applied. Headers must arrive within
 * headersTimeoutMs, a body may fall silent for at most bodyIdleMs (a slow sender cannot hold a
 * connection for nothing), one address holds at most maxConnectionsPerAddress connections, bodies
 * are bounded before and after gunzip, and a batch is checked against this database's schema
 * before any of it is applied (schemaCheck.ts). Over HTTPS (`tls`) it is the same server.
 */

export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;
const PAIR_MAX_BODY_BYTES = 16 * 1024;
/** How long a request may take to arrive whole: generous, for 1 kbit/s links. */
const REQUEST_TIMEOUT_MS = 30 * 60 * 1000;
const HEADERS_TIMEOUT_MS = 60 * 1000;
const BODY_IDLE_MS = 60 * 1000;
/** Longer than the child's (30 s less its 10 s margin): the child always closes first. */
const KEEP_ALIVE_TIMEOUT_MS = 60 * 1000;
const PRUNE_NONCES_EVERY_MS = 60 * 1000;
const MAX_CONNECTIONS_PER_ADDRESS = 32;
const DEFAULT_MAX_INFLATED_BYTES = 64 * 1024 * 1024;

/** The child a signed request came from. */
export interface AuthedPeer {
  nodeId: string;
  name: string;
}

export interface RouteRequest {
  node: SyncNode;
  peer: AuthedPeer;
  /** the request body as received (already checked against the signature) */
  body: Buffer;
  headers: IncomingHttpHeaders;
  /** aborted when the child goes away before the answer is sent */
  signal: AbortSignal;
}

export interface RouteReply {
  /** default 200 */
  status?: number;
  /** default application/octet-stream */
  contentType?: string;
  headers?: Record<string, string>;
  /** a Buffer or string is sent with a signature header; a stream is signed in a trailer */
  body: Buffer | string | Readable;
}

export type RouteHandler = (req: RouteRequest) => Promise<RouteReply>;

export interface RouteOptions {
  /** one request per child at a time on this route and the other exclusive ones (the exchange) */
  exclusive?: boolean;
  /** the largest request body accepted (default: the server's) */
  maxBodyBytes?: number;
}

export interface ServerEvent {
  level: 'info' | 'warn' | 'error';
  /** one line, never a payload or a secret */
  message: string;
  method?: string;
  route?: string;
  /** the child's node id, once known */
  node?: string;
  status?: number;
  ms?: number;
}

export interface SyncServerOptions {
  node: SyncNode;
  host: string;
  /** 0 picks a free port */
  port: number;
  /** the largest request body (default 32 MiB); larger ones get 413 */
  maxBodyBytes?: number;
  /** the largest batch once gunzipped (default 64 MiB); larger ones get 400 */
  maxInflatedBytes?: number;
  /** how long a request's headers may take to arrive (default 60 s); slower ones get 408 */
  headersTimeoutMs?: number;
  /** the longest silence while a body arrives (default 60 s); a longer one gets 408 */
  bodyIdleMs?: number;
  /** connections at once from one address (default 32); more are closed at once */
  maxConnectionsPerAddress?: number;
  /** serve HTTPS with this certificate and key (PEM; see tls.ts) instead of HTTP */
  tls?: { cert: string; key: string };
  /** further signed POST routes, e.g. { '/v1/snapshot': handler } */
  extraRoutes?: Record<string, RouteHandler | { handler: RouteHandler; options?: RouteOptions }>;
  log?: (e: ServerEvent) => void;
  /** the parent's clock (tests) */
  now?: () => number;
}

export interface SyncServer {
  /** http://HOST:PORT (or https://) as bound */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** adds a signed POST route; a path already taken is refused */
  route(path: string, handler: RouteHandler, options?: RouteOptions): void;
  /** stops accepting, lets answers in progress finish (up to a grace period), then closes */
  close(): Promise<void>;
}

/** A reply decided on the way: status, one sentence, and for a 401 the reason. */
class HttpReply extends Error {
  constructor(
    readonly status: number,
    readonly sentence: string,
    readonly refusal?: Refusal,
  ) {
    super(sentence);
  }
}

function refuse(refusal: Refusal): HttpReply {
  return new HttpReply(401, REFUSAL_SENTENCE[refusal], refusal);
}

interface Route {
  handler: RouteHandler;
  options: RouteOptions;
}

const ROUTE_PATH = /^\/v[0-9]+\/[a-z][a-z0-9-]{0,40}$/;

export async function startSyncServer(opts: SyncServerOptions): Promise<SyncServer> {
  const node = opts.node;
  const now = opts.now ?? Date.now;
  const log = opts.log ?? (() => undefined);
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxInflated = opts.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES;
  const bodyIdleMs = opts.bodyIdleMs ?? BODY_IDLE_MS;
  const headersTimeoutMs = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const routes = new Map<string, Route>();
  const chains = new Map<string, Promise<unknown>>();
  const inFlight = new Set<Promise<void>>();
  let lastPrune = 0;

  const addRoute = (path: string, handler: RouteHandler, options: RouteOptions = {}) => {
    if (!ROUTE_PATH.test(path) || path === '/v1/hello' || path === '/v1/pair') {
      throw new SyncError('usage', `"${path}" cannot be a signed route (like /v1/snapshot).`);
    }
    if (routes.has(path)) throw new SyncError('usage', `The route ${path} is already served.`);
    routes.set(path, { handler, options });
  };

  addRoute('/v1/exchange', (req) => exchange(node, req, { maxBody, maxInflated }, log), {
    exclusive: true,
  });
  // Complex obs files (issue 12): every parent serves them; a node without files answers empty.
  addRoute(FILES_PATH, filesRoute(), { exclusive: true });
  for (const [path, r] of Object.entries(opts.extraRoutes ?? {})) {
    if (typeof r === 'function') addRoute(path, r);
    else addRoute(path, r.handler, r.options);
  }

  /** One request per child at a time: each waits for the one before it. */
  const serialize = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const run = (chains.get(key) ?? Promise.resolve()).then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    chains.set(key, tail);
    void tail.then(() => {
      if (chains.get(key) === tail) chains.delete(key);
    });
    return run;
  };

  const parent = async (): Promise<ParentIdentity> => ({
    nodeId: node.nodeId,
    name: (await getMeta(node.pool, 'name')) ?? node.settings.name,
    incarnation: node.incarnation,
  });

  /** The child's secret, or null where the node is not a paired child of this one. */
  const childSecret = async (nodeId: string): Promise<{ name: string; secret: Buffer } | null> => {
    const [row] = await queryRows(
      node.pool,
      "SELECT name, secret FROM clinicsync_peer WHERE node_id = ? AND relation = 'child' AND secret IS NOT NULL",
      [nodeId],
    );
    if (!row) return null;
    return { name: String(row.name), secret: Buffer.from(row.secret as Buffer) };
  };

  /** Remembers a nonce for the window; false where it was already seen. */
  const freshNonce = async (nodeId: string, nonce: string, time: number): Promise<boolean> => {
    const t = now();
    if (t - lastPrune > PRUNE_NONCES_EVERY_MS) {
      lastPrune = t;
      // A nonce must be kept while its request's time is inside the window, with a margin for
      // the seconds the column drops.
      await execute(node.pool, 'DELETE FROM clinicsync_nonce WHERE at < ?', [
        sqlTime(t - TIME_WINDOW_MS - 60_000),
      ]);
    }
    try {
      await execute(node.pool, 'INSERT INTO clinicsync_nonce (peer, nonce, at) VALUES (?, ?, ?)', [
        nodeId,
        nonce,
        sqlTime(time),
      ]);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'ER_DUP_ENTRY') return false;
      throw e;
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = Date.now();
    const timeText = String(now());
    res.setHeader('X-ClinicSync-Time', timeText);
    const method = req.method ?? 'GET';
    let path = '/';
    try {
      path = new URL(req.url ?? '/', 'http://host').pathname;
    } catch {
      // answered 404 below
    }
    let signer: { secret: Buffer; nonce: string } | null = null;
    let peerId: string | undefined;
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const done = (status: number, sentence?: string) => {
      const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
      log({
        level,
        message: `${method} ${path} ${status}${sentence ? `: ${withoutQuotes(sentence)}` : ''}`,
        method,
        route: path,
        ...(peerId ? { node: peerId } : {}),
        status,
        ms: Date.now() - started,
      });
    };
    try {
      if (path === '/v1/hello') {
        if (method !== 'GET' && method !== 'HEAD') throw notAllowed('GET');
        const p = await parent();
        sendBody(
          res,
          200,
          json({
            service: 'clinicsync',
            ...p,
            protocol: PROTOCOL_VERSION,
            protocols: SUPPORTED_VERSIONS,
          }),
          'application/json',
          null,
        );
        done(200);
        return;
      }
      if (path === '/v1/pair') {
        if (method !== 'POST') throw notAllowed('POST');
        const body = await readBody(req, PAIR_MAX_BODY_BYTES, bodyIdleMs);
        const outcome = await acceptPairing(
          node.pool,
          await parent(),
          body,
          headerValue(req.headers, HEADER.proof),
          now(),
        );
        if (!outcome.ok) throw new HttpReply(outcome.status, outcome.sentence);
        peerId = outcome.child.nodeId;
        sendBody(res, 200, json(outcome.answer), 'application/json', null);
        done(200, `paired the clinic "${outcome.child.name}"`);
        return;
      }
      const route = routes.get(path);
      if (!route) throw new HttpReply(404, 'There is no such ClinicSync endpoint.');
      if (method !== 'POST') throw notAllowed('POST');

      const signed = readSignedHeaders(req.headers);
      if (!signed) throw refuse('unsigned');
      peerId = signed.node;
      const child = await childSecret(signed.node);
      if (!child) throw refuse('unknown-node');
      signer = { secret: child.secret, nonce: signed.nonce };
      const body = await readBody(req, route.options.maxBodyBytes ?? maxBody, bodyIdleMs);
      const expected = signRequest(child.secret, {
        method,
        path,
        node: signed.node,
        time: signed.timeText,
        nonce: signed.nonce,
        bodySha256: sha256Hex(body),
      });
      if (!sameSignature(expected, signed.signature)) throw refuse('signature');
      if (!withinWindow(signed.time, now())) throw refuse('time');
      if (!(await freshNonce(signed.node, signed.nonce, signed.time))) throw refuse('replay');

      const peer: AuthedPeer = { nodeId: signed.node, name: child.name };
      const call = () =>
        route.handler({ node, peer, body, headers: req.headers, signal: ac.signal });
      const reply = route.options.exclusive ? await serialize(peer.nodeId, call) : await call();
      const status = reply.status ?? 200;
      for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
      const type = reply.contentType ?? 'application/octet-stream';
      if (reply.body instanceof Readable) {
        await sendStream(res, status, reply.body, type, signer);
      } else {
        sendBody(res, status, Buffer.from(reply.body), type, signer);
      }
      done(status);
    } catch (e) {
      const r = asReply(e);
      if (r.status >= 500) {
        log({
          level: 'error',
          message: `${method} ${path} failed: ${describeFailure(e)}`,
          method,
          route: path,
          ...(peerId ? { node: peerId } : {}),
        });
      }
      if (res.headersSent) {
        // A streamed answer broke midway: the child sees a cut body and a missing signature.
        res.destroy();
        done(r.status, r.sentence);
        return;
      }
      if (r.refusal) res.setHeader('X-ClinicSync-Refusal', r.refusal);
      if (r.status === 405) res.setHeader('Allow', r.sentence.includes('GET') ? 'GET' : 'POST');
      // A body left unread is not worth reading: the connection closes after the answer.
      if (r.status === 413 || r.status === 408 || !req.complete)
        res.setHeader('Connection', 'close');
      sendBody(
        res,
        r.status,
        Buffer.from(`${r.sentence}\n`, 'utf8'),
        'text/plain; charset=utf-8',
        signer,
      );
      if (!req.complete) req.resume();
      done(r.status, r.sentence);
    }
  };

  const serverOptions = {
    requestTimeout: REQUEST_TIMEOUT_MS,
    headersTimeout: headersTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // How often Node looks for requests past their time: often enough for the headers' limit.
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(headersTimeoutMs / 4))),
  };
  const server = opts.tls
    ? https.createServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key })
    : http.createServer(serverOptions);
  const perAddress = new Map<string, number>();
  const maxPerAddress = opts.maxConnectionsPerAddress ?? MAX_CONNECTIONS_PER_ADDRESS;
  server.on('connection', (socket: Socket) => {
    const from = socket.remoteAddress ?? '';
    const n = (perAddress.get(from) ?? 0) + 1;
    if (n > maxPerAddress) {
      log({
        level: 'warn',
        message: `closed a connection: ${maxPerAddress} already open from one address`,
      });
      socket.destroy();
      return;
    }
    perAddress.set(from, n);
    socket.once('close', () => {
      const left = (perAddress.get(from) ?? 1) - 1;
      if (left > 0) perAddress.set(from, left);
      else perAddress.delete(from);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const p = handle(req, res).catch(() => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else res.destroy();
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const [status, sentence] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'The request did not arrive in time; the connection was closed.']
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, "The request's headers are too large."]
          : [400, 'The request is not valid HTTP.'];
    log({
      level: 'warn',
      message: `refused a connection's request ${status}: ${sentence}`,
      status,
    });
    if (socket.writable) {
      const body = `${sentence}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    } else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(
        new SyncError(
          'usage',
          e.code === 'EADDRINUSE'
            ? `The address ${opts.host}:${opts.port} is already in use; choose another with --listen HOST:PORT.`
            : `ClinicSync cannot listen on ${opts.host}:${opts.port} (${e.code ?? e.message}); choose another address with --listen HOST:PORT.`,
          { cause: e },
        ),
      );
    };
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address;
  const url = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;

  let closing: Promise<void> | null = null;
  return {
    url,
    host,
    port: address.port,
    route: addRoute,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const grace = setTimeout(() => server.closeAllConnections(), 10_000);
        await Promise.allSettled([...inFlight]);
        server.closeIdleConnections();
        await closed;
        clearTimeout(grace);
      })();
      return closing;
    },
  };
}

/**
 * POST /v1/exchange: apply the child's batch, answer with the parent's batch for it (no bigger
 * than the child asks for in X-ClinicSync-Batch). A batch that does not fit this database is
 * refused whole; below the free-disk threshold nothing is applied and the child is told so.
 */
async function exchange(
  node: SyncNode,
  req: RouteRequest,
  limits: { maxBody: number; maxInflated: number },
  log: (e: ServerEvent) => void,
): Promise<RouteReply> {
  const env = decodeEnvelope(req.body, {
    maxBytes: limits.maxBody,
    maxInflatedBytes: limits.maxInflated,
  });
  if (env.from.node !== req.peer.nodeId) {
    throw new HttpReply(
      403,
      'The batch says it comes from another clinic than the one that signed it; nothing was applied.',
    );
  }
  if ((await recloneMarkedAt(node.pool, req.peer.nodeId)) !== null) {
    throw new HttpReply(409, recloneSentence(node.settings.storage.childSilentDays));
  }
  checkBatchAgainstSchema(env, await node.tablePlans());
  const disk = await diskGuardOf(node).check();
  if (disk.stop) {
    log({ level: 'warn', message: disk.stop, node: req.peer.nodeId });
    throw new HttpReply(
      507,
      "The main server's disk is almost full, so it applies nothing until space is freed there; ClinicSync will try again.",
    );
  }
  const { reply } = await withDbRetry(() => node.answer(env, batchHint(req.headers)), {
    db: node.db,
  });
  // Answered in the child's own protocol version and compression, so a child one version behind
  // reads it.
  const body = encodeEnvelope({ ...reply, version: env.version }, { gzip: isCompressed(req.body) });
  return { contentType: 'application/xml', body };
}

/** The child's `records=N, bytes=M`, or undefined where absent or malformed. */
function batchHint(headers: IncomingHttpHeaders): Limits | undefined {
  const raw = headerValue(headers, HEADER.batch);
  const m = raw ? /^records=([0-9]{1,9}), *bytes=([0-9]{1,12})$/.exec(raw.trim()) : null;
  if (!m) return undefined;
  return { records: Math.max(1, Number(m[1])), bytes: Math.max(1024, Number(m[2])) };
}

/** A sentence fit for the log: glimpses of what was sent ("…" in quotes) left out. */
function withoutQuotes(sentence: string): string {
  return sentence.replace(/"[^"]*"/g, '"…"');
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

function notAllowed(method: 'GET' | 'POST'): HttpReply {
  return new HttpReply(405, `This endpoint answers ${method} requests only.`);
}

function sqlTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/**
 * Reads a request body up to `limit` bytes; more is refused with 413 before it is all read, and a
 * body that falls silent for `idleMs` with 408 (a slow sender holds no connection for nothing).
 */
function readBody(req: IncomingMessage, limit: number, idleMs: number): Promise<Buffer> {
  const tooLarge = () =>
    new HttpReply(
      413,
      `The request is larger than ${limit >= 1 << 20 ? `${limit / (1 << 20)} MiB` : `${Math.ceil(limit / 1024)} KiB`}, the most this server accepts.`,
    );
  const declared = Number(req.headers['content-length'] ?? '0');
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  // Gone already (cut while the headers were being checked): its 'close' will not come again.
  if (req.destroyed) return Promise.reject(new HttpReply(400, 'The request was cut short.'));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = (e: Error | null) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (e) {
        req.pause();
        reject(e);
      } else resolve(Buffer.concat(chunks, size));
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          finish(
            new HttpReply(
              408,
              `The request arrived too slowly (nothing for ${Math.round(idleMs / 1000)} seconds); the connection was closed.`,
            ),
          ),
        idleMs,
      );
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish(tooLarge());
      else {
        chunks.push(chunk);
        arm();
      }
    };
    const onEnd = () => finish(null);
    const onError = (e: Error) => finish(e);
    const onClose = () => {
      if (!req.complete) finish(new HttpReply(400, 'The request was cut short.'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
    arm();
  });
}

function sendBody(
  res: ServerResponse,
  status: number,
  body: Buffer,
  contentType: string,
  signer: { secret: Buffer; nonce: string } | null,
): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', String(body.length));
  res.setHeader('Cache-Control', 'no-store');
  if (signer) {
    res.setHeader(
      'X-ClinicSync-Signature',
      signResponse(signer.secret, {
        status,
        time: String(res.getHeader('X-ClinicSync-Time')),
        nonce: signer.nonce,
        bodySha256: sha256Hex(body),
      }),
    );
  }
  res.end(body);
}

/** A streamed answer: chunked, its signature in a trailer computed over what was sent. */
async function sendStream(
  res: ServerResponse,
  status: number,
  body: Readable,
  contentType: string,
  signer: { secret: Buffer; nonce: string },
): Promise<void> {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Trailer', 'X-ClinicSync-Signature');
  const hash = createHash('sha256');
  try {
    for await (const chunk of body as AsyncIterable<Buffer | string>) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      hash.update(b);
      if (!res.write(b)) await once(res, 'drain');
    }
  } catch (e) {
    body.destroy();
    throw e;
  }
  res.addTrailers({
    'X-ClinicSync-Signature': signResponse(signer.secret, {
      status,
      time: String(res.getHeader('X-ClinicSync-Time')),
      nonce: signer.nonce,
      bodySha256: hash.digest('hex'),
    }),
  });
  res.end();
}

/** The status and sentence for anything a request ended in. */
function asReply(e: unknown): HttpReply {
  if (e instanceof HttpReply) return e;
  if (isSyncError(e)) {
    switch (e.kind) {
      case 'protocol':
      case 'usage':
        return new HttpReply(400, e.message);
      case 'state':
        return new HttpReply(409, e.message);
      case 'database':
      case 'locked':
        return new HttpReply(
          503,
          "The main server's database is not available just now; ClinicSync will try again.",
        );
      default:
        break;
    }
  }
  if (dbTrouble(e) !== null) {
    return new HttpReply(
      503,
      "The main server's database is not available just now; ClinicSync will try again.",
    );
  }
  return new HttpReply(
    500,
    'The main server failed while handling the request; the failure is in its log, and ClinicSync will try again.',
  );
}

/** What a failure was, for the log: a sentence of ours, else only the error's kind (no data). */
function describeFailure(e: unknown): string {
  if (isSyncError(e)) return e.message;
  const err = e as { code?: unknown; name?: unknown };
  if (typeof err.code === 'string') return `error ${err.code}`;
  return typeof err.name === 'string' ? err.name : 'unknown error';
}
