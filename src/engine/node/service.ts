import { EventEmitter } from 'node:events';
import { queryRows } from '../db/pool.js';
import { SyncError, isSyncError } from '../errors.js';
import type { Envelope } from '../protocol/types.js';
import { databaseAway, dbTrouble, withDbRetry } from './dbRetry.js';
import { diskGuardOf } from './disk.js';
import { recordExchange } from './history.js';
import type { SyncNode } from './node.js';
import type { Limits } from './outgoing.js';
import { LinkPace, linkFailureOf } from './pace.js';
import type { NodeStatus } from './types.js';
import { fileRound, type FilesLink } from '../files/network.js';
import { pendingFor } from './pending.js';

/** What one exchange may take: its time budget, and how much the parent may answer with. */
export interface ExchangeOptions {
  /** the time allowed for the whole round trip, given the request's size in bytes */
  timeoutMs?: (requestBytes: number) => number;
  /** the most the parent's batch for this node may hold (the parent's own limits still apply) */
  replyLimits?: Limits;
}

/** How a child reaches its parent: one round trip carrying both directions (DESIGN §5). */
export interface ParentLink {
  exchange(
    env: Envelope,
    opts?: ExchangeOptions,
  ): Promise<{ reply: Envelope; bytesUp: number; bytesDown: number }>;
  /**
   * Drops kept-alive connections, so the next exchange connects afresh and looks the parent's
   * name up again (a DDNS address that moved); called once at the start of every sync.
   */
  fresh?(): void;
  /** one round of complex obs files (files/network.ts); absent: files do not travel this way */
  exchangeFiles?: FilesLink['exchangeFiles'];
}

export interface SyncSummary {
  rounds: number;
  sent: number;
  received: number;
  bytesUp: number;
  bytesDown: number;
  ms: number;
}

export type EngineEvent =
  | { type: 'status'; status: NodeStatus }
  | { type: 'sync-started' }
  | { type: 'sync-finished'; summary: SyncSummary }
  | { type: 'sync-failed'; message: string; kind: string };

/**
 * The long-running host of one node (DESIGN §2): the CLI's `serve` and the desktop app both run
 * one. It exchanges with the parent until nothing is pending both ways, one exchange at a time,
 * records each exchange for the history, and tells listeners what happened.
 */
export class NodeService {
  private readonly events = new EventEmitter();
  private running: Promise<SyncSummary> | null = null;
  private pace: LinkPace | null = null;

  constructor(
    readonly node: SyncNode,
    private readonly link: ParentLink | null,
  ) {}

  /** The link's measured speed and current batch size, seeded from the exchange history. */
  private async linkPace(): Promise<LinkPace> {
    if (!this.pace) {
      const settings = () => this.node.settings.sync;
      this.pace = new LinkPace(settings, await measuredSpeed(this.node).catch(() => null));
    }
    return this.pace;
  }

  on(listener: (e: EngineEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  private emit(e: EngineEvent): void {
    this.events.emit('event', e);
  }

  async status(): Promise<NodeStatus> {
    return this.node.status();
  }

  /** Exchanges with the parent until quiet; a second call while one runs joins it. */
  syncNow(): Promise<SyncSummary> {
    this.running ??= this.syncUntilQuiet().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async syncUntilQuiet(): Promise<SyncSummary> {
    const node = this.node;
    const link = this.link;
    const retry = <T>(fn: () => Promise<T>) => withDbRetry(fn, { db: node.db });
    let parentId: string | null = null;
    const summary: SyncSummary = {
      rounds: 0,
      sent: 0,
      received: 0,
      bytesUp: 0,
      bytesDown: 0,
      ms: 0,
    };
    const started = Date.now();
    let sentNow = 0;
    try {
      const parent = (await retry(() => node.peers())).find((p) => p.relation === 'parent');
      if (!link || !parent)
        throw new SyncError(
          'state',
          'This node has no parent to sync with; it is the root of its tree.',
        );
      parentId = parent.nodeId;
      this.emit({ type: 'sync-started' });
      // Below the free-disk threshold nothing received may be applied, so nothing is exchanged.
      const disk = await diskGuardOf(node).check();
      if (disk.stop) throw new SyncError('state', disk.stop);
      const pace = await this.linkPace();
      link.fresh?.();
      for (;;) {
        const t0 = Date.now();
        const limits = pace.limits();
        const env = await retry(() => node.outgoing(parent.nodeId, limits));
        sentNow = env.changes.length;
        const { reply, bytesUp, bytesDown } = await link.exchange(env, {
          replyLimits: limits,
          timeoutMs: (requestBytes) => pace.timeoutMs(requestBytes, limits.bytes),
        });
        await retry(() => node.incoming(reply));
        const ms = Date.now() - t0;
        pace.succeeded(bytesUp + bytesDown, ms);
        summary.rounds++;
        summary.sent += env.changes.length;
        summary.received += reply.changes.length;
        summary.bytesUp += bytesUp;
        summary.bytesDown += bytesDown;
        await retry(() =>
          recordExchange(node.pool, {
            peer: parent.nodeId,
            startedAt: new Date(t0).toISOString(),
            ms,
            sent: env.changes.length,
            received: reply.changes.length,
            bytesUp,
            bytesDown,
            ok: true,
            error: null,
          }),
        );
        sentNow = 0;
        // Done when neither side has more and nothing came down to acknowledge: the reply's
        // version vector already acknowledges what went up, so a further empty round would only
        // cost its headers (about 10 s at 1 kbit/s).
        if (!reply.changes.length && !env.more && !reply.more) {
          // Rows settled: complex obs files now, until done or rows may be waiting again.
          if (!(await this.fileRounds(parent.nodeId, pace, summary))) break;
        }
        if (summary.rounds > 100_000)
          throw new SyncError('state', 'The exchange did not settle; it will be tried again.');
      }
      summary.ms = Date.now() - started;
      this.emit({ type: 'sync-finished', summary });
      this.emit({ type: 'status', status: await node.status() });
      return summary;
    } catch (raw) {
      const e = this.explain(raw);
      // A batch that did not make it in time (or kept being cut) is made smaller.
      const failure = linkFailureOf(e);
      if (failure) this.pace?.failed(failure, sentNow);
      if (parentId !== null) {
        await recordExchange(node.pool, {
          peer: parentId,
          startedAt: new Date(started).toISOString(),
          ms: Date.now() - started,
          sent: sentNow,
          received: 0,
          bytesUp: 0,
          bytesDown: 0,
          ok: false,
          error: e.message,
        }).catch(() => undefined);
      }
      this.emit({ type: 'sync-failed', message: e.message, kind: e.kind });
      throw e;
    }
  }

  /**
   * Complex obs files with the parent (files/network.ts), each round within the link's current
   * batch size. True when a row round is due first: this node has new rows for the parent, or
   * the parent may (a sync interval has passed), so a long file never holds rows back.
   */
  private async fileRounds(
    parentId: string,
    pace: LinkPace,
    summary: SyncSummary,
  ): Promise<boolean> {
    const link = this.link;
    if (!link?.exchangeFiles) return false;
    const files = { exchangeFiles: link.exchangeFiles.bind(link) };
    const started = Date.now();
    for (;;) {
      const t0 = Date.now();
      const limits = pace.limits();
      const round = await fileRound(this.node, parentId, files, {
        budget: limits.bytes,
        timeoutMs: (requestBytes) => pace.timeoutMs(requestBytes, limits.bytes),
      });
      if (!round) return false;
      pace.succeeded(round.bytesUp + round.bytesDown, Date.now() - t0);
      summary.rounds++;
      summary.bytesUp += round.bytesUp;
      summary.bytesDown += round.bytesDown;
      if (!round.moved) return false;
      await this.node.pickup();
      if ((await pendingFor(this.node.pool, parentId)) > 0) return true;
      if (Date.now() - started > this.node.settings.sync.intervalSeconds * 1000) return true;
    }
  }

  /** Any failure as a SyncError with one sentence: a driver error is explained, never raw. */
  private explain(e: unknown): SyncError {
    if (isSyncError(e)) return e;
    const trouble = dbTrouble(e);
    if (trouble !== null) return databaseAway(e, trouble, this.node.db);
    const code = (e as { code?: unknown }).code;
    if ((e as { sqlMessage?: unknown }).sqlMessage !== undefined && typeof code === 'string') {
      // The server's own message can quote row values (a duplicate key's): only its code goes on.
      return new SyncError(
        'database',
        `The database at ${this.node.db.host}:${this.node.db.port} refused the sync's work (${code}); ClinicSync will try again.`,
        { cause: e },
      );
    }
    return new SyncError(
      'state',
      `The sync stopped on an unexpected error (${e instanceof Error ? e.name : typeof e}); it will be tried again.`,
      { cause: e },
    );
  }
}

/** Bytes per second over the recent exchanges that moved enough bytes to tell, or null. */
async function measuredSpeed(node: SyncNode): Promise<number | null> {
  const [r] = await queryRows(
    node.pool,
    `SELECT SUM(b) AS bytes, SUM(ms) AS ms FROM (
       SELECT bytes_up + bytes_down AS b, ms FROM clinicsync_exchange
        WHERE ok = 1 AND bytes_up + bytes_down >= 1024 AND ms > 0 ORDER BY id DESC LIMIT 20) recent`,
  );
  const bytes = Number(r?.bytes ?? 0);
  const ms = Number(r?.ms ?? 0);
  return bytes > 0 && ms > 0 ? (bytes * 1000) / ms : null;
}
