import net from 'node:net';

/*
 * A bad link in user space (DESIGN §10, issue 8): a TCP proxy between a child and its parent (or
 * an engine and its database) that throttles each direction to N bytes per second, stalls, and
 * cuts the connection after a chosen byte of the request (client → server) or of the response
 * (server → client). What happens to each new connection is decided by a plan, usually drawn
 * from a seeded random generator so a failure can be replayed.
 */

export type Direction = 'request' | 'response';

export interface ConnectionPlan {
  /** destroy both sides once this many bytes of the request have passed */
  cutRequestAt?: number;
  /** destroy both sides once this many bytes of the response have passed */
  cutResponseAt?: number;
  /** forward nothing in that direction for `ms` once `at` bytes of it have passed */
  stall?: { direction: Direction; at: number; ms: number };
}

export interface ProxyOptions {
  target: { host: string; port: number };
  /** where the proxy listens (default 127.0.0.1, a free port) */
  host?: string;
  port?: number;
  /** each direction's rate; Infinity (the default) forwards at once */
  bytesPerSecond?: number;
  /** decides each new connection's fate (index counts from 0); default: no fault */
  plan?: (index: number) => ConnectionPlan;
}

export interface ProxyStats {
  connections: number;
  /** connections the proxy cut on purpose */
  cuts: number;
  stalls: number;
  bytes: Record<Direction, number>;
}

export interface Proxy {
  readonly host: string;
  readonly port: number;
  /** e.g. http://127.0.0.1:PORT */
  url(protocol?: 'http' | 'https'): string;
  readonly stats: ProxyStats;
  setPlan(plan: (index: number) => ConnectionPlan): void;
  setRate(bytesPerSecond: number): void;
  /** the link goes down: open connections are cut and nothing listens until up() */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

/** A small seeded generator (mulberry32): the same seed, the same faults. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How often a throttled direction lets bytes through. */
const TICK_MS = 50;
/** A throttled direction stops reading its source beyond this much waiting. */
const HIGH_WATER = 64 * 1024;

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  let rate = opts.bytesPerSecond ?? Infinity;
  let plan: (index: number) => ConnectionPlan = opts.plan ?? (() => ({}));
  const stats: ProxyStats = {
    connections: 0,
    cuts: 0,
    stalls: 0,
    bytes: { request: 0, response: 0 },
  };
  const open = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const onConnection = (client: net.Socket) => {
    const index = stats.connections++;
    const fate = plan(index);
    const server = net.connect(opts.target.port, opts.target.host);
    open.add(client);
    open.add(server);
    let dead = false;
    const kill = (onPurpose: boolean) => {
      if (dead) return;
      dead = true;
      if (onPurpose) stats.cuts++;
      client.destroy();
      server.destroy();
    };
    client.on('close', () => {
      open.delete(client);
      kill(false);
    });
    server.on('close', () => {
      open.delete(server);
      kill(false);
    });
    client.on('error', () => kill(false));
    server.on('error', () => kill(false));

    const pump = (direction: Direction, from: net.Socket, to: net.Socket, cutAt?: number) => {
      const queue: Buffer[] = [];
      let queued = 0;
      let passed = 0;
      let ended = false;
      let stalledUntil = 0;
      let credit = 0;
      let timer: NodeJS.Timeout | null = null;
      const stall = fate.stall?.direction === direction ? fate.stall : undefined;

      const send = (chunk: Buffer): boolean => {
        // Cut exactly at the chosen byte: what comes before it passes, nothing after.
        if (cutAt !== undefined && passed + chunk.length >= cutAt) {
          const keep = cutAt - passed;
          if (keep > 0) to.write(chunk.subarray(0, keep));
          passed += Math.max(0, keep);
          stats.bytes[direction] += Math.max(0, keep);
          // Let the kept bytes leave before the connection dies.
          setImmediate(() => kill(true));
          return false;
        }
        to.write(chunk);
        passed += chunk.length;
        stats.bytes[direction] += chunk.length;
        return true;
      };

      const flush = () => {
        while (queue.length && !dead) {
          const now = Date.now();
          if (now < stalledUntil) return;
          if (stall && passed < stall.at && passed + queue[0]!.length > stall.at) {
            // Up to the stall point first.
            const head = queue[0]!;
            const n = stall.at - passed;
            queue[0] = head.subarray(n);
            queue.unshift(head.subarray(0, n));
          }
          if (stall && passed === stall.at && stalledUntil === 0) {
            stalledUntil = now + stall.ms;
            stats.stalls++;
            return;
          }
          let chunk = queue[0]!;
          if (Number.isFinite(rate)) {
            const n = Math.floor(credit);
            if (n <= 0) return;
            if (chunk.length > n) {
              queue[0] = chunk.subarray(n);
              chunk = chunk.subarray(0, n);
            } else queue.shift();
            credit -= chunk.length;
          } else queue.shift();
          queued -= chunk.length;
          if (!send(chunk)) return;
          if (queued < HIGH_WATER && from.isPaused()) from.resume();
        }
        if (!queue.length && ended && !dead) to.end();
      };

      const tick = () => {
        if (Number.isFinite(rate)) credit = Math.min(credit + (rate * TICK_MS) / 1000, rate);
        flush();
      };
      if (Number.isFinite(rate) || stall) {
        timer = setInterval(tick, TICK_MS);
        timers.add(timer);
      }
      const stop = () => {
        if (timer) {
          clearInterval(timer);
          timers.delete(timer);
          timer = null;
        }
      };
      to.on('close', stop);
      from.on('close', stop);

      from.on('data', (chunk: Buffer) => {
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= HIGH_WATER) from.pause();
        if (!Number.isFinite(rate) && !stall) flush();
      });
      from.on('end', () => {
        ended = true;
        flush();
      });
    };

    pump('request', client, server, fate.cutRequestAt);
    pump('response', server, client, fate.cutResponseAt);
  };

  let listener = net.createServer(onConnection);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, opts.host ?? '127.0.0.1', () => {
        listener.off('error', reject);
        resolve((listener.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(opts.port ?? 0);
  const host = opts.host ?? '127.0.0.1';

  const cutEverything = () => {
    for (const s of open) s.destroy();
    open.clear();
  };
  const stopListening = () =>
    new Promise<void>((resolve) => {
      listener.close(() => resolve());
      cutEverything();
    });

  return {
    host,
    port,
    url: (protocol = 'http') => `${protocol}://${host}:${port}`,
    stats,
    setPlan(p) {
      plan = p;
    },
    setRate(n) {
      rate = n;
    },
    down: stopListening,
    async up() {
      listener = net.createServer(onConnection);
      await listen(port);
    },
    async close() {
      for (const t of timers) clearInterval(t);
      timers.clear();
      if (listener.listening) await stopListening();
      else cutEverything();
    },
  };
}
