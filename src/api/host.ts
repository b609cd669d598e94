import type { Home } from '../engine/config/home.js';
import { adminToken, startAdminServer, type AdminServer } from './adminServer.js';
import { createLocalApi, type LocalApiOptions } from './local.js';
import type { SyncApi } from './types.js';

export interface AdminApiHost extends AdminServer {
  /** the in-process api the server exposes (the desktop app's IPC can share it) */
  api: SyncApi;
  /** the address a browser on this computer opens: the url with the token */
  pageUrl: string;
}

/**
 * Everything a host (`clinic-sync serve`, the desktop app running a node) needs for the admin API
 * in one call: the token from the home's secrets, the in-process api over the host's own
 * NodeService (the one its scheduler syncs with, so every sync is seen), and the loopback server.
 * The host then records `url` as `admin` in serve.json.
 */
export async function startAdminApi(
  opts: LocalApiOptions & { home: Home; host: string; port: number; staticDir?: string },
): Promise<AdminApiHost> {
  const { home, host, port, staticDir, ...local } = opts;
  const token = adminToken(home);
  const detach = new AbortController();
  const api = createLocalApi({ ...local, signal: detach.signal });
  let server: AdminServer;
  try {
    server = await startAdminServer({ api, host, port, token, staticDir });
  } catch (e) {
    detach.abort();
    throw e;
  }
  return {
    url: server.url,
    port: server.port,
    api,
    pageUrl: `${server.url}/?token=${encodeURIComponent(token)}`,
    async close() {
      await server.close();
      detach.abort();
    },
  };
}
