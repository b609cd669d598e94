import path from 'node:path';
import type { Home } from '../engine/config/home.js';
import { resolveDbTarget } from '../engine/config/home.js';
import type { Settings } from '../engine/config/settings.js';
import type { ServerEvent } from '../engine/transport/server.js';
import type { SyncApi } from '../api/types.js';
import { SERVE_INFO_FILE } from '../api/serveInfo.js';

/** The engine this app runs itself, in its main process. */
export interface OwnEngine {
  api: SyncApi;
  close(): Promise<void>;
}

export interface OwnEngineOptions {
  home: Home;
  settings: Settings;
  /** where children reach this node, as `serve --listen` (default 0.0.0.0:8750) */
  listen: { host: string; port: number };
  log(e: ServerEvent): void;
}

/**
 * Runs the node as `clinic-sync serve` does, with the same parts: the endpoint children call
 * (where it has or may have children), on a child its schedule, and the loopback admin API (on a free port) announced in serve.json, so
 * `clinic-sync` commands on this computer find this engine instead of starting a second one. The
 * node's lock is taken at once or not at all: a 'locked' SyncError means another engine runs it.
 */
export async function startOwnEngine(opts: OwnEngineOptions): Promise<OwnEngine> {
  const { home, settings, log } = opts;
  const { SyncNode } = await import('../engine/node/node.js');
  const { NodeService } = await import('../engine/node/service.js');
  const { ParentClient } = await import('../engine/transport/client.js');
  const { startSyncServer } = await import('../engine/transport/server.js');
  const { SNAPSHOT_PATH, snapshotRoute } = await import('../engine/clone/snapshot.js');
  const { VERIFY_PATH, verifyRoute } = await import('../engine/transport/verifyRoute.js');
  const { cloneRunner } = await import('../engine/clone/clone.js');
  const { SyncPause } = await import('../api/local.js');
  const { startAdminApi } = await import('../api/host.js');
  const { startSchedule, writeServeFile, removeServeFile } =
    await import('../cli/commands/serve.js');

  const { target } = resolveDbTarget(undefined, {}, home);
  const node = await SyncNode.open({
    db: target,
    settings,
    home,
    lock: 'try',
    purpose: 'the ClinicSync app',
  });
  const undo: (() => Promise<void>)[] = [() => node.close()];
  let closing: Promise<void> | null = null;
  // Undone in reverse order, once however often it is asked.
  const closeAll = () =>
    (closing ??= (async () => {
      for (const fn of [...undo].reverse()) await fn().catch(() => undefined);
    })());
  try {
    const client = settings.role === 'child' ? await ParentClient.forNode(node) : null;
    if (client) undo.push(() => client.close());
    // A clinic laptop with no children of its own opens no port (and so no firewall question);
    // a root, or a node with children, serves them as `serve` does.
    const serves =
      settings.role === 'root' || (await node.peers()).some((p) => p.relation === 'child');
    const server = serves
      ? await startSyncServer({
          node,
          host: opts.listen.host,
          port: opts.listen.port,
          log,
          extraRoutes: { [SNAPSHOT_PATH]: snapshotRoute(), [VERIFY_PATH]: verifyRoute() },
        })
      : null;
    if (server) undo.push(() => server.close());
    const service = new NodeService(node, client);
    const pause = new SyncPause();
    const schedule = client
      ? startSchedule(service, pause, settings.sync.intervalSeconds * 1000, (level, message) =>
          log({ level, message }),
        )
      : null;
    if (schedule) undo.push(() => schedule.stop());
    const admin = await startAdminApi({
      service,
      home,
      host: '127.0.0.1',
      port: 0,
      cloneRunner: cloneRunner(home),
      pause,
      ...(schedule ? { schedule } : {}),
    });
    undo.push(() => admin.close());
    const infoFile = path.join(home.dir, SERVE_INFO_FILE);
    writeServeFile(home, infoFile, {
      pid: process.pid,
      listen: server?.url ?? null,
      admin: admin.url,
      startedAt: new Date().toISOString(),
    });
    undo.push(async () => removeServeFile(infoFile));
    return { api: admin.api, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
