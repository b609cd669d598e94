import { API_OPERATIONS, apiErrorFrom, type SyncApi } from '../api/types.js';

/*
 * The page's side of the bridge: the renderer (in the Electron window) calls pageSyncApi() to get
 * the SyncApi the preload exposed, with failures back as ApiErrors (bridge.ts says why they cross
 * as plain objects). In a browser, where there is no bridge, it returns null and the renderer uses
 * the admin HTTP client instead. Loaded by the renderer: no Node, no Electron.
 */

/** The name the preload exposes the api under: window.clinicSync. */
export const BRIDGE_KEY = 'clinicSync';

export function pageSyncApi(scope: object = globalThis): SyncApi | null {
  const exposed = (scope as Record<string, unknown>)[BRIDGE_KEY];
  if (typeof exposed !== 'object' || exposed === null) return null;
  const bridge = exposed as Record<string, (...args: unknown[]) => unknown>;
  const out: Record<string, unknown> = {};
  for (const op of API_OPERATIONS) {
    const fn = bridge[op];
    if (typeof fn !== 'function') return null;
    out[op] =
      op === 'subscribe'
        ? (...args: unknown[]) => fn(...args)
        : (...args: unknown[]) =>
            (fn(...args) as Promise<unknown>).catch((e: unknown) => {
              throw apiErrorFrom(e, e instanceof Error ? e.message : `ClinicSync refused ${op}.`);
            });
  }
  return out as unknown as SyncApi;
}
