import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  RENDERER_CSP,
  adminToken,
  loopbackHost,
  startAdminServer,
  type AdminServer,
} from '../../src/api/adminServer.js';
import { createHttpApi } from '../../src/api/httpClient.js';
import { ROUTES } from '../../src/api/routes.js';
import {
  API_OPERATIONS,
  ApiError,
  type ApiEvent,
  type ApiStatus,
  type Settings,
  type SetupState,
  type SyncApi,
} from '../../src/api/types.js';
import { defaultSettings } from '../../src/engine/config/settings.js';
import { SyncError } from '../../src/engine/errors.js';
import { tempHome } from '../helpers/node.js';
import { quietStatus } from '../helpers/status.js';

const TOKEN = 'test-token-0123456789abcdef-0123456789';

const STATUS: ApiStatus = {
  ...quietStatus({ name: 'district', role: 'root', parent: null }),
  state: 'up-to-date',
  lastContactAt: null,
  nextSyncAt: null,
  syncing: false,
  syncPaused: false,
  syncPausedUntil: null,
  lastErrorKind: null,
};

const SETUP: SetupState = { node: null, progress: null, clone: null };

const SETTINGS: Settings = defaultSettings({
  db: 'mysql://openmrs@127.0.0.1:3306/openmrs',
  name: 'district',
});

/** A SyncApi that records its calls: the server's seam, not the engine. */
function stubApi() {
  const calls: { op: string; args: unknown[] }[] = [];
  const listeners = new Set<(e: ApiEvent) => void>();
  let failWith: Error | null = null;
  const rec =
    <T>(op: string, result: T) =>
    async (...args: unknown[]): Promise<T> => {
      calls.push({ op, args });
      if (failWith) throw failWith;
      return result;
    };
  const api: SyncApi = {
    getStatus: rec('getStatus', STATUS),
    listChildren: rec('listChildren', []),
    syncNow: rec('syncNow', { rounds: 1, sent: 0, received: 0, bytesUp: 1, bytesDown: 1, ms: 1 }),
    pauseSync: rec('pauseSync', { paused: true, until: null }),
    resumeSync: rec('resumeSync', { paused: false, until: null }),
    getSettings: rec('getSettings', SETTINGS),
    updateSetting: rec('updateSetting', SETTINGS),
    setOpenmrsLogin: rec('setOpenmrsLogin', SETTINGS),
    createPairingCode: rec('createPairingCode', {
      code: 'ABCD',
      expiresAt: '2026-01-01T00:00:00.000Z',
    }),
    listConflicts: rec('listConflicts', []),
    listHistory: rec('listHistory', []),
    listParked: rec('listParked', []),
    startClone: rec('startClone', {
      phase: 'starting' as const,
      tablesDone: 0,
      tablesTotal: 0,
      rowsDone: 0,
      bytesDone: 0,
      etaSeconds: null,
      error: null,
    }),
    cloneProgress: rec('cloneProgress', null),
    getSetupState: rec('getSetupState', SETUP),
    saveSetupProgress: rec('saveSetupProgress', SETUP),
    detectOpenmrs: rec('detectOpenmrs', { file: null, dbUrl: null, password: null }),
    testDatabase: rec('testDatabase', {
      connected: false,
      error: { kind: 'database' as const, message: 'No server.' },
      server: null,
      exists: false,
      created: false,
      tables: 0,
      openmrs: false,
      clinicSync: false,
      privileges: null,
    }),
    initRoot: rec('initRoot', SETUP),
    checkParent: rec('checkParent', { name: 'district', nodeId: 'ab', fingerprint: null }),
    listDrives: rec('listDrives', []),
    findTransferFiles: rec('findTransferFiles', []),
    exportTransfer: rec('exportTransfer', {
      file: '/media/k/f.csync',
      to: 'district',
      sent: 1,
      bytes: 10,
      complete: true,
    }),
    importTransfer: rec('importTransfer', {
      from: 'centre',
      received: 1,
      alreadyThere: 0,
      parked: 0,
      sent: 0,
      replyFile: null,
      replyComplete: true,
    }),
    subscribe(listener) {
      listeners.add(listener);
      listener({ type: 'status', status: STATUS });
      return () => listeners.delete(listener);
    },
  };
  return {
    api,
    calls,
    listeners,
    emit: (e: ApiEvent) => listeners.forEach((l) => l(e)),
    fail: (e: Error | null) => {
      failWith = e;
    },
  };
}

/** A raw request, for what fetch would not send (another Host, an unnormalised path). */
function raw(
  server: AdminServer,
  opts: { path: string; method?: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: opts.path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const bearer = { authorization: `Bearer ${TOKEN}` };

let stub: ReturnType<typeof stubApi>;
let server: AdminServer;
let dir: string;

beforeEach(async () => {
  stub = stubApi();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-admin-'));
  server = await startAdminServer({ api: stub.api, host: '127.0.0.1', port: 0, token: TOKEN });
});
afterEach(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('admin server: where it listens', () => {
  it('refuses any address but loopback', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.5', 'example.org', '10.0.0.1']) {
      await expect(
        startAdminServer({ api: stub.api, host, port: 0, token: TOKEN }),
      ).rejects.toSatisfy((e) => e instanceof SyncError && e.kind === 'usage');
    }
    expect(loopbackHost('localhost')).toBe('127.0.0.1');
    expect(loopbackHost('[::1]')).toBe('::1');
    expect(loopbackHost('127.0.0.2')).toBe('127.0.0.2');
  });

  it('listens on a free port and says where', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
  });

  it('says in one sentence when the port is taken', async () => {
    await expect(
      startAdminServer({ api: stub.api, host: '127.0.0.1', port: server.port, token: TOKEN }),
    ).rejects.toThrow(/already in use/);
  });
});

describe('admin server: the token', () => {
  it('answers 401 without the token, with a wrong one, or for another host name', async () => {
    const tries: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token' },
      { authorization: `Basic ${TOKEN}` },
      { ...bearer, host: 'evil.example:80' },
    ];
    for (const headers of tries) {
      const r = await raw(server, { path: '/api/status', headers });
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toMatchObject({ kind: 'unauthorized' });
    }
    expect((await raw(server, { path: '/api/status?token=nope' })).status).toBe(401);
    expect(stub.calls).toEqual([]);
  });

  it('accepts it as a bearer header, in the address, or in the cookie of the first page load', async () => {
    expect((await raw(server, { path: '/api/status', headers: bearer })).status).toBe(200);
    expect((await raw(server, { path: `/api/status?token=${TOKEN}` })).status).toBe(200);
    const first = await raw(server, { path: `/?token=${TOKEN}&lang=fr` });
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe('/?lang=fr');
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    expect(first.headers['set-cookie']?.[0]).toMatch(/HttpOnly; SameSite=Strict/);
    expect((await raw(server, { path: '/api/status', headers: { cookie } })).status).toBe(200);
  });

  it('the HTTP client gets a typed unauthorized error', async () => {
    const client = createHttpApi({ baseUrl: server.url, token: 'wrong-wrong-wrong' });
    await expect(client.getStatus()).rejects.toSatisfy(
      (e) => e instanceof ApiError && e.kind === 'unauthorized',
    );
  });

  it('adminToken makes a long random token once, kept in the secrets', () => {
    const home = tempHome();
    const t = adminToken(home);
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(adminToken(home)).toBe(t);
    const file = path.join(home.secretsDir, 'admin-token');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('admin server: routes', () => {
  it('has one route per operation and the HTTP client exactly the operations', () => {
    expect(Object.keys(ROUTES).sort()).toEqual([...API_OPERATIONS].sort());
    const client = createHttpApi({ baseUrl: server.url, token: TOKEN });
    expect(Object.keys(client).sort()).toEqual([...API_OPERATIONS].sort());
  });

  it('maps each operation 1:1 through the client', async () => {
    const c = createHttpApi({ baseUrl: server.url, token: TOKEN });
    expect(await c.getStatus()).toEqual(STATUS);
    await c.listChildren();
    await c.syncNow();
    await c.pauseSync({ hours: 8 });
    await c.resumeSync();
    expect(await c.getSettings()).toEqual(SETTINGS);
    await c.updateSetting('tables.exclude', 'a, b/c');
    const login = { url: 'http://localhost:8080/openmrs', user: 'sync', password: 'pw' };
    await c.setOpenmrsLogin(login);
    await c.createPairingCode({ ttlMinutes: 30 });
    await c.listConflicts({ limit: 5 });
    await c.listHistory({});
    await c.listParked({ limit: 7 });
    const req = { parentUrl: 'http://p:8750', code: 'X', dbUrl: 'mysql://u@h/db', name: 'n' };
    await c.startClone(req);
    expect(await c.cloneProgress()).toBeNull();
    expect(await c.getSetupState()).toEqual(SETUP);
    const progress = {
      step: 'database',
      role: 'child' as const,
      dbUrl: null,
      name: null,
      parentUrl: null,
    };
    await c.saveSetupProgress(progress);
    await c.saveSetupProgress(null);
    await c.detectOpenmrs();
    expect((await c.testDatabase({ dbUrl: 'mysql://u@h/db', create: true })).error).toEqual({
      kind: 'database',
      message: 'No server.',
    });
    await c.initRoot({ dbUrl: 'mysql://u@h/db', name: 'n' });
    await c.checkParent({ parentUrl: 'http://p:8750' });
    await c.listDrives();
    await c.findTransferFiles({ dir: '/media/k' });
    expect((await c.exportTransfer({ dir: '/media/k' })).file).toBe('/media/k/f.csync');
    await c.importTransfer({ file: '/media/k/f.csync', replyDir: null });
    expect(stub.calls).toEqual([
      { op: 'getStatus', args: [] },
      { op: 'listChildren', args: [] },
      { op: 'syncNow', args: [] },
      { op: 'pauseSync', args: [{ hours: 8 }] },
      { op: 'resumeSync', args: [] },
      { op: 'getSettings', args: [] },
      { op: 'updateSetting', args: ['tables.exclude', 'a, b/c'] },
      { op: 'setOpenmrsLogin', args: [login] },
      { op: 'createPairingCode', args: [{ ttlMinutes: 30 }] },
      { op: 'listConflicts', args: [{ limit: 5 }] },
      { op: 'listHistory', args: [{}] },
      { op: 'listParked', args: [{ limit: 7 }] },
      { op: 'startClone', args: [req] },
      { op: 'cloneProgress', args: [] },
      { op: 'getSetupState', args: [] },
      { op: 'saveSetupProgress', args: [progress] },
      { op: 'saveSetupProgress', args: [null] },
      { op: 'detectOpenmrs', args: [] },
      { op: 'testDatabase', args: [{ dbUrl: 'mysql://u@h/db', create: true }] },
      { op: 'initRoot', args: [{ dbUrl: 'mysql://u@h/db', name: 'n' }] },
      { op: 'checkParent', args: [{ parentUrl: 'http://p:8750' }] },
      { op: 'listDrives', args: [] },
      { op: 'findTransferFiles', args: [{ dir: '/media/k' }] },
      { op: 'exportTransfer', args: [{ dir: '/media/k' }] },
      { op: 'importTransfer', args: [{ file: '/media/k/f.csync', replyDir: null }] },
    ]);
  });

  it('answers unknown routes with 404 and malformed requests with 400 or 413', async () => {
    const notFound = await raw(server, { path: '/api/nothing', headers: bearer });
    expect(notFound.status).toBe(404);
    expect(JSON.parse(notFound.body)).toMatchObject({ kind: 'not-found' });
    expect(
      (await raw(server, { path: '/api/status', method: 'DELETE', headers: bearer })).status,
    ).toBe(404);
    expect((await raw(server, { path: '/', headers: bearer })).status).toBe(404);
    const bad = await raw(server, {
      path: '/api/pause',
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: '{"hours":',
    });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ kind: 'usage' });
    const big = await raw(server, {
      path: '/api/pause',
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: JSON.stringify({ hours: 2, pad: 'x'.repeat(70_000) }),
    });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body)).toMatchObject({ kind: 'usage' });
    expect(stub.calls).toEqual([]);
  });

  it('turns each error kind into its status code and back into a typed error', async () => {
    const c = createHttpApi({ baseUrl: server.url, token: TOKEN });
    for (const [error, status, kind] of [
      [new ApiError('usage', 'Bad.'), 400, 'usage'],
      [new ApiError('state', 'Paused.'), 409, 'state'],
      [new ApiError('database', 'Down.'), 503, 'database'],
      [new ApiError('unreachable', 'No answer.'), 503, 'unreachable'],
      [new Error('boom'), 500, 'internal'],
    ] as const) {
      stub.fail(error);
      const r = await raw(server, { path: '/api/sync', method: 'POST', headers: bearer });
      expect(r.status).toBe(status);
      await expect(c.syncNow()).rejects.toSatisfy(
        (e) => e instanceof ApiError && e.kind === kind && e.message.includes(error.message),
      );
    }
  });

  it('the HTTP client says the engine does not answer when nothing listens', async () => {
    const port = server.port;
    await server.close();
    const c = createHttpApi({ baseUrl: `http://127.0.0.1:${port}`, token: TOKEN });
    await expect(c.getStatus()).rejects.toSatisfy(
      (e) =>
        e instanceof ApiError && e.kind === 'unreachable' && /clinic-sync serve/.test(e.message),
    );
    server = await startAdminServer({ api: stub.api, host: '127.0.0.1', port: 0, token: TOKEN });
  });
});

describe('admin server: events', () => {
  it('streams events as SSE; the client delivers them and stops on unsubscribe', async () => {
    const c = createHttpApi({ baseUrl: server.url, token: TOKEN, reconnectMs: 50 });
    const got: ApiEvent[] = [];
    const stop = c.subscribe((e) => got.push(e));
    await until(() => got.length >= 1);
    expect(got[0]).toEqual({ type: 'status', status: STATUS });
    stub.emit({ type: 'sync-started', at: '2026-01-01T00:00:00.000Z' });
    await until(() => got.length >= 2);
    expect(got[1]).toEqual({ type: 'sync-started', at: '2026-01-01T00:00:00.000Z' });
    stop();
    await until(() => stub.listeners.size === 0);
    stub.emit({ type: 'sync-started', at: 'later' });
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toHaveLength(2);
  });

  it('says when the stream is lost and comes back by itself', async () => {
    const c = createHttpApi({ baseUrl: server.url, token: TOKEN, reconnectMs: 50 });
    const got: ApiEvent[] = [];
    const stop = c.subscribe((e) => got.push(e));
    await until(() => got.length >= 1);
    const port = server.port;
    await server.close();
    await until(() => got.some((e) => e.type === 'connection' && !e.connected));
    server = await startAdminServer({ api: stub.api, host: '127.0.0.1', port, token: TOKEN });
    await until(() => got.some((e) => e.type === 'connection' && e.connected), 5000);
    await until(() => got.filter((e) => e.type === 'status').length >= 2);
    stop();
  });
});

describe('admin server: the built renderer', () => {
  let site: AdminServer;
  beforeEach(async () => {
    const root = path.join(dir, 'renderer');
    fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
    fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>ClinicSync</title>');
    fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1)');
    fs.writeFileSync(path.join(root, '.env'), 'hidden');
    fs.writeFileSync(path.join(dir, 'secret.txt'), 'patient data');
    fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(root, 'assets', 'link.txt'));
    site = await startAdminServer({
      api: stub.api,
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      staticDir: root,
    });
  });
  afterEach(() => site.close());

  it('serves the page and its assets with a CSP', async () => {
    const page = await raw(site, { path: '/', headers: bearer });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>ClinicSync</title>');
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toBe(RENDERER_CSP);
    const js = await raw(site, { path: '/assets/app.js', headers: bearer });
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.body).toBe('console.log(1)');
    // Client-side routes get the page.
    expect((await raw(site, { path: '/settings', headers: bearer })).body).toContain('ClinicSync');
    expect((await raw(site, { path: '/', headers: {} })).status).toBe(401);
  });

  it('never serves a file outside its folder, nor a hidden one', async () => {
    for (const p of [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/..%5csecret.txt',
      '/assets/link.txt',
      '/.env',
      '/%00',
      '/missing.js',
    ]) {
      const r = await raw(site, { path: p, headers: bearer });
      expect(r.status, p).toBe(404);
      expect(r.body).not.toContain('patient data');
      expect(r.body).not.toContain('hidden');
    }
  });
});

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
