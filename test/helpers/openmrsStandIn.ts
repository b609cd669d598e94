import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One call the stand-in received. */
export interface RecordedCall {
  /** cleardbcache or searchindexupdate */
  service: string;
  resource: string | null;
  subResource: string | null;
  uuid: string | null;
  /** user:password from the Basic authorization */
  credentials: string | null;
}

/**
 * A small stand-in for a running OpenMRS's REST module, on a real HTTP server: it answers the two
 * refresh resources (POST /openmrs/ws/rest/v1/cleardbcache and /searchindexupdate) with 204 as
 * OpenMRS does, and records each call. `down()` stops it listening (connections refused), `up()`
 * brings it back on the same port; `failWith(status)` makes it answer that status instead.
 */
export class OpenmrsStandIn {
  readonly calls: RecordedCall[] = [];
  private server: http.Server | null = null;
  private port = 0;
  private failure: number | null = null;

  get url(): string {
    return `http://127.0.0.1:${this.port}/openmrs`;
  }

  async up(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  failWith(status: number | null): void {
    this.failure = status;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/openmrs\/ws\/rest\/v1\/(cleardbcache|searchindexupdate)$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) {
        res.writeHead(404).end();
        return;
      }
      if (this.failure !== null) {
        res.writeHead(this.failure).end();
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      const body = (text === '' ? {} : JSON.parse(text)) as Record<string, string | undefined>;
      const auth = req.headers.authorization;
      this.calls.push({
        service: m[1]!,
        resource: body.resource ?? null,
        subResource: body.subResource ?? null,
        uuid: body.uuid ?? null,
        credentials: auth?.startsWith('Basic ')
          ? Buffer.from(auth.slice(6), 'base64').toString('utf8')
          : null,
      });
      res.writeHead(204).end();
    });
  }
}
