import { execSync } from 'node:child_process';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { dbUrlOf } from '../../src/engine/db/url.js';
import type { Envelope } from '../../src/engine/protocol/types.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/engine/protocol/xml.js';
import type { ApplyResult } from '../../src/engine/apply/apply.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb, SERVER, type TestDb } from './db.js';
import { initRoot, tempHome } from './node.js';

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

  async root(db: TestDb, name = 'root'): Promise<SyncNode> {
    const node = await initRoot(db, name);
    this.nodes.push(node);
    this.dbs.push(db);
    return node;
  }

  /** A child made from a consistent copy of the parent's database (data and ClinicSync state). */
  async clone(parent: SyncNode, name: string): Promise<SyncNode> {
    await parent.pickup();
    const db = await createTestDb('cs_child');
    const conn = `-h ${SERVER.host} -P ${SERVER.port} -u ${SERVER.user}`;
    execSync(
      `mariadb-dump ${conn} --single-transaction --routines --triggers --no-tablespaces --skip-comments ${parent.db.database} | mariadb ${conn} ${db.name}`,
      {
        env: { ...process.env, MYSQL_PWD: SERVER.password },
        stdio: 'pipe',
        maxBuffer: 256 * 1024 * 1024,
      },
    );
    const home = tempHome();
    const settings = defaultSettings({
      db: dbUrlOf(db.target),
      name,
      role: 'child',
      parent: 'http://parent.invalid:8750',
    });
    home.save(settings);
    const parentName = (await parent.status()).name;
    const child = await SyncNode.adoptClone({
      db: db.target,
      name,
      settings,
      home,
      parent: { nodeId: parent.nodeId, name: parentName, incarnation: parent.incarnation },
    });
    await parent.addPeer({
      nodeId: child.nodeId,
      name,
      relation: 'child',
      incarnation: child.incarnation,
    });
    this.nodes.push(child);
    this.dbs.push(db);
    return child;
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
