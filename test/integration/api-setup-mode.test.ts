import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminToken } from '../../src/api/adminServer.js';
import { createHttpApi } from '../../src/api/httpClient.js';
import { startSetupHost, type SetupHost } from '../../src/api/setupMode.js';
import { API_OPERATIONS, ApiError, type ApiEvent, type SyncApi } from '../../src/api/types.js';
import { cloneRunner } from '../../src/engine/clone/clone.js';
import type { Home } from '../../src/engine/config/home.js';
import { queryRows } from '../../src/engine/db/pool.js';
import { NodeService } from '../../src/engine/node/service.js';
import { SyncNode } from '../../src/engine/node/node.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { tempHome } from '../helpers/node.js';

/*
 * Setup mode (issue "The React window", item 1): on a computer with no node yet the admin API
 * offers only the wizard's operations; once the wizard has made the node, the same address and
 * token serve the node's own api, and the open window's event stream moves over to it.
 */

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

async function until<T>(
  read: () => T | Promise<T>,
  ok: (v: T) => boolean,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the admin API in setup mode', () => {
  let home: Home;
  let db: TestDb;
  let host: SetupHost;
  let api: SyncApi;
  let node: SyncNode | null;
  const events: ApiEvent[] = [];
  let stop: () => void;

  beforeEach(async () => {
    home = tempHome();
    db = await createTestDb('cs_setup');
    await createClinicSchema(db.pool);
    host = await startSetupHost({
      home,
      host: '127.0.0.1',
      port: 0,
      cloneRunner: cloneRunner(home),
    });
    api = createHttpApi({ baseUrl: host.url, token: adminToken(home), reconnectMs: 50 });
    node = null;
    events.length = 0;
    stop = api.subscribe((e) => events.push(e));
  });
  afterEach(async () => {
    stop();
    await host.close();
    await node?.close();
    await db.drop();
    fs.rmSync(home.dir, { recursive: true, force: true });
  });

  it('offers the wizard only: every other operation says the computer is not set up', async () => {
    expect(await api.getSetupState()).toEqual({ node: null, progress: null, clone: null });
    await until(
      () => events,
      (es) => es.length > 0,
    );
    expect(events[0]).toEqual({
      type: 'setup',
      state: { node: null, progress: null, clone: null },
    });
    for (const call of [
      () => api.getStatus(),
      () => api.syncNow(),
      () => api.createPairingCode({ ttlMinutes: 10 }),
      () => api.listDrives(),
      () => api.updateSetting('sync.retries', '1'),
    ]) {
      const e = await rejection(call());
      expect(e.kind).toBe('state');
      expect(e.message).toBe(
        'This computer is not set up yet; finish the setup in the ClinicSync window first.',
      );
    }
    const progress = {
      step: 'database',
      role: 'root' as const,
      dbUrl: 'mysql://root@127.0.0.1:3306/x',
      name: null,
      parentUrl: null,
    };
    expect((await api.saveSetupProgress(progress)).progress).toEqual(progress);
    await until(
      () => events,
      (es) => es.some((e) => e.type === 'setup' && e.state.progress?.step === 'database'),
    );
    expect(fs.existsSync(path.join(home.dir, 'settings.json'))).toBe(false);
  });

  it('a failed init leaves no node and the window still in; a good one hands over to the node', async () => {
    const token = adminToken(home);
    const bad = await rejection(
      api.initRoot({ dbUrl: db.url.replace(/\/[^/]+$/, '/no_such_db_here'), name: 'District' }),
    );
    expect(bad.kind).toBe('database');
    expect(bad.message).toMatch(/does not exist/);
    expect(home.load()).toBeNull();
    expect(adminToken(home)).toBe(token);
    expect((await api.getSetupState()).node).toBeNull();
    expect((await rejection(api.initRoot({ dbUrl: db.url, name: '' }))).kind).toBe('usage');

    const made = await api.initRoot({ dbUrl: db.url, name: 'District', preset: 'openmrs' });
    expect(made.node).toEqual({ name: 'District', role: 'root' });
    await host.nodeReady;
    expect(home.load()?.tables.preset).toBe('openmrs');
    const [role] = await queryRows(db.pool, "SELECT v FROM clinicsync_meta WHERE k = 'role'");
    expect(role?.v).toBe('root');
    expect((await rejection(api.initRoot({ dbUrl: db.url, name: 'Again' }))).kind).toBe('state');

    // The host opens the node and serves its api on the same address and token.
    const settings = home.load()!;
    node = await SyncNode.open({ db: db.target, settings, home, lock: 'try' });
    const attached = host.attach({ service: new NodeService(node, null) });
    expect(attached.url).toBe(host.url);
    expect(Object.keys(attached.api).sort()).toEqual([...API_OPERATIONS].sort());
    expect(await api.getStatus()).toMatchObject({ name: 'District', role: 'root' });
    expect((await api.createPairingCode({ ttlMinutes: 10 })).code).toMatch(/-/);
    // The open window's event stream now hears the node.
    await until(
      () => events,
      (es) => es.some((e) => e.type === 'status' && e.status.name === 'District'),
    );
  });

  it('a clone that fails stays in setup mode, with the reason', async () => {
    const empty = await createTestDb('cs_setup_empty');
    try {
      const first = await api.startClone({
        parentUrl: 'http://127.0.0.1:1',
        code: 'ABCD-EFGH-JKMN',
        dbUrl: empty.url,
        name: 'Butaro',
      });
      expect(first.phase).toBe('starting');
      const failed = await until(
        () => api.cloneProgress(),
        (p) => p?.phase === 'failed',
      );
      expect(failed?.error?.kind).toBe('unreachable');
      expect((await api.getSetupState()).node).toBeNull();
      expect((await api.getSetupState()).clone?.phase).toBe('failed');
      expect((await rejection(api.getStatus())).kind).toBe('state');
    } finally {
      await empty.drop();
    }
  });
});
