import { createHash } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TLSSocket } from 'node:tls';
import { Agent, buildConnector, request, type Dispatcher } from 'undici';
import type { Home } from '../config/home.js';
import { SyncError, isSyncError } from '../errors.js';
import type { SyncNode } from '../node/node.js';
import { LinkError, type LinkFailure } from '../node/pace.js';
import type { ExchangeOptions, ParentLink } from '../node/service.js';
import type { Envelope } from '../protocol/types.js';
import { decodeEnvelope, encodeEnvelope } from '../protocol/xml.js';
import {
  HEADER,
  NODE_ID,
  headerValue,
  newNonce,
  requestHeaders,
  sameSignature,
  sha256Hex,
  signResponse,
} from './auth.js';
import { fingerprintOf, readParentFingerprint, writeParentFingerprint } from './tls.js';
import {
  openPairAnswer,
  pairingKey,
  pairingProof,
  type PairRequest,
  type PairResult,
} from './pairing.js';
import { FILES_BUDGET_HEADER, FILES_PATH } from '../files/network.js';

/*
 * A child's side of the link to its parent (DESIGN §1, §5, §8), over undici: a keep-alive agent
 * so the rounds of one sync share a connection, and precise control of timeouts and bodies.
 *
 * The parent's host name is looked up by the operating system each time a connection is made;
 * nothing here caches it. Every sync starts with fresh connections (fresh()), and after any failed
 * attempt the agent is replaced, so each attempt resolves the name (a DDNS address that moved)
 * and connects afresh; the rounds of one sync share a kept-alive connection.
 *
 * Over HTTPS the parent's self-signed certificate is trusted by its fingerprint (tls.ts), checked
 * on every new connection before a byte of the request is sent. The TLS session is kept across
 * connections and attempts, so a reconnect on a slow link resumes it instead of paying for a
 * full handshake.
 *
 * Clinic laptops' clocks are wrong by days: requests are signed with the parent's time, as this
 * machine's clock plus an offset learned from the parent's signed answers. A 401 that says the
 * time was outside the window is retried once with the corrected time.
 */

/** The child's copy of its node secret, in its home (0600). */
export const PARENT_SECRET = 'parent-secret';

export function readParentSecret(home: Home): Buffer | null {
  const hex = home.readSecret(PARENT_SECRET)?.trim();
  return hex && /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : null;
}

export function writeParentSecret(home: Home, secret: Buffer): void {
  home.writeSecret(PARENT_SECRET, secret.toString('hex'));
}

export interface ParentClientOptions {
  /** the parent's address, like http://district.example.org:8750 */
  url: string;
  /** one exchange's limit, and the longest silence of a streamed answer (default 120) */
  timeoutSeconds?: number;
  /** gzip the exchange's request (default true) */
  compression?: boolean;
  /** this node's id: who signs */
  nodeId?: string;
  /** the node secret shared with the parent (from pairing) */
  secret?: Buffer | null;
  /** the parent's node id, where known: its answers must come from it */
  parentNodeId?: string | null;
  /** this machine's clock (tests) */
  now?: () => number;
  /** the largest exchange answer read (default 32 MiB) */
  maxResponseBytes?: number;
  /**
   * Over HTTPS: the parent's certificate fingerprint to trust ("SHA256:…"), or null to trust the
   * one it presents first (then reported to onFirstContact, which should keep it).
   */
  fingerprint?: string | null;
  /** where `fingerprint` came from, for the refusal's advice (default: this clinic's home) */
  fingerprintFrom?: 'home' | 'option';
  onFirstContact?: (fingerprint: string) => void;
  /** how host names are looked up (tests; default the operating system's, every connection) */
  lookup?: LookupFunction;
}

/** What GET /v1/hello tells about the parent. */
export interface ParentHello {
  service: 'clinicsync';
  nodeId: string;
  name: string;
  incarnation: string;
  protocol: number;
  protocols: number[];
}

/** A signed POST's answer whose body is read as a stream (the snapshot). */
export interface ParentResponse {
  status: number;
  headers: Record<string, string>;
  /** the body as it arrives; it fails if the parent's signature does not match at the end */
  body: Readable;
  bytesUp: number;
  /** bytes of the body read so far */
  bytesDown(): number;
  /** settles once the body has been read to its end: rejects where the signature is wrong */
  verified(): Promise<void>;
  /** reads the whole body and checks the signature */
  buffer(): Promise<Buffer>;
}

const DEFAULT_MAX_RESPONSE = 32 * 1024 * 1024;
const SMALL_BODY = 64 * 1024;

type Headers = Record<string, string | string[] | undefined>;

interface BufferedAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
  bytesUp: number;
  bytesDown: number;
}

export class ParentClient implements ParentLink {
  readonly url: string;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly compression: boolean;
  private readonly now: () => number;
  private readonly maxResponse: number;
  private nodeId: string | null;
  private secret: Buffer | null;
  private parentNodeId: string | null;
  private offsetMs = 0;
  private agent: Agent;
  private pin: string | null;
  private seen: string | null = null;
  private readonly onFirstContact: ((fingerprint: string) => void) | undefined;
  private readonly lookup: LookupFunction | undefined;
  private tlsSession: Buffer | null = null;
  private readonly pinFrom: 'home' | 'option';
  private readonly tls = { connections: 0, resumed: 0 };

  constructor(opts: ParentClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new SyncError(
        'usage',
        `"${opts.url}" is not an address of a main server; write it like http://district.example.org:8750.`,
      );
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) {
      throw new SyncError(
        'usage',
        `The main server's address must start with http:// or https://, like http://district.example.org:8750.`,
      );
    }
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    this.base = `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
    this.url = this.base;
    this.timeoutMs = (opts.timeoutSeconds ?? 120) * 1000;
    this.compression = opts.compression ?? true;
    this.now = opts.now ?? Date.now;
    this.maxResponse = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
    this.nodeId = opts.nodeId ?? null;
    this.secret = opts.secret ?? null;
    this.parentNodeId = opts.parentNodeId ?? null;
    this.pin = opts.fingerprint ?? null;
    this.pinFrom = opts.fingerprintFrom ?? 'home';
    this.onFirstContact = opts.onFirstContact;
    this.lookup = opts.lookup;
    this.agent = this.newAgent();
  }

  /** The client for a child node: its parent's address, its secret, its settings. */
  static async forNode(node: SyncNode, opts: { now?: () => number } = {}): Promise<ParentClient> {
    const parent = (await node.peers()).find((p) => p.relation === 'parent');
    const url = node.settings.parent ?? parent?.url ?? null;
    if (!parent || !url) {
      throw new SyncError(
        'state',
        'This node has no parent to sync with; it is the root of its tree.',
      );
    }
    const secret = readParentSecret(node.home);
    if (!secret) {
      throw new SyncError(
        'state',
        `This node holds no key for its main server at ${url}; make it again with "clinic-sync clone".`,
      );
    }
    return new ParentClient({
      url,
      timeoutSeconds: node.settings.sync.timeoutSeconds,
      compression: node.settings.sync.compression,
      nodeId: node.nodeId,
      secret,
      parentNodeId: parent.nodeId,
      // A child made over plain HTTP and moved to HTTPS trusts the certificate it meets first.
      fingerprint: readParentFingerprint(node.home),
      onFirstContact: (fp) => writeParentFingerprint(node.home, fp),
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  /** TLS connections made, and how many of them resumed an earlier session (no full handshake). */
  get tlsConnections(): { connections: number; resumed: number } {
    return { ...this.tls };
  }

  /** The parent certificate's fingerprint this client met or trusts (HTTPS), else null. */
  get fingerprint(): string | null {
    return this.seen ?? this.pin;
  }

  /** Drops every kept-alive connection: the next request looks the name up and connects anew. */
  fresh(): void {
    this.resetAgent();
  }

  /** The parent's clock minus this machine's, as last learned from a signed answer (ms). */
  get clockOffsetMs(): number {
    return this.offsetMs;
  }

  /** Who the parent is; no authentication. */
  async hello(): Promise<ParentHello> {
    const a = await this.attempt(() =>
      this.buffered('GET', '/v1/hello', null, {}, SMALL_BODY, this.timeoutMs),
    );
    if (a.status !== 200) throw this.failure(a);
    const v = parseJson(a.body);
    if (
      !isRecord(v) ||
      v.service !== 'clinicsync' ||
      typeof v.nodeId !== 'string' ||
      !NODE_ID.test(v.nodeId) ||
      typeof v.name !== 'string' ||
      typeof v.incarnation !== 'string' ||
      typeof v.protocol !== 'number'
    ) {
      throw this.notClinicSync();
    }
    return {
      service: 'clinicsync',
      nodeId: v.nodeId,
      name: v.name,
      incarnation: v.incarnation,
      protocol: v.protocol,
      protocols: Array.isArray(v.protocols)
        ? v.protocols.filter((n): n is number => typeof n === 'number')
        : [v.protocol],
    };
  }

  /**
   * Presents a pairing code: on success the parent has made this node its child, and this client
   * signs with the new secret from then on. Store the secret with writeParentSecret().
   */
  async pair(code: string, me: PairRequest): Promise<PairResult> {
    const hello = await this.hello();
    const key = await pairingKey(code, hello.nodeId);
    const request: PairRequest = { name: me.name, nodeId: me.nodeId, incarnation: me.incarnation };
    const body = Buffer.from(JSON.stringify(request), 'utf8');
    const a = await this.attempt(() =>
      this.buffered(
        'POST',
        '/v1/pair',
        body,
        { 'content-type': 'application/json', [HEADER.proof]: pairingProof(key, body) },
        SMALL_BODY,
        this.timeoutMs,
      ),
    );
    if (a.status !== 200) throw this.failure(a);
    const result = openPairAnswer(key, parseJson(a.body), request);
    if (result.parent.nodeId !== hello.nodeId) {
      throw new SyncError(
        'protocol',
        "The main server's answer to the pairing names another server; check its address and try again.",
      );
    }
    this.nodeId = me.nodeId;
    this.secret = result.secret;
    this.parentNodeId = result.parent.nodeId;
    // The answer's time is vouched for by the encryption: a first estimate of the parent's clock.
    this.offsetMs = result.parentTime - this.now();
    return result;
  }

  /**
   * One exchange (ParentLink): this node's batch up, the parent's batch down, in one POST, within
   * the time `opts.timeoutMs` allows for it; the parent is asked to answer with no more than
   * `opts.replyLimits` (header X-ClinicSync-Batch).
   */
  async exchange(
    env: Envelope,
    opts: ExchangeOptions = {},
  ): Promise<{ reply: Envelope; bytesUp: number; bytesDown: number }> {
    const body = encodeEnvelope(env, { gzip: this.compression });
    const totalMs = opts.timeoutMs ? opts.timeoutMs(body.length) : this.timeoutMs;
    const extra: Record<string, string> = opts.replyLimits
      ? { [HEADER.batch]: `records=${opts.replyLimits.records}, bytes=${opts.replyLimits.bytes}` }
      : {};
    const a = await this.signedBuffered(
      '/v1/exchange',
      body,
      'application/xml',
      env.from.node,
      totalMs,
      extra,
    );
    let reply: Envelope;
    try {
      reply = decodeEnvelope(a.body, { maxBytes: this.maxResponse });
    } catch (e) {
      const why = isSyncError(e) ? ` (${e.message.replace(/\.$/, '')})` : '';
      throw new SyncError(
        'protocol',
        `The main server's answer could not be read${why}; nothing was applied.`,
        { cause: e },
      );
    }
    if (this.parentNodeId && reply.from.node !== this.parentNodeId) {
      throw new SyncError(
        'protocol',
        `The answer comes from another node than this clinic's main server at ${this.url}; nothing was applied.`,
      );
    }
    return { reply, bytesUp: a.bytesUp, bytesDown: a.bytesDown };
  }

  /**
   * A signed POST to one of the parent's routes, its answer read as a stream (for the snapshot).
   * A refusal or failure throws SyncError; a 2xx answer is returned as it starts to arrive.
   */
  async post(
    path: string,
    body: Buffer | string,
    opts: { contentType?: string; signal?: AbortSignal } = {},
  ): Promise<ParentResponse> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const { nodeId, secret } = this.credentials();
    let bytesUp = 0;
    for (let attempt = 0; ; attempt++) {
      const nonce = newNonce();
      const sentAt = this.now();
      const res = await this.attempt(() =>
        this.dispatch(
          'POST',
          path,
          bytes,
          {
            'content-type': opts.contentType ?? 'application/octet-stream',
            ...requestHeaders(secret, this.parts('POST', path, nodeId, nonce, bytes)),
          },
          { idleMs: this.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) },
        ),
      );
      bytesUp += bytes.length;
      if (res.statusCode < 200 || res.statusCode >= 300) {
        const small = await this.attempt(() => readCapped(res.body, SMALL_BODY));
        const a: BufferedAnswer = {
          status: res.statusCode,
          headers: res.headers,
          body: small,
          bytesUp,
          bytesDown: small.length,
        };
        const signed = this.checkAnswer(a, nonce, secret, sentAt);
        if (this.shouldRetryTime(a, signed, attempt)) continue;
        throw this.failure(a);
      }
      return this.streamed(res, nonce, secret, bytesUp, sentAt);
    }
  }

  /**
   * One round of complex obs files (FilesLink): a file message up, the parent's down; null when
   * the parent's ClinicSync is older than complex obs files (it does not serve the route).
   */
  async exchangeFiles(
    body: Buffer,
    opts: { budget: number; timeoutMs: number },
  ): Promise<{ body: Buffer; bytesUp: number; bytesDown: number } | null> {
    const { nodeId } = this.credentials();
    const a = await this.signedBuffered(
      FILES_PATH,
      body,
      'application/octet-stream',
      nodeId,
      opts.timeoutMs,
      { [FILES_BUDGET_HEADER]: String(opts.budget) },
      true,
    );
    if (a.status === 404) return null;
    return { body: a.body, bytesUp: a.bytesUp, bytesDown: a.bytesDown };
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------

  private newAgent(): Agent {
    return new Agent({
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 120_000,
      // A request on a slow link takes seconds to reach the parent: stop reusing a connection
      // well before the parent's keep-alive ends, or both close it at once and the request is lost.
      keepAliveTimeoutThreshold: 10_000,
      connect: this.connector(),
    });
  }

  /**
   * Connects as undici would, then (HTTPS) checks the parent's certificate against the trusted
   * fingerprint before the connection is used, and keeps the TLS session for the next connection.
   */
  private connector(): buildConnector.connector {
    const base = buildConnector({
      // Trust comes from the pinned fingerprint, not from an authority: checked just below.
      rejectUnauthorized: false,
      timeout: Math.min(this.timeoutMs, 60_000),
      maxCachedSessions: 0,
      ...(this.tlsSession ? { session: this.tlsSession } : {}),
      ...(this.lookup ? { lookup: this.lookup } : {}),
    });
    return (options, callback) => {
      base(options, (err, socket) => {
        if (err || !socket) {
          callback(err ?? new Error('no connection'), null);
          return;
        }
        if (!(socket instanceof TLSSocket)) {
          callback(null, socket);
          return;
        }
        const refusal = this.checkCertificate(socket);
        if (refusal) {
          socket.destroy();
          callback(refusal, null);
          return;
        }
        this.tls.connections++;
        if (socket.isSessionReused()) this.tls.resumed++;
        const s = socket.getSession();
        if (s) this.tlsSession = s;
        socket.on('session', (ticket: Buffer) => {
          this.tlsSession = ticket;
        });
        callback(null, socket);
      });
    };
  }

  /** Null where the parent's certificate is the trusted one (or the first one met), else why not. */
  private checkCertificate(socket: TLSSocket): SyncError | null {
    // A resumed session carries no certificate; it can only be one this client kept from a
    // connection whose certificate passed this check (only the real server can resume it).
    if (socket.isSessionReused()) return null;
    const cert = socket.getPeerCertificate();
    if (!cert?.raw) {
      return new SyncError(
        'protocol',
        `The main server at ${this.url} presented no certificate; nothing was sent.`,
      );
    }
    const fp = fingerprintOf(cert.raw);
    this.seen = fp;
    if (this.pin === null) {
      this.pin = fp;
      this.onFirstContact?.(fp);
      return null;
    }
    if (fp === this.pin) return null;
    if (this.pinFrom === 'option') {
      return new SyncError(
        'protocol',
        `The main server at ${this.url} presented the certificate ${fp}, not ${this.pin} as given with --fingerprint, so nothing was sent; check the address, and the fingerprint "clinic-sync pair" prints there.`,
      );
    }
    return new SyncError(
      'protocol',
      `The main server at ${this.url} presented a different certificate (${fp}) from the one this clinic trusts (${this.pin}), so nothing was sent: someone may be in between. If its certificate was really replaced, check the new fingerprint with "clinic-sync pair" there, then trust it here by removing the file secrets/parent-fingerprint from this clinic's ClinicSync folder.`,
    );
  }

  /** After a failed attempt: drop every connection, so the next one looks the name up again. */
  private resetAgent(): void {
    const old = this.agent;
    this.agent = this.newAgent();
    void old.destroy().catch(() => undefined);
  }

  private credentials(): { nodeId: string; secret: Buffer } {
    if (!this.nodeId || !this.secret) {
      throw new SyncError(
        'state',
        'This clinic is not paired with its main server yet; pair it (clinic-sync clone) first.',
      );
    }
    return { nodeId: this.nodeId, secret: this.secret };
  }

  private parts(method: string, path: string, node: string, nonce: string, body: Buffer) {
    return {
      method,
      path,
      node,
      time: String(Math.round(this.now() + this.offsetMs)),
      nonce,
      bodySha256: sha256Hex(body),
    };
  }

  /**
   * Runs one network attempt; any failure of the network becomes the 'unreachable' sentence, a
   * LinkError telling where it failed (the schedule and the batch size act on it).
   */
  private async attempt<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const ours = syncErrorWithin(e);
      if (ours) throw ours;
      this.resetAgent();
      const failure = linkFailure(e);
      throw new LinkError(
        failure,
        failure === 'timeout'
          ? `The main server at ${this.url} did not answer in time; the link is slow or stalled. ClinicSync will try again with less at once.`
          : failure === 'cut'
            ? `The connection to the main server at ${this.url} broke off midway; ClinicSync will try again.`
            : `The main server at ${this.url} did not answer; check the connection. ClinicSync will try again.`,
        { cause: e },
      );
    }
  }

  private dispatch(
    method: 'GET' | 'POST',
    path: string,
    body: Buffer | null,
    headers: Record<string, string>,
    limits: { totalMs?: number; idleMs?: number; signal?: AbortSignal },
  ): Promise<Dispatcher.ResponseData> {
    const signals: AbortSignal[] = [];
    if (limits.totalMs !== undefined) signals.push(AbortSignal.timeout(limits.totalMs));
    if (limits.signal) signals.push(limits.signal);
    const idle = limits.idleMs ?? this.timeoutMs;
    return request(`${this.base}${path}`, {
      dispatcher: this.agent,
      method,
      headers,
      body: body ?? undefined,
      // The answer's headers come only once the request has crawled up the link and the parent
      // has applied it: that wait is bounded by the whole exchange's time, not by silence.
      headersTimeout: Math.max(idle, limits.totalMs ?? 0),
      bodyTimeout: idle,
      ...(signals.length ? { signal: AbortSignal.any(signals) } : {}),
    });
  }

  private async buffered(
    method: 'GET' | 'POST',
    path: string,
    body: Buffer | null,
    headers: Record<string, string>,
    maxBytes: number,
    totalMs: number,
  ): Promise<BufferedAnswer> {
    const res = await this.dispatch(method, path, body, headers, { totalMs });
    const data = await readCapped(res.body, maxBytes);
    return {
      status: res.statusCode,
      headers: res.headers,
      body: data,
      bytesUp: body?.length ?? 0,
      bytesDown: data.length,
    };
  }

  /** A signed POST whose answer is read whole; retried once when the parent corrects the time. */
  private async signedBuffered(
    path: string,
    body: Buffer,
    contentType: string,
    signer: string,
    totalMs = this.timeoutMs,
    extraHeaders: Record<string, string> = {},
    /** a signed 404 (a parent from before the route existed) is returned, not thrown */
    notFoundOk = false,
  ): Promise<BufferedAnswer> {
    const { secret } = this.credentials();
    const nodeId = signer;
    let bytesUp = 0;
    let bytesDown = 0;
    for (let attempt = 0; ; attempt++) {
      const nonce = newNonce();
      const sentAt = this.now();
      const a = await this.attempt(() =>
        this.buffered(
          'POST',
          path,
          body,
          {
            'content-type': contentType,
            ...extraHeaders,
            ...requestHeaders(secret, this.parts('POST', path, nodeId, nonce, body)),
          },
          this.maxResponse,
          totalMs,
        ),
      );
      bytesUp += a.bytesUp;
      bytesDown += a.bytesDown;
      const signed = this.checkAnswer(a, nonce, secret, sentAt);
      if (this.shouldRetryTime(a, signed, attempt)) continue;
      if (a.status === 404 && notFoundOk && signed) return { ...a, bytesUp, bytesDown };
      if (a.status !== 200) throw this.failure(a);
      if (!signed) throw this.forged();
      return { ...a, bytesUp, bytesDown };
    }
  }

  /** True where the answer is signed by the parent for this request; learns its clock then. */
  private checkAnswer(a: BufferedAnswer, nonce: string, secret: Buffer, sentAt: number): boolean {
    const time = headerValue(a.headers, HEADER.time);
    if (!time || !/^[0-9]{1,16}$/.test(time)) return false;
    const expected = signResponse(secret, {
      status: a.status,
      time,
      nonce,
      bodySha256: sha256Hex(a.body),
    });
    if (!sameSignature(expected, headerValue(a.headers, HEADER.signature))) return false;
    this.learnClock(Number(time), sentAt);
    return true;
  }

  private learnClock(parentTime: number, sentAt: number): void {
    const receivedAt = this.now();
    this.offsetMs = Math.round(parentTime - (sentAt + receivedAt) / 2);
  }

  private shouldRetryTime(a: BufferedAnswer, signed: boolean, attempt: number): boolean {
    return (
      a.status === 401 &&
      signed &&
      attempt === 0 &&
      headerValue(a.headers, HEADER.refusal) === 'time'
    );
  }

  private streamed(
    res: Dispatcher.ResponseData,
    nonce: string,
    secret: Buffer,
    bytesUp: number,
    sentAt: number,
  ): ParentResponse {
    const hash = createHash('sha256');
    let down = 0;
    let settle: { resolve: () => void; reject: (e: Error) => void } | undefined;
    const verified = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    verified.catch(() => undefined);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) {
      if (typeof v === 'string') headers[k] = v;
      else if (Array.isArray(v)) headers[k] = v.join(', ');
    }
    const time = headers[HEADER.time] ?? '';
    const forged = this.forged();
    const learn = (t: number) => this.learnClock(t, sentAt);
    const unreachable = () =>
      new SyncError(
        'unreachable',
        `The main server at ${this.url} did not answer; check the connection. ClinicSync will try again.`,
      );
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        down += chunk.length;
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const given = headers[HEADER.signature] ?? res.trailers[HEADER.signature];
        const expected = signResponse(secret, {
          status: res.statusCode,
          time,
          nonce,
          bodySha256: hash.digest('hex'),
        });
        if (/^[0-9]{1,16}$/.test(time) && sameSignature(expected, given)) {
          learn(Number(time));
          settle?.resolve();
          cb();
        } else {
          settle?.reject(forged);
          cb(forged);
        }
      },
    });
    res.body.on('error', (e: Error) => {
      const err = isSyncError(e) ? e : unreachable();
      settle?.reject(err);
      counted.destroy(err);
    });
    counted.on('error', (e: Error) => settle?.reject(e));
    // Iterated, not piped: a pipe pauses undici's parser for every chunk the transform turns
    // away, and each resume re-reads the socket's whole backlog, so a slow reader of a large
    // stream (a snapshot) held hundreds of MB; an async iterator reads one buffer at a time.
    pipeline(
      res.body,
      async function* (body: AsyncIterable<Buffer>) {
        for await (const chunk of body) yield chunk;
      },
      counted,
    ).catch(() => undefined);
    const read = async (): Promise<Buffer> => {
      const chunks: Buffer[] = [];
      for await (const c of counted as AsyncIterable<Buffer>) chunks.push(c);
      await verified;
      return Buffer.concat(chunks);
    };
    return {
      status: res.statusCode,
      headers,
      body: counted,
      bytesUp,
      bytesDown: () => down,
      verified: () => verified,
      buffer: read,
    };
  }

  private forged(): SyncError {
    return new SyncError(
      'protocol',
      `The answer did not come from this clinic's main server at ${this.url} (its signature does not match); nothing was applied.`,
    );
  }

  private notClinicSync(): SyncError {
    return new SyncError(
      'protocol',
      `The address ${this.url} does not answer like a ClinicSync main server; check it.`,
    );
  }

  /** A refusal or failure of the parent as one sentence: its own where it sent one. */
  private failure(a: BufferedAnswer): SyncError {
    const type = headerValue(a.headers, 'content-type') ?? '';
    const text = a.body.toString('utf8').replace(/\s+/g, ' ').trim();
    const sentence =
      type.startsWith('text/plain') && text.length > 0 && text.length <= 500 ? text : null;
    if (a.status >= 500) {
      return new SyncError(
        'unreachable',
        sentence ??
          `The main server at ${this.url} failed (HTTP ${a.status}); ClinicSync will try again.`,
      );
    }
    if (!sentence && (a.status === 404 || a.status === 405)) return this.notClinicSync();
    return new SyncError(
      'protocol',
      sentence ?? `The main server at ${this.url} refused the request (HTTP ${a.status}).`,
    );
  }
}

/** One of our own sentences carried through the HTTP client's error (a refused certificate). */
function syncErrorWithin(e: unknown): SyncError | null {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    if (isSyncError(cur)) return cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return null;
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** Where a request failed, from undici's and the system's error codes. */
function linkFailure(e: unknown): LinkFailure {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    const err = cur as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof err.code === 'string' && CONNECT_CODES.has(err.code)) return 'connect';
    if (typeof err.code === 'string' && TIMEOUT_CODES.has(err.code)) return 'timeout';
    if (err.name === 'TimeoutError') return 'timeout';
    cur = err.cause;
  }
  return 'cut';
}

/** Reads a body whole, refusing more than `max` bytes. */
async function readCapped(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) {
      body.destroy();
      throw new SyncError(
        'protocol',
        `The main server's answer is larger than ${Math.round(max / 1024)} KiB; nothing was applied.`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function parseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch {
    return null;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
