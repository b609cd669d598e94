import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import type { Home } from '../../engine/config/home.js';
import { SyncError } from '../../engine/errors.js';
import { SyncSchedule, type PauseSource } from '../../engine/node/schedule.js';
import type { NodeService } from '../../engine/node/service.js';
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
  /** the sync endpoint as bound, like http://0.0.0.0:8750; null in setup mode (no node yet) */
  listen: string | null;
  /** the admin API, or null while it is not running */
  admin: string | null;
  startedAt: string;
}

interface ServeOptions {
  listen?: string;
  admin?: string;
  interval?: string;
  https?: boolean;
  dbPasswordFile?: string;
}

/**
 * `serve [--listen HOST:PORT] [--admin HOST:PORT] [--interval SECONDS] [--https]`: runs the node
 * until SIGTERM or SIGINT: the endpoints its children call (HTTPS with the home's self-signed
 * certificate when --https or the setting server.https), on a child its sync schedule
 * (engine/node/schedule.ts), and the journal's pruning. When ready it prints
 * `listening http://HOST:PORT` (or https://) and writes serve.json in the home. What it does is
 * logged on stderr and, as JSON lines, in the home's logs/clinic-sync.log (rotated by size).
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
    .option(
      '--https',
      "serve HTTPS with this node's self-signed certificate (default: the setting server.https)",
    )
    .option('--db-password-file <file>', 'read the database password from this file')
    .action(async (opts: ServeOptions, cmd: Command) => {
      const listen = parseHostPort(opts.listen ?? DEFAULT_LISTEN, '--listen');
      const admin = parseHostPort(opts.admin ?? DEFAULT_ADMIN, '--admin');
      const intervalOverride =
        opts.interval === undefined ? undefined : parseInterval(opts.interval);
      const home = homeOf(cmd, ctx);
      const { rendererDir, runSetupMode } = await import('./serveWindow.js');
      // A home with no node yet: the window's setup wizard makes it first (setup mode).
      const setup = home.load() ? null : await runSetupMode(ctx, home, admin);
      if (setup === null && !home.load()) return;
      home.requireSettings();

      await withNodeWaiting(cmd, ctx, opts, async (node, settings) => {
        // Listened for from here on, so a stop while starting up still ends cleanly.
        const stopped = stopSignal();
        const { RotatingLog } = await import('../../engine/node/logfile.js');
        const logFile = new RotatingLog(home.logsDir, () => node.settings.storage);
        // Sentences and a few named fields only: never a payload, a value or a secret.
        const log = (e: ServerEvent) => {
          const at = new Date();
          ctx.io.err(`${at.toISOString()} ${e.level} ${e.message}`);
          logFile.write(
            {
              level: e.level,
              message: e.message,
              ...(e.route ? { route: e.route } : {}),
              ...(e.node ? { node: e.node } : {}),
              ...(e.status !== undefined ? { status: e.status } : {}),
              ...(e.ms !== undefined ? { ms: e.ms } : {}),
            },
            at,
          );
        };
        const { startSyncServer } = await import('../../engine/transport/server.js');
        const { ParentClient } = await import('../../engine/transport/client.js');
        const { NodeService } = await import('../../engine/node/service.js');
        const { startPruning } = await import('../../engine/node/prune.js');
        const { ensureCertificate } = await import('../../engine/transport/tls.js');
        const certificate =
          (opts.https ?? settings.server.https)
            ? await ensureCertificate(home, settings.name)
            : null;

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
          ...(certificate ? { tls: { cert: certificate.cert, key: certificate.key } } : {}),
        });
        const { SyncPause } = await import('../../api/local.js');
        const { startAdminApi } = await import('../../api/host.js');
        const { cloneRunner } = await import('../../engine/clone/clone.js');
        // One service for the schedule and the admin API, so the window sees every sync.
        const service = new NodeService(node, client);
        const pause = new SyncPause();
        service.on((e) => {
          if (e.type === 'sync-finished')
            log({ level: 'info', message: `sync with the parent: ${describeSummary(e.summary)}` });
        });
        const schedule = client
          ? startSchedule(
              service,
              pause,
              intervalOverride === undefined ? null : intervalOverride * 1000,
              (level, message) => log({ level, message }),
            )
          : null;
        node.openmrs?.onProblem((message) => log({ level: 'warn', message }));
        const pruner = startPruning({
          db: node.pool,
          settings: () => node.settings.storage,
          log: (level, message) => log({ level, message }),
        });
        const local = {
          service,
          cloneRunner: cloneRunner(home),
          pause,
          ...(schedule ? { schedule } : {}),
        };
        // The window keeps the address setup mode served it on.
        const adminApi = setup
          ? setup.attach(local)
          : await startAdminApi({
              ...local,
              home,
              host: admin.host,
              port: admin.port,
              staticDir: rendererDir() ?? undefined,
            });
        const infoFile = path.join(home.dir, 'serve.json');
        try {
          writeServeFile(home, infoFile, {
            pid: process.pid,
            listen: server.url,
            admin: adminApi.url,
            startedAt: new Date().toISOString(),
          });
          if (certificate) ctx.io.err(`certificate fingerprint ${certificate.fingerprint}`);
          ctx.io.out(`listening ${server.url}`);
          await stopped;
        } finally {
          await schedule?.stop(STOP_GRACE_MS);
          await pruner.stop();
          await adminApi.close();
          await server.close();
          await client?.close();
          removeServeFile(infoFile);
        }
      }).finally(() => setup?.close());
    });
}

/**
 * A child's schedule as `serve` runs it (engine/node/schedule.ts), started: for hosts that run a
 * node like serve does (the desktop app). `intervalMs` overrides the setting sync.intervalSeconds;
 * null reads the setting at every slot.
 */
export function startSchedule(
  service: NodeService,
  pause: PauseSource,
  intervalMs: number | null,
  log: (level: 'info' | 'warn', message: string) => void,
): SyncSchedule {
  const node = service.node;
  const schedule = new SyncSchedule({
    service,
    pause,
    settings: () => ({
      ...node.settings.sync,
      ...(intervalMs !== null ? { intervalSeconds: intervalMs / 1000 } : {}),
    }),
    log,
    // Children of one parent spread over the interval, each at its own offset.
    spread: parseInt(node.nodeId.slice(0, 8), 16),
  });
  schedule.start();
  return schedule;
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
