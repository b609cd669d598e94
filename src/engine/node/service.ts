import { EventEmitter } from 'node:events';
import { SyncError, isSyncError } from '../errors.js';
import type { Envelope } from '../protocol/types.js';
import { recordExchange } from './history.js';
import type { SyncNode } from './node.js';
import type { NodeStatus } from './types.js';

/** How a child reaches its parent: one round trip carrying both directions (DESIGN §5). */
export interface ParentLink {
  exchange(env: Envelope): Promise<{ reply: Envelope; bytesUp: number; bytesDown: number }>;
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

  constructor(
    readonly node: SyncNode,
    private readonly link: ParentLink | null,
  ) {}

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
    const link = this.link;
    const parent = (await this.node.peers()).find((p) => p.relation === 'parent');
    if (!link || !parent)
      throw new SyncError(
        'state',
        'This node has no parent to sync with; it is the root of its tree.',
      );
    this.emit({ type: 'sync-started' });
    const summary: SyncSummary = {
      rounds: 0,
      sent: 0,
      received: 0,
      bytesUp: 0,
      bytesDown: 0,
      ms: 0,
    };
    const started = Date.now();
    try {
      for (;;) {
        const t0 = Date.now();
        const env = await this.node.outgoing(parent.nodeId);
        const { reply, bytesUp, bytesDown } = await link.exchange(env);
        await this.node.incoming(reply);
        summary.rounds++;
        summary.sent += env.changes.length;
        summary.received += reply.changes.length;
        summary.bytesUp += bytesUp;
        summary.bytesDown += bytesDown;
        await recordExchange(this.node.pool, {
          peer: parent.nodeId,
          startedAt: new Date(t0).toISOString(),
          ms: Date.now() - t0,
          sent: env.changes.length,
          received: reply.changes.length,
          bytesUp,
          bytesDown,
          ok: true,
          error: null,
        });
        if (!env.changes.length && !reply.changes.length && !env.more && !reply.more) break;
        if (summary.rounds > 100_000)
          throw new SyncError('state', 'The exchange did not settle; it will be tried again.');
      }
      summary.ms = Date.now() - started;
      this.emit({ type: 'sync-finished', summary });
      this.emit({ type: 'status', status: await this.node.status() });
      return summary;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      await recordExchange(this.node.pool, {
        peer: parent.nodeId,
        startedAt: new Date(started).toISOString(),
        ms: Date.now() - started,
        sent: 0,
        received: 0,
        bytesUp: 0,
        bytesDown: 0,
        ok: false,
        error: message,
      }).catch(() => undefined);
      this.emit({ type: 'sync-failed', message, kind: isSyncError(e) ? e.kind : 'unknown' });
      throw e;
    }
  }
}
