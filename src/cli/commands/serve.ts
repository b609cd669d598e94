import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import type { Home } from '../../engine/config/home.js';
import { SyncError, isSyncError } from '../../engine/errors.js';
import type { NodeService } from '../../engine/node/service.js';
import type { SyncPause as Pause } from '../../api/local.js';
import type { ServerEvent } from '../../engine/transport/server.js';
import { homeOf, type CliContext } from '../context.js';
import { describeSummary, withNodeWaiting } from './sync.js';

const DEFAULT_LISTEN = '0.0.0.0:8750';
const DEFAULT_ADMIN = '127.0.0.1:8751';
const MAX_INTERVAL_SECONDS = 7 * 86_400;
/** How long a sync in progress may take to finish once the node is asked to stop. */
const STOP_GRACE_MS = 15_000;

/** What `serve` writes to serve.json in the home (read by src/api/serveInfo.ts). */
export interface ServeFile {
  pid: number;
  /** the sync endpoint as bound, like http://0.0.0.0:8750 */
  listen: string;
  /** the admin API, or null while it is not running */
  admin: string | null;
  startedAt: string;
}

interface ServeOptions {
  listen?: string;
  admin?: string;
  interval?: string;
  dbPasswordFile?: string;
}

/**
 * `serve [--listen HOST:PORT] [--admin HOST:PORT] [--interval SECONDS]`: runs the node until
 * SIGTERM or SIGINT: the endpoints its children call and, on a child, its sync schedule. When
 * ready it prints `listening http://HOST:PORT` and writes serve.json in the home.
 */
export function serveCommand(ctx: CliContext): Command {
  return new Command('serve')
    .description('run this node: the endpoints its children call, and on a child its schedule')
    .option('--listen <host:port>', `where children reach this node (default ${DEFAULT_LISTEN})`)
    .option('--admin <host:port>', 'the local admin API (default 127.0.0.1:8751)')
    .option(
      '--interval <seconds>',
      'on a child, seconds between syncs with the parent (default: the setting sync.intervalSeconds)',
    )
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: ServeOptions, cmd: Command) => {
      const listen = parseHostPort(opts.listen ?? DEFAULT_LISTEN, '--listen');
      const admin = parseHostPort(opts.admin ?? DEFAULT_ADMIN, '--admin');
      const intervalOverride =
        opts.interval === undefined ? undefined : parseInterval(opts.interval);
      const home = homeOf(cmd, ctx);
      home.requireSettings();

      await withNodeWaiting(cmd, ctx, opts, async (node, settings) => {
        // Listened for from here on, so a stop while starting up still ends cleanly.
        const stopped = stopSignal();
        const log = (e: ServerEvent) =>
          ctx.io.err(`${new Date().toISOString()} ${e.level} ${e.message}`);
        const { startSyncServer } = await import('../../engine/transport/server.js');
        const { ParentClient } = await import('../../engine/transport/client.js');
        const { NodeService } = await import('../../engine/node/service.js');

        const isChild = settings.role === 'child';
        const client = isChild ? await ParentClient.forNode(node) : null;
        // A new child copies this node from its snapshot endpoint (clone/snapshot.ts).
        const { SNAPSHOT_PATH, snapshotRoute } = await import('../../engine/clone/snapshot.js');
        const { VERIFY_PATH, verifyRoute } = await import('../../engine/transport/verifyRoute.js');
        const server = await startSyncServer({
          node,
          host: listen.host,
          port: listen.port,
          log,
          extraRoutes: { [SNAPSHOT_PATH]: snapshotRoute(), [VERIFY_PATH]: verifyRoute() },
        });
        const { SyncPause } = await import('../../api/local.js');
        const { startAdminApi } = await import('../../api/host.js');
        const { cloneRunner } = await import('../../engine/clone/clone.js');
        // One service for the schedule and the admin API, so the window sees every sync.
        const service = new NodeService(node, client);
        const pause = new SyncPause();
        const schedule = client
          ? startSchedule(
              service,
              pause,
              (intervalOverride ?? settings.sync.intervalSeconds) * 1000,
              (level, message) => log({ level, message }),
            )
          : null;
        const adminApi = await startAdminApi({
          service,
          home,
          host: admin.host,
          port: admin.port,
          cloneRunner: cloneRunner(home),
          pause,
          ...(schedule ? { schedule } : {}),
        });
        const infoFile = path.join(home.dir, 'serve.json');
        try {
          writeServeFile(home, infoFile, {
            pid: process.pid,
            listen: server.url,
            admin: adminApi.url,
            startedAt: new Date().toISOString(),
          });
          ctx.io.out(`listening ${server.url}`);
          await stopped;
        } finally {
          await schedule?.stop();
          await adminApi.close();
          await server.close();
          await client?.close();
          removeServeFile(infoFile);
        }
      });
    });
}

/** Resolves on the first SIGTERM or SIGINT. */
function stopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/**
 * A child's schedule: a sync at start, then one every interval after the last one ended. A failed
 * sync is logged and the next slot comes as usual; it never stops for good.
 */
export function startSchedule(
  service: NodeService,
  pause: Pause,
  intervalMs: number,
  log: (level: ServerEvent['level'], message: string) => void,
): { stop(): Promise<void>; nextSyncAt(): string | null } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let next: number | null = null;
  let running: Promise<void> | null = null;
  const plan = (ms: number) => {
    next = Date.now() + ms;
    timer = setTimeout(tick, ms);
  };
  const tick = () => {
    timer = undefined;
    next = null;
    if (pause.isPaused()) {
      plan(intervalMs);
      return;
    }
    running = service
      .syncNow()
      .then(
        (summary) => log('info', `sync with the parent: ${describeSummary(summary)}`),
        (e: unknown) =>
          log(
            'warn',
            `sync with the parent failed: ${isSyncError(e) ? e.message : e instanceof Error ? e.name : String(e)}`,
          ),
      )
      .finally(() => {
        running = null;
        if (!stopped) plan(intervalMs);
      });
  };
  plan(0);
  return {
    nextSyncAt: () => (next === null ? null : new Date(next).toISOString()),
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (running) {
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([
          running,
          new Promise<void>((resolve) => {
            grace = setTimeout(resolve, STOP_GRACE_MS);
          }),
        ]);
        clearTimeout(grace);
      }
    },
  };
}

export function writeServeFile(home: Home, file: string, info: ServeFile): void {
  fs.mkdirSync(home.dir, { recursive: true, mode: 0o700 });
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(temp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(temp, file);
}

/** Removes serve.json if it is still this process's (a later serve may have replaced it). */
export function removeServeFile(file: string): void {
  try {
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown };
    if (info.pid === process.pid) fs.rmSync(file, { force: true });
  } catch {
    // gone already, or not ours to judge
  }
}

/** "HOST:PORT", "[IPv6]:PORT"; port 0 picks a free one. */
export function parseHostPort(raw: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65_535) {
    throw new SyncError(
      'usage',
      `${flag} must be HOST:PORT, like 0.0.0.0:8750 (port 0 picks a free one), not "${raw}".`,
    );
  }
  return { host: (m[1] ?? m[2])!, port };
}

function parseInterval(raw: string): number {
  const text = raw.trim();
  const n = /^[0-9]{1,7}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_INTERVAL_SECONDS) {
    throw new SyncError(
      'usage',
      `--interval must be a whole number of seconds from 1 to ${MAX_INTERVAL_SECONDS}, not "${raw}".`,
    );
  }
  return n;
}
