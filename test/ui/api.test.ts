import { describe, expect, it } from 'vitest';
import { API_OPERATIONS, ApiError } from '../../src/api/types.js';
import { connectApi } from '../../renderer/src/api.js';

/*
 * Which SyncApi the window talks to: the desktop app's bridge where the preload exposed one,
 * else the admin HTTP API of the engine that served the page, with the token from the address
 * taken out of the address bar.
 */

function fakeWindow(href: string, extra: Record<string, unknown> = {}) {
  const url = new URL(href);
  const replaced: string[] = [];
  const w = {
    location: { origin: url.origin, pathname: url.pathname, search: url.search, hash: url.hash },
    history: { replaceState: (_s: unknown, _t: string, to: string) => replaced.push(to) },
    ...extra,
  };
  return { w: w as unknown as Window, replaced };
}

describe('connectApi', () => {
  it('uses the bridge the preload exposed, with its failures as ApiErrors', async () => {
    const bridge = Object.fromEntries(
      API_OPERATIONS.map((op) => [op, () => Promise.reject({ kind: 'locked', message: 'busy' })]),
    );
    const { w, replaced } = fakeWindow('app://clinicsync/index.html', { clinicSync: bridge });
    const api = connectApi(w);
    const e = await api.getStatus().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ kind: 'locked', message: 'busy' });
    expect(replaced).toEqual([]);
  });

  it('in a browser, talks to the engine that served the page and hides the token', async () => {
    const { w, replaced } = fakeWindow('http://127.0.0.1:1/?lang=fr#token=abc');
    const api = connectApi(w);
    expect(Object.keys(api).sort()).toEqual([...API_OPERATIONS].sort());
    expect(replaced).toEqual(['/?lang=fr']);
    // Nothing answers on port 1: the HTTP client says so in its own words.
    const e = await api.getStatus().catch((x: unknown) => x);
    expect(e).toMatchObject({ kind: 'unreachable' });
    expect((e as ApiError).message).toContain('http://127.0.0.1:1');

    const plain = fakeWindow('http://127.0.0.1:1/');
    connectApi(plain.w);
    expect(plain.replaced).toEqual([]);
  });
});
