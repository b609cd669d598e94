import type { Envelope } from '../../src/engine/protocol/types.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/engine/protocol/xml.js';
import type { ApplyResult } from '../../src/engine/apply/apply.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import type { TestDb } from './db.js';
import { cloneDatabase } from './http.js';
import { initRoot } from './node.js';

/** Every envelope goes through the real XML codec, gzip on, as it would on the wire. */
export function overTheWire(env: Envelope): Envelope {
  return decodeEnvelope(encodeEnvelope(env, { gzip: true }));
}

export interface Round {
  up: ApplyResult;
  down: ApplyResult | null;
  sent: number;
  received: number;
}

/**
 * Several nodes on their own databases in one process; envelopes move between them directly
 * (no HTTP), through the XML codec. For the engine's tests and for later ones.
 */
export class Tree {
  readonly nodes: SyncNode[] = [];
  readonly dbs: TestDb[] = [];

  async root(
    db: TestDb,
    name = 'root',
    tables?: Parameters<typeof initRoot>[2],
  ): Promise<SyncNode> {
    const node = await initRoot(db, name, tables);
    this.nodes.push(node);
    this.dbs.push(db);
    return node;
  }

  /** A child made from a consistent copy of the parent's database (data and ClinicSync state). */
  async clone(parent: SyncNode, name: string): Promise<SyncNode> {
    const { node } = await cloneDatabase(this, parent, name);
    await parent.addPeer({
      nodeId: node.nodeId,
      name,
      relation: 'child',
      incarnation: node.incarnation,
    });
    return node;
  }

  /** One exchange, child to parent and back; `loseReply` drops the answer on the way back. */
  async exchange(
    child: SyncNode,
    parent: SyncNode,
    opts: { loseReply?: boolean } = {},
  ): Promise<Round> {
    const env = overTheWire(await child.outgoing(parent.nodeId));
    const { result: up, reply } = await parent.answer(env);
    if (opts.loseReply) return { up, down: null, sent: env.changes.length, received: 0 };
    const back = overTheWire(reply);
    const down = await child.incoming(back);
    return { up, down, sent: env.changes.length, received: back.changes.length };
  }

  /** Exchanges until neither side has anything left for the other. */
  async sync(child: SyncNode, parent: SyncNode): Promise<number> {
    let rounds = 0;
    for (;;) {
      const r = await this.exchange(child, parent);
      rounds++;
      if (r.sent === 0 && r.received === 0) return rounds;
      if (rounds > 1000) throw new Error('sync did not settle');
    }
  }

  async close(): Promise<void> {
    for (const n of this.nodes) await n.close();
    for (const d of this.dbs) await d.drop();
  }
}
