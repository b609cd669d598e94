import { randomBytes, randomUUID } from 'node:crypto';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { hlcFromMillis } from '../../src/engine/clock/hlc.js';
import type { Envelope, WireChange, WireTable } from '../../src/engine/protocol/types.js';
import { ParentClient } from '../../src/engine/transport/client.js';
import { createPairingCode } from '../../src/engine/transport/pairing.js';
import { isSmoke } from '../lib/size.js';
import { startCountingProxy, type CountingProxy } from '../lib/throttle.js';
import { twoNodes } from '../lib/twoNodes.js';
import { compared, type Bench } from '../types.js';

/*
 * Issue 11, figure 5: one parent under many children. 200 simulated children, each an HTTP client
 * with its own registration (paired with its own code) and its own envelopes, exchange with the
 * parent at the same time: each sends a new person per round and acknowledges what the parent
 * passed on from its siblings. A child is light (no database of its own): its change is a real
 * child's change of a new person with a new uuid and the simulated child's origin and sequence.
 * Each child's connections come from an address of its own (127.0.1.x, through a proxy each), as
 * 200 clinics' would, so the parent's per-address connection limit plays no part.
 *
 * Figures: exchanges per second, the 95th-percentile exchange time beside a lone child's median
 * exchange time, and errors (target: none).
 */

interface SimChild {
  name: string;
  nodeId: string;
  incarnation: string;
  client: ParentClient;
  proxy: CountingProxy;
  seq: number;
  seen: Record<string, string>;
}

export const bench: Bench = {
  name: 'children',
  description: '200 simulated children exchanging at once against one parent',
  async run(ctx) {
    const smoke = isSmoke(ctx.env);
    const count = smoke ? 5 : 200;
    const rounds = 2;
    const nodes = await twoNodes();
    const sims: SimChild[] = [];
    try {
      const { child, root, server } = nodes;
      // The template: a real child's change for a new person (identities already global).
      await execute(
        child.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-11-26 10:00:00', ?)",
        [randomUUID()],
      );
      const template = await child.outgoing(root.nodeId);
      const person = template.changes.find((c) => c.table === 'person');
      if (!person) throw new Error('the real child did not make a person change');
      const change = {
        change: person,
        tables: template.tables.filter((t) => t.name === 'person'),
      };

      ctx.log(`pairing ${count} simulated children`);
      for (let k = 0; k < count; k++) {
        const proxy = await startCountingProxy(
          { host: server.host, port: server.port },
          Infinity,
          `127.0.${1 + Math.floor(k / 250)}.${(k % 250) + 2}`,
        );
        const nodeId = randomBytes(8).toString('hex');
        const incarnation = randomBytes(4).toString('hex');
        const client = new ParentClient({
          url: proxy.url,
          timeoutSeconds: 300,
          nodeId,
          parentNodeId: root.nodeId,
        });
        const sim = { name: `sim-${k}`, nodeId, incarnation, client, proxy, seq: 0, seen: {} };
        sims.push(sim);
        const { code } = await createPairingCode(root.pool, 60);
        await client.pair(code, { name: sim.name, nodeId, incarnation });
      }

      // A lone child's exchanges first: the baseline for the exchange time.
      const lone: number[] = [];
      for (let r = 0; r < rounds; r++) lone.push(await exchangeOnce(sims[0]!, change, root.nodeId));

      ctx.log(`${count} children exchange ${rounds} times each, all at once`);
      const times: number[] = [];
      const errors: string[] = [];
      const t0 = performance.now();
      await Promise.all(
        sims.map(async (s) => {
          for (let r = 0; r < rounds; r++) {
            try {
              times.push(await exchangeOnce(s, change, root.nodeId));
            } catch (e) {
              errors.push(e instanceof Error ? e.message : String(e));
            }
          }
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      const [held] = await queryRows(
        root.pool,
        'SELECT COUNT(*) AS n FROM person WHERE date_created = ? AND gender = ?',
        ['2026-11-26 10:00:00', 'F'],
      );
      const expected = count * rounds + rounds;
      if (!errors.length && Number(held?.n) !== expected) {
        throw new Error(`the parent holds ${String(held?.n)} of the ${expected} people sent`);
      }
      const exchanges = times.length;
      return {
        name: 'children',
        figures: [
          { label: 'exchanges per second', value: exchanges / wall, unit: '/s' },
          compared(`p95 exchange time, ${count} at once`, percentile(times, 0.95), 'ms', {
            label: 'one child alone (median)',
            value: percentile(lone, 0.5),
          }),
          { label: 'errors', value: errors.length, unit: '', target: 'none', met: !errors.length },
        ],
        notes: [
          `${count} children × ${rounds} exchanges in ${wall.toFixed(1)} s; each sends a new person and receives its siblings'; the parent holds ${String(held?.n)} of them`,
          ...(errors.length ? [`first error: ${errors[0]}`] : []),
        ],
      };
    } finally {
      for (const s of sims) {
        await s.client.close().catch(() => undefined);
        await s.proxy.close().catch(() => undefined);
      }
      await nodes.close();
    }
  },
};

/** One exchange of a simulated child: a new person up, its siblings' changes acknowledged. */
async function exchangeOnce(
  s: SimChild,
  template: { change: WireChange; tables: WireTable[] },
  parent: string,
): Promise<number> {
  const seq = String(++s.seq);
  const hlc = (hlcFromMillis(Date.now()) + BigInt(s.seq)).toString();
  const uuid = randomUUID();
  const env: Envelope = {
    version: 1,
    from: { node: s.nodeId, incarnation: s.incarnation, name: s.name },
    to: parent,
    time: String(Date.now()),
    hlc,
    vv: { ...s.seen, [s.nodeId]: seq },
    tables: template.tables,
    changes: [
      {
        ...template.change,
        origin: s.nodeId,
        seq,
        hlc,
        ident: uuid,
        values: { ...template.change.values, uuid },
      },
    ],
    more: false,
  };
  const t0 = performance.now();
  const { reply } = await s.client.exchange(env);
  const ms = performance.now() - t0;
  for (const c of reply.changes) {
    if (BigInt(c.seq) > BigInt(s.seen[c.origin] ?? '0')) s.seen[c.origin] = c.seq;
  }
  return ms;
}

function percentile(values: number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}
