import net from 'node:net';

/*
 * A TCP proxy between a child and its parent that counts every byte on the socket, each way, and
 * can hold each direction to a rate (bytes per second), as a slow satellite link would. What the
 * benches call "bytes on the wire" is what passed through here: HTTP headers, signatures and
 * bodies, both ways.
 */

export interface CountingProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** bytes from the child to the parent, and back */
  readonly bytes: { up: number; down: number };
  readonly connections: number;
  reset(): void;
  close(): Promise<void>;
}

/** How often a throttled direction lets its next bytes through. */
const TICK_MS = 20;

export async function startCountingProxy(
  target: { host: string; port: number },
  bytesPerSecond = Infinity,
  /** the address the proxy connects from (127.x.y.z: many clients seen as many machines) */
  localAddress?: string,
): Promise<CountingProxy> {
  const bytes = { up: 0, down: 0 };
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const state = { connections: 0 };

  const pipe = (from: net.Socket, to: net.Socket, dir: 'up' | 'down') => {
    if (!Number.isFinite(bytesPerSecond)) {
      from.on('data', (chunk: Buffer) => {
        bytes[dir] += chunk.length;
        to.write(chunk);
      });
      from.on('end', () => to.end());
      return;
    }
    // A token bucket: at most a tick's worth of bytes leave per tick, so the rate holds even
    // for a single small request.
    const queue: Buffer[] = [];
    let ended = false;
    let credit = 0;
    const timer = setInterval(() => {
      credit = Math.min(credit + (bytesPerSecond * TICK_MS) / 1000, bytesPerSecond / 10);
      while (queue.length && credit >= 1) {
        const head = queue[0]!;
        const n = Math.min(head.length, Math.floor(credit));
        to.write(head.subarray(0, n));
        bytes[dir] += n;
        credit -= n;
        if (n === head.length) queue.shift();
        else queue[0] = head.subarray(n);
      }
      if (!queue.length) {
        credit = Math.min(credit, 1);
        if (ended) {
          to.end();
          stop();
        }
      }
    }, TICK_MS);
    timers.add(timer);
    const stop = () => {
      clearInterval(timer);
      timers.delete(timer);
    };
    from.on('data', (chunk: Buffer) => queue.push(chunk));
    from.on('end', () => (ended = true));
    from.on('close', stop);
    to.on('close', stop);
  };

  const server = net.createServer((client) => {
    state.connections++;
    const upstream = net.connect({
      port: target.port,
      host: target.host,
      ...(localAddress ? { localAddress } : {}),
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    pipe(client, upstream, 'up');
    pipe(upstream, client, 'down');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    bytes,
    get connections() {
      return state.connections;
    },
    reset() {
      bytes.up = 0;
      bytes.down = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
