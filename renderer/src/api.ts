import { createHttpApi } from '../../src/api/httpClient.js';
import type { SyncApi } from '../../src/api/types.js';
import { pageSyncApi } from '../../src/preload/page.js';

/**
 * The one SyncApi the window talks to: in the desktop app, the one its preload exposes
 * (window.clinicSync, read through pageSyncApi so failures come back as ApiErrors); in a browser,
 * the admin HTTP API of the engine that served this page. Its token comes from the address
 * (`#token=` or `?token=`; taken out of the address bar at once) or, for a page the engine
 * served, from the cookie set on the first load.
 */
export function connectApi(w: Window = window): SyncApi {
  const bridged = pageSyncApi(w);
  if (bridged) return bridged;
  const loc = w.location;
  const hash = new URLSearchParams(loc.hash.replace(/^#/, ''));
  const query = new URLSearchParams(loc.search);
  const token = hash.get('token') ?? query.get('token') ?? undefined;
  if (token !== undefined) {
    hash.delete('token');
    query.delete('token');
    const rest = (p: URLSearchParams, mark: string) => (p.size ? `${mark}${p.toString()}` : '');
    w.history.replaceState(null, '', `${loc.pathname}${rest(query, '?')}${rest(hash, '#')}`);
  }
  return createHttpApi({ baseUrl: loc.origin, ...(token ? { token } : {}) });
}
