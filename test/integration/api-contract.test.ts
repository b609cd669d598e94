import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminToken, startAdminServer } from '../../src/api/adminServer.js';
import { startAdminApi } from '../../src/api/host.js';
import { createHttpApi } from '../../src/api/httpClient.js';
import {
  SyncPause,
  createLocalApi,
  type CloneRunner,
  type CloneStep,
  type LocalApiOptions,
} from '../../src/api/local.js';
import { normalizeCode, pairingKey } from '../../src/engine/transport/pairing.js';
import {
  API_OPERATIONS,
  ApiError,
  type ApiErrorKind,
  type ApiEvent,
  type CloneRequest,
  type SyncApi,
} from '../../src/api/types.js';
import { cloneRunner } from '../../src/engine/clone/clone.js';
import type { Home } from '../../src/engine/config/home.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { SyncError } from '../../src/engine/errors.js';
import { OPENMRS_PASSWORD_SECRET } from '../../src/engine/openmrs/password.js';
import { NodeService, type ParentLink } from '../../src/engine/node/service.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/engine/protocol/xml.js';
import { startSyncServer } from '../../src/engine/transport/server.js';
import { ensureCertificate } from '../../src/engine/transport/tls.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { Tree } from '../helpers/tree.js';
import { acrossContextBridge, OUR_PAGE, StubIpc } from '../helpers/electronStub.js';
import { registerApiHandlers } from '../../src/main/ipc.js';
import { isTrustedSender } from '../../src/main/security.js';
import { createBridgeApi, forContextBridge } from '../../src/preload/bridge.js';
import { BRIDGE_KEY, pageSyncApi } from '../../src/preload/page.js';
import { shareSecret } from '../helpers/usb.js';
import { REMOVABLE_ROOTS_ENV } from '../../src/engine/transfer/drives.js';

/*
 * One SyncApi contract, run against every implementation: the in-process engine and the admin
 * HTTP client and the desktop app's preload bridge below. Each test runs on a real
 * MariaDB with a parent ("district") and a child ("centre") cloned from it.
 */

export interface ApiHarness {
  api: SyncApi;
  close(): Promise<void>;
}

/** Builds the implementation under test over an in-process api with these options. */
export type MakeApi = (opts: LocalApiOptions) => Promise<ApiHarness>;

/** A link that calls the parent in this process, through the real XML codec with gzip. */
function inProcessLink(parent: SyncNode): ParentLink {
  return {
    async exchange(env) {
      const up = encodeEnvelope(env, { gzip: true });
      const { reply } = await parent.answer(decodeEnvelope(up));
      const down = encodeEnvelope(reply, { gzip: true });
      return { reply: decodeEnvelope(down), bytesUp: up.length, bytesDown: down.length };
    },
  };
}

const deadLink: ParentLink = {
  exchange() {
    return Promise.reject(
      new SyncError('unreachable', 'The parent at http://district.invalid:8750 did not answer.'),
    );
  },
};

/** A clone flow that reports a few steps: the CloneRunner seam, not the clone engine. */
function fakeRunner(opts: { fail?: boolean } = {}): CloneRunner & { requests: CloneRequest[] } {
  const requests: CloneRequest[] = [];
  return {
    requests,
    async run(req, onProgress) {
      requests.push(req);
      const step = (p: Partial<CloneStep>) =>
        onProgress({
          phase: 'rows',
          tablesDone: 0,
          tablesTotal: 3,
          rowsDone: 0,
          bytesDone: 0,
          etaSeconds: null,
          ...p,
        });
      await tick();
      step({ phase: 'schema' });
      await tick();
      step({ tablesDone: 1, rowsDone: 10, bytesDone: 1000, etaSeconds: 4 });
      await tick();
      if (opts.fail) throw new SyncError('unreachable', 'The parent stopped answering.');
      step({ tablesDone: 3, rowsDone: 30, bytesDone: 3000, etaSeconds: 0 });
    },
  };
}

// The clone engine's runner fits the seam (checked by the compiler).
const engineRunner: (home: Home) => CloneRunner = cloneRunner;
void engineRunner;

const tick = () => new Promise((r) => setTimeout(r, 5));

async function until<T>(read: () => T | Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw new Error(`expected an ApiError, got ${String(e)}`);
  }
  throw new Error('expected a rejection');
}

async function expectKind(p: Promise<unknown>, kind: ApiErrorKind): Promise<ApiError> {
  const e = await rejection(p);
  expect(e.kind, e.message).toBe(kind);
  return e;
}

export function syncApiContract(name: string, makeApi: MakeApi): void {
  describe(`SyncApi contract: ${name}`, () => {
    let tree: Tree;
    let root: SyncNode;
    let child: SyncNode;
    let harnesses: ApiHarness[];

    beforeEach(async () => {
      tree = new Tree();
      harnesses = [];
      const db = await createTestDb();
      await createClinicSchema(db.pool);
      root = await tree.root(db, 'district');
      child = await tree.clone(root, 'centre');
    });
    afterEach(async () => {
      for (const h of harnesses) await h.close();
      await tree.close();
    });

    async function open(
      node: SyncNode,
      opts: Partial<LocalApiOptions> & { link?: ParentLink | null } = {},
    ): Promise<SyncApi> {
      const link =
        opts.link === undefined ? (node === child ? inProcessLink(root) : null) : opts.link;
      const h = await makeApi({ ...opts, service: new NodeService(node, link) });
      harnesses.push(h);
      return h.api;
    }

    it('has exactly the listed operations', async () => {
      const api = await open(child);
      expect(Object.keys(api).sort()).toEqual([...API_OPERATIONS].sort());
    });

    it('shows the status with its overall state on a child and on its parent', async () => {
      const api = await open(child);
      const s = await api.getStatus();
      expect(s).toMatchObject({
        name: 'centre',
        role: 'child',
        state: 'up-to-date',
        pendingOut: 0,
        parked: 0,
        lastContactAt: null,
        nextSyncAt: null,
        syncing: false,
        syncPaused: false,
        syncPausedUntil: null,
        lastErrorKind: null,
        clockWarning: null,
        nodeId: child.nodeId,
      });
      // Plain JSON: nothing is lost on the way through JSON.
      expect(JSON.parse(JSON.stringify(s))).toEqual(s);

      await execute(
        child.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-waiting')",
      );
      expect(await api.getStatus()).toMatchObject({ state: 'waiting', pendingOut: 1 });

      const parent = await open(root);
      expect(await parent.getStatus()).toMatchObject({
        name: 'district',
        role: 'root',
        state: 'up-to-date',
        children: [{ name: 'centre', nodeId: child.nodeId }],
      });
      expect(await parent.listChildren()).toEqual([
        {
          name: 'centre',
          nodeId: child.nodeId,
          lastContactAt: null,
          pendingOut: 0,
          pendingIn: 0,
          contact: 'never',
        },
      ]);
      expect(await api.listChildren()).toEqual([]);
    });

    it('reads settings, changes one, and refuses a bad value with a usage error', async () => {
      const api = await open(child);
      const before = await api.getSettings();
      expect(before).toMatchObject({ name: 'centre', role: 'child' });
      expect(before.sync.intervalSeconds).toBe(600);

      const after = await api.updateSetting('sync.intervalSeconds', '900');
      expect(after.sync.intervalSeconds).toBe(900);
      expect((await api.getSettings()).sync.intervalSeconds).toBe(900);
      expect(child.home.load()?.sync.intervalSeconds).toBe(900);
      // Limits the running engine reads apply at once.
      await api.updateSetting('sync.batchRecords', '50');
      expect(child.settings.sync.batchRecords).toBe(50);
      await api.updateSetting('tables.exclude', 'tag_map, obs');
      expect((await api.getSettings()).tables.exclude).toEqual(['tag_map', 'obs']);

      const bad = await expectKind(api.updateSetting('sync.intervalSeconds', 'soon'), 'usage');
      expect(bad.message).toBe(
        'The setting sync.intervalSeconds must be a whole number of seconds from 10 to 604800, not "soon".',
      );
      await expectKind(api.updateSetting('name', 'other'), 'usage');
      await expectKind(api.updateSetting('no.such', '1'), 'usage');
      expect((await api.getSettings()).sync.intervalSeconds).toBe(900);
    });

    it("names the clinic's OpenMRS with its password kept as a secret, and refuses half a login", async () => {
      const api = await open(child);
      const url = 'http://localhost:8080/openmrs';
      // No password saved yet: one must be given.
      const none = await expectKind(
        api.setOpenmrsLogin({ url, user: 'sync', password: null }),
        'usage',
      );
      expect(none.message).toBe('Give the password of the OpenMRS user "sync".');
      await expectKind(api.setOpenmrsLogin({ url, user: ' ', password: 'pw' }), 'usage');
      await expectKind(
        api.setOpenmrsLogin({ url: 'not an address', user: 'sync', password: 'pw' }),
        'usage',
      );
      expect(child.home.readSecret(OPENMRS_PASSWORD_SECRET)).toBeNull();

      const saved = await api.setOpenmrsLogin({ url, user: 'sync', password: 'Secret123' });
      expect(saved.openmrs).toMatchObject({ url, user: 'sync' });
      expect(JSON.stringify(saved)).not.toContain('Secret123');
      expect(child.home.readSecret(OPENMRS_PASSWORD_SECRET)).toBe('Secret123');
      expect(child.settings.openmrs).toMatchObject({ url, user: 'sync' });
      // The password saved is kept when none is given again; an empty address names none.
      await api.setOpenmrsLogin({ url, user: 'refresher', password: null });
      expect(child.home.readSecret(OPENMRS_PASSWORD_SECRET)).toBe('Secret123');
      expect((await api.getSettings()).openmrs.user).toBe('refresher');
      const off = await api.setOpenmrsLogin({ url: '', user: 'refresher', password: null });
      expect(off.openmrs).toMatchObject({ url: '', user: '' });
    });

    it('creates one-time pairing codes, kept only as a hash', async () => {
      const api = await open(root);
      const t0 = Date.now();
      const a = await api.createPairingCode({ ttlMinutes: 30 });
      const b = await api.createPairingCode({ ttlMinutes: 30 });
      expect(normalizeCode(a.code)).not.toBeNull();
      expect(a.code).not.toBe(b.code);
      const expires = Date.parse(a.expiresAt);
      expect(expires).toBeGreaterThan(t0 + 29 * 60_000);
      expect(expires).toBeLessThan(t0 + 31 * 60_000);
      const rows = await queryRows(root.pool, 'SELECT code_hash, used_at FROM clinicsync_pairing');
      expect(rows).toHaveLength(2);
      const hashes = rows.map((r) => (r.code_hash as Buffer).toString('hex'));
      // The transport's hash, so the transport's pairing endpoint accepts the code.
      expect(hashes).toContain((await pairingKey(a.code, root.nodeId)).toString('hex'));
      expect(hashes.join()).not.toContain(Buffer.from(a.code).toString('hex'));
      await expectKind(api.createPairingCode({ ttlMinutes: 0 }), 'usage');
    });

    it('syncs now: a change made on the child reaches the parent, and the history shows it', async () => {
      const api = await open(child);
      await execute(
        child.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-synced')",
      );
      const summary = await api.syncNow();
      expect(summary.sent).toBeGreaterThanOrEqual(1);
      expect(summary.rounds).toBeGreaterThanOrEqual(1);
      expect(summary.bytesUp).toBeGreaterThan(0);
      const [row] = await queryRows(root.pool, "SELECT gender FROM person WHERE uuid = 'p-synced'");
      expect(row).toEqual({ gender: 'F' });

      const s = await api.getStatus();
      expect(s).toMatchObject({ state: 'up-to-date', pendingOut: 0, lastError: null });
      expect(s.lastContactAt).not.toBeNull();
      expect(s.lastSuccessAt).not.toBeNull();

      const history = await api.listHistory({ limit: 10 });
      expect(history.length).toBeGreaterThanOrEqual(1);
      expect(history[0]).toMatchObject({ peer: root.nodeId, peerName: 'district', ok: true });
      expect(history.reduce((n, h) => n + h.sent, 0)).toBe(summary.sent);
      expect(await api.listHistory({ limit: 1 })).toHaveLength(1);
      await expectKind(api.listHistory({ limit: 0 }), 'usage');

      const parent = await open(root);
      expect((await parent.listChildren())[0]).toMatchObject({ name: 'centre', contact: 'recent' });
      await expectKind(parent.syncNow(), 'state');
    });

    it('lists a conflict: the value that lost, and which clinic made it', async () => {
      const api = await open(child);
      expect(await api.listConflicts({ limit: 10 })).toEqual([]);
      await execute(
        root.pool,
        "UPDATE global_property SET property_value = 'fr' WHERE property = 'locale'",
      );
      await root.pickup();
      await new Promise((r) => setTimeout(r, 5));
      await execute(
        child.pool,
        "UPDATE global_property SET property_value = 'rw' WHERE property = 'locale'",
      );
      await api.syncNow();
      const conflicts = await api.listConflicts({});
      expect(conflicts).toHaveLength(1);
      expect(conflicts[0]).toMatchObject({
        table: 'global_property',
        columns: ['property_value'],
        winner: { property_value: 'rw' },
        loser: { property_value: 'fr' },
        winnerOrigin: child.nodeId,
        winnerName: 'centre',
        loserOrigin: root.nodeId,
        loserName: 'district',
      });
      expect(Date.parse(conflicts[0]!.at)).not.toBeNaN();
    });

    it('lists a parked change with its reason in plain words, and needs attention', async () => {
      // A user row the child never captured: the person referring to it cannot be applied upstream.
      const conn = await child.pool.getConnection();
      try {
        await conn.query('SET @clinicsync_applying = 1');
        await conn.query(
          "INSERT INTO users (user_id, username, uuid) VALUES (77, 'ghost', 'u-ghost')",
        );
      } finally {
        await conn.query('SET @clinicsync_applying = NULL');
        conn.release();
      }
      await execute(
        child.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('M', 77, '2026-01-01', 'p-parked')",
      );
      await (await open(child)).syncNow();

      const parent = await open(root);
      const parked = await parent.listParked({ limit: 10 });
      expect(parked).toHaveLength(1);
      expect(parked[0]).toMatchObject({
        table: 'person',
        waitingForTable: 'users',
        origin: child.nodeId,
        originName: 'centre',
      });
      expect(parked[0]!.identity).toContain('p-parked');
      expect(parked[0]!.reason).toMatch(/person .*users.*not arrived yet/);
      expect(Date.parse(parked[0]!.since)).not.toBeNaN();
      expect(await parent.getStatus()).toMatchObject({ parked: 1, state: 'needs-attention' });
    });

    it('pauses and resumes; a timed pause resumes by itself', async () => {
      // An "hour" of one minute: the pause cannot end by itself during the checks.
      const api = await open(child, { pause: new SyncPause(60_000) });
      const t0 = Date.now();
      const paused = await api.pauseSync({ hours: 2 });
      expect(paused.paused).toBe(true);
      const until = Date.parse(paused.until!);
      expect(until).toBeGreaterThanOrEqual(t0 + 120_000);
      expect(until).toBeLessThanOrEqual(Date.now() + 120_000);
      expect(await api.getStatus()).toMatchObject({
        state: 'paused',
        syncPaused: true,
        syncPausedUntil: paused.until,
      });
      const refused = await expectKind(api.syncNow(), 'state');
      expect(refused.message).toMatch(/paused until .*resume/);
      expect(await api.resumeSync()).toEqual({ paused: false, until: null });
      expect(await api.getStatus()).toMatchObject({ state: 'up-to-date', syncPaused: false });

      expect(await api.pauseSync({ hours: null })).toEqual({ paused: true, until: null });
      expect(await api.getStatus()).toMatchObject({ syncPaused: true, syncPausedUntil: null });
      expect(await api.resumeSync()).toEqual({ paused: false, until: null });
      expect(await api.resumeSync()).toEqual({ paused: false, until: null });
      await expectKind(api.pauseSync({ hours: 3 } as never), 'usage');
      await expectKind(api.pauseSync({} as never), 'usage');
      expect((await api.syncNow()).rounds).toBeGreaterThanOrEqual(1);

      // An "hour" of 100 ms: a pause for 2 hours ends by itself after 200 ms.
      const quick = await open(child, { pause: new SyncPause(100) });
      await quick.pauseSync({ hours: 2 });
      await until_(quick, (s) => !s.syncPaused);
      expect(await quick.getStatus()).toMatchObject({ state: 'up-to-date', syncPausedUntil: null });
    });

    it('tells subscribers: the status first, then sync started and finished, then the new status', async () => {
      const api = await open(child, { pause: new SyncPause(100) });
      const events: ApiEvent[] = [];
      const stop = api.subscribe((e) => events.push(e));
      await until(
        () => events,
        (es) => es.length >= 1,
      );
      expect(events[0]).toMatchObject({ type: 'status', status: { name: 'centre' } });

      await execute(
        child.pool,
        "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-events')",
      );
      const summary = await api.syncNow();
      await until(
        () => events,
        (es) => es.some((e) => e.type === 'status' && e.status.lastSuccessAt !== null),
      );
      const types = events.map((e) => e.type);
      const started = types.indexOf('sync-started');
      const finished = types.indexOf('sync-finished');
      expect(started).toBeGreaterThan(0);
      expect(finished).toBeGreaterThan(started);
      expect(events[finished]).toMatchObject({ type: 'sync-finished', summary });
      expect(
        events.some((e) => e.type === 'status' && e.status.syncing && e.status.state === 'syncing'),
      ).toBe(true);
      const last = events.filter((e) => e.type === 'status').at(-1);
      expect(last).toMatchObject({
        status: { syncing: false, pendingOut: 0, state: 'up-to-date' },
      });

      await api.pauseSync({ hours: null });
      await until(
        () => events,
        (es) => es.some((e) => e.type === 'status' && e.status.syncPaused),
      );
      await api.resumeSync();
      await until(
        () => events,
        (es) =>
          es.at(-1)?.type === 'status' &&
          !(es.at(-1) as { status: { syncPaused: boolean } }).status.syncPaused,
      );
      // A timed pause ends by itself, and says so: each status event carries the pause as it was
      // when it changed, however late the database answers.
      const mark = events.length;
      await api.pauseSync({ hours: 2 });
      const pausedFlags = () =>
        events.slice(mark).flatMap((e) => (e.type === 'status' ? [e.status.syncPaused] : []));
      await until(pausedFlags, (f) => f.length >= 2);
      expect(pausedFlags()).toEqual([true, false]);
      stop();
      const seen = events.length;
      await api.pauseSync({ hours: null });
      await new Promise((r) => setTimeout(r, 100));
      expect(events).toHaveLength(seen);
      for (const e of events) expect(JSON.parse(JSON.stringify(e))).toEqual(e);
    });

    it('reports a failed sync as an event and the state offline', async () => {
      const api = await open(child, { link: deadLink });
      const events: ApiEvent[] = [];
      const stop = api.subscribe((e) => events.push(e));
      await until(
        () => events,
        (es) => es.length >= 1,
      );
      const e = await expectKind(api.syncNow(), 'unreachable');
      expect(e.message).toMatch(/did not answer/);
      await until(
        () => events,
        (es) => es.some((x) => x.type === 'sync-failed'),
      );
      expect(events.find((x) => x.type === 'sync-failed')).toMatchObject({
        error: { kind: 'unreachable', message: e.message },
      });
      expect(await api.getStatus()).toMatchObject({
        state: 'offline',
        lastErrorKind: 'unreachable',
        lastError: e.message,
      });
      expect((await api.listHistory({}))[0]).toMatchObject({ ok: false, error: e.message });
      stop();
    });

    it('clones through the runner, with progress as events and on request', async () => {
      const runner = fakeRunner();
      const api = await open(child, { cloneRunner: runner });
      expect(await api.cloneProgress()).toBeNull();
      const events: ApiEvent[] = [];
      const stop = api.subscribe((e) => events.push(e));
      await until(
        () => events,
        (es) => es.length >= 1,
      );
      const req: CloneRequest = {
        parentUrl: 'http://district.example.org:8750',
        code: 'ABCD-EFGH-JKMN-PQRS-TVWX',
        dbUrl: 'mysql://openmrs@127.0.0.1:3306/clinic',
        name: 'Rwinkwavu',
      };
      const first = await api.startClone(req);
      expect(first).toMatchObject({ phase: 'starting', tablesDone: 0, error: null });
      await expectKind(api.startClone(req), 'state');
      const done = await until(
        () => api.cloneProgress(),
        (p) => p?.phase === 'done',
      );
      expect(done).toMatchObject({ tablesDone: 3, tablesTotal: 3, rowsDone: 30, error: null });
      expect(runner.requests).toEqual([req]);
      await until(
        () => events,
        (es) => es.some((e) => e.type === 'clone-progress' && e.progress.phase === 'done'),
      );
      const phases = events.flatMap((e) => (e.type === 'clone-progress' ? [e.progress.phase] : []));
      expect(phases).toEqual(['starting', 'schema', 'rows', 'rows', 'done']);
      stop();

      await expectKind(api.startClone({ ...req, parentUrl: 'ftp://x' }), 'usage');
      await expectKind(api.startClone({ ...req, dbUrl: 'postgres://x/y' }), 'usage');
      await expectKind(api.startClone({ ...req, name: '' }), 'usage');
    });

    it("keeps the setup wizard's progress in the home, never with a password", async () => {
      const api = await open(child);
      expect(await api.getSetupState()).toEqual({
        node: { name: 'centre', role: 'child' },
        progress: null,
        clone: null,
      });
      const progress = {
        step: 'schedule',
        role: 'child' as const,
        dbUrl: 'mysql://openmrs@127.0.0.1:3306/clinic',
        name: 'centre',
        parentUrl: 'http://district.example.org:8750',
      };
      expect((await api.saveSetupProgress(progress)).progress).toEqual(progress);
      expect((await api.getSetupState()).progress).toEqual(progress);
      const withPassword = { ...progress, dbUrl: 'mysql://openmrs:secret@127.0.0.1/clinic' };
      const refused = await expectKind(api.saveSetupProgress(withPassword), 'usage');
      expect(refused.message).toMatch(/without the database password/);
      await expectKind(api.saveSetupProgress({ ...progress, step: '../x' }), 'usage');
      expect(
        fs.readFileSync(path.join(child.home.dir, 'setup-progress.json'), 'utf8'),
      ).not.toContain('secret');
      expect((await api.saveSetupProgress(null)).progress).toBeNull();
      expect((await api.getSetupState()).progress).toBeNull();
    });

    it('tests a database: what it holds, the privileges, a missing one created, a refusal', async () => {
      const api = await open(child);
      const here = await api.testDatabase({ dbUrl: urlOf(root) });
      expect(here).toMatchObject({
        connected: true,
        error: null,
        exists: true,
        created: false,
        openmrs: true,
        clinicSync: true,
        privileges: { ok: true, missing: [], sentence: null },
      });
      expect(here.tables).toBeGreaterThan(9);
      expect(here.server).toMatch(/\d+\.\d+/);

      const fresh = `cs_test_new_${Date.now().toString(36)}`;
      const missingUrl = urlOf(root).replace(/\/[^/]+$/, `/${fresh}`);
      try {
        expect(await api.testDatabase({ dbUrl: missingUrl })).toMatchObject({
          connected: true,
          exists: false,
          tables: 0,
        });
        expect(await api.testDatabase({ dbUrl: missingUrl, create: true })).toMatchObject({
          connected: true,
          exists: true,
          created: true,
          tables: 0,
          openmrs: false,
          clinicSync: false,
        });
      } finally {
        await execute(root.pool, `DROP DATABASE IF EXISTS \`${fresh}\``);
      }

      const nobody = await api.testDatabase({
        dbUrl: urlOf(root).replace(/^mysql:\/\/[^@]+@/, 'mysql://nobody_here:wrong@'),
      });
      expect(nobody).toMatchObject({ connected: false, privileges: null });
      expect(nobody.error?.kind).toBe('database');
      expect(nobody.error?.message).toMatch(/refused user "nobody_here"/);
      await expectKind(api.testDatabase({ dbUrl: 'postgres://x/y' }), 'usage');
    });

    it('finds OpenMRS through its runtime properties', async () => {
      const api = await open(child);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-omrs-'));
      const file = path.join(dir, 'openmrs-runtime.properties');
      fs.writeFileSync(
        file,
        'connection.url=jdbc\\:mysql\\://127.0.0.1\\:3306/openmrs?autoReconnect\\=true\nconnection.username=openmrs_user\nconnection.password=p\\=ss\n',
      );
      const before = process.env.OPENMRS_RUNTIME_PROPERTIES_FILE;
      process.env.OPENMRS_RUNTIME_PROPERTIES_FILE = file;
      try {
        expect(await api.detectOpenmrs()).toEqual({
          file,
          dbUrl: 'mysql://openmrs_user@127.0.0.1:3306/openmrs',
          password: 'p=ss',
          // The file was named, not found in an application data folder, and names none.
          appDataDir: null,
        });
      } finally {
        if (before === undefined) delete process.env.OPENMRS_RUNTIME_PROPERTIES_FILE;
        else process.env.OPENMRS_RUNTIME_PROPERTIES_FILE = before;
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('asks who answers at a main server address; refuses a second main server on a node', async () => {
      const api = await open(child);
      const server = await startSyncServer({ node: root, host: '127.0.0.1', port: 0 });
      try {
        expect(await api.checkParent({ parentUrl: server.url })).toEqual({
          name: 'district',
          nodeId: root.nodeId,
          fingerprint: null,
        });
      } finally {
        await server.close();
      }
      // Over HTTPS, the certificate's fingerprint as the main server shows it, to compare.
      const parentApi = await open(root);
      expect((await parentApi.createPairingCode({ ttlMinutes: 5 })).fingerprint).toBeNull();
      const certificate = await ensureCertificate(root.home, 'district');
      expect((await parentApi.createPairingCode({ ttlMinutes: 5 })).fingerprint).toBe(
        certificate.fingerprint,
      );
      const secure = await startSyncServer({
        node: root,
        host: '127.0.0.1',
        port: 0,
        tls: { cert: certificate.cert, key: certificate.key },
      });
      try {
        expect(secure.url).toMatch(/^https:/);
        expect(await api.checkParent({ parentUrl: secure.url })).toEqual({
          name: 'district',
          nodeId: root.nodeId,
          fingerprint: certificate.fingerprint,
        });
      } finally {
        await secure.close();
      }
      await expectKind(api.checkParent({ parentUrl: 'http://127.0.0.1:1' }), 'unreachable');
      await expectKind(api.checkParent({ parentUrl: 'district' }), 'usage');
      const e = await expectKind(api.initRoot({ dbUrl: urlOf(root), name: 'x' }), 'state');
      expect(e.message).toMatch(/already holds the node "centre"/);
    });

    it('reports a failed clone with its reason, and refuses a clone with no runner', async () => {
      const api = await open(child, { cloneRunner: fakeRunner({ fail: true }) });
      await api.startClone({
        parentUrl: 'http://district:8750',
        code: 'X',
        dbUrl: 'mysql://u@127.0.0.1/clinic',
        name: 'c',
      });
      const failed = await until(
        () => api.cloneProgress(),
        (p) => p?.phase === 'failed',
      );
      expect(failed?.error).toEqual({
        kind: 'unreachable',
        message: 'The parent stopped answering.',
      });

      const bare = await open(root);
      await expectKind(
        bare.startClone({ parentUrl: 'http://p:1', code: 'X', dbUrl: 'mysql://u@h/d', name: 'c' }),
        'state',
      );
    });

    it('saves to a USB key and loads from it: drives, the files on a key, both directions', async () => {
      await shareSecret(root, child);
      const media = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-media-'));
      fs.mkdirSync(path.join(media, 'CLINIC KEY'));
      const was = process.env[REMOVABLE_ROOTS_ENV];
      process.env[REMOVABLE_ROOTS_ENV] = media;
      try {
        const api = await open(child);
        const parent = await open(root);
        const drives = await api.listDrives();
        expect(drives).toEqual([
          {
            path: path.join(media, 'CLINIC KEY'),
            label: 'CLINIC KEY',
            freeBytes: expect.any(Number) as number,
            sizeBytes: expect.any(Number) as number,
            writable: true,
          },
        ]);
        const key = drives[0]!.path;
        await execute(
          child.pool,
          "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-01-01', 'p-usb')",
        );
        const saved = await api.exportTransfer({ dir: key });
        expect(saved).toMatchObject({ to: 'district', sent: 1, complete: true });
        expect(path.dirname(saved.file)).toBe(key);

        const onKey = await parent.findTransferFiles({ dir: key });
        expect(onKey).toEqual([
          {
            path: saved.file,
            name: path.basename(saved.file),
            bytes: saved.bytes,
            from: { nodeId: child.nodeId, name: 'centre' },
            to: { nodeId: root.nodeId, name: 'district' },
            createdAt: expect.any(String) as string,
            use: 'load',
          },
        ]);
        const loaded = await parent.importTransfer({ file: saved.file });
        expect(loaded).toMatchObject({
          from: 'centre',
          received: 1,
          alreadyThere: 0,
          parked: 0,
          replyComplete: true,
        });
        const [row] = await queryRows(root.pool, "SELECT gender FROM person WHERE uuid = 'p-usb'");
        expect(row).toEqual({ gender: 'F' });

        const reply = (await api.findTransferFiles({ dir: key })).filter((f) => f.use === 'load');
        expect(reply.map((f) => f.path)).toEqual([loaded.replyFile]);
        expect(await api.importTransfer({ file: reply[0]!.path, replyDir: null })).toMatchObject({
          from: 'district',
          received: 0,
          sent: 0,
          replyFile: null,
        });
        expect(await api.getStatus()).toMatchObject({ pendingOut: 0, lastError: null });
        for (const e of [saved, loaded]) expect(JSON.parse(JSON.stringify(e))).toEqual(e);

        const own = await expectKind(api.importTransfer({ file: saved.file }), 'usage');
        expect(own.message).toMatch(/^This file was written here, on centre, for district/);
        await expectKind(api.exportTransfer({ dir: 'relative/folder' }), 'usage');
        await expectKind(api.importTransfer({ file: saved.file, extra: 1 } as never), 'usage');
        await expectKind(api.findTransferFiles({ dir: path.join(media, 'gone') }), 'usage');
        const top = await expectKind(parent.exportTransfer({ dir: key }), 'state');
        expect(top.message).toMatch(/top of its tree/);
      } finally {
        if (was === undefined) delete process.env[REMOVABLE_ROOTS_ENV];
        else process.env[REMOVABLE_ROOTS_ENV] = was;
      }
    });
  });
}

/** A node's database address, as the setup operations take it (password included). */
function urlOf(node: SyncNode): string {
  const t = node.db;
  const pw = t.password ? `:${encodeURIComponent(t.password)}` : '';
  return `mysql://${encodeURIComponent(t.user)}${pw}@${t.host}:${t.port}/${t.database}`;
}

async function until_(
  api: SyncApi,
  ok: (s: Awaited<ReturnType<SyncApi['getStatus']>>) => boolean,
): Promise<void> {
  await until(() => api.getStatus(), ok);
}

// ---------------------------------------------------------------------------------------------

syncApiContract('in-process engine', async (opts) => {
  const detach = new AbortController();
  return {
    api: createLocalApi({ ...opts, signal: detach.signal }),
    close: async () => detach.abort(),
  };
});

syncApiContract('admin HTTP client', async (opts) => {
  const home = opts.service.node.home;
  const host = await startAdminApi({ ...opts, home, host: '127.0.0.1', port: 0 });
  expect(host.pageUrl).toBe(`${host.url}/?token=${adminToken(home)}`);
  return {
    api: createHttpApi({ baseUrl: host.url, token: adminToken(home) }),
    close: () => host.close(),
  };
});

// The desktop window's path: page → contextBridge → preload → IPC → main's handlers → engine, with
// Electron stubbed at the shell's seam (IPC copies by structured clone, contextBridge keeps only
// an Error's message).
syncApiContract('desktop preload bridge', async (opts) => {
  const detach = new AbortController();
  const ipc = new StubIpc();
  registerApiHandlers({
    ipcMain: ipc.main,
    api: createLocalApi({ ...opts, signal: detach.signal }),
    trusted: (sender) => isTrustedSender(sender, OUR_PAGE.webContentsId),
  });
  const page = ipc.renderer(OUR_PAGE);
  const exposed = acrossContextBridge(forContextBridge(createBridgeApi(page.ipc)));
  const api = pageSyncApi({ [BRIDGE_KEY]: exposed });
  if (!api) throw new Error('the preload exposed no api');
  return {
    api,
    close: async () => {
      page.destroy();
      detach.abort();
    },
  };
});

describe('admin server over a real engine', () => {
  let tree: Tree;
  let root: SyncNode;
  beforeEach(async () => {
    tree = new Tree();
    const db = await createTestDb();
    await createClinicSchema(db.pool);
    root = await tree.root(db, 'district');
  });
  afterEach(() => tree.close());

  it('answers 401 to a request without the token or with another, and applies nothing', async () => {
    const api = createLocalApi({ service: new NodeService(root, null) });
    const token = adminToken(root.home);
    const server = await startAdminServer({ api, host: '127.0.0.1', port: 0, token });
    try {
      const none = await fetch(`${server.url}/api/pairing-codes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ttlMinutes: 10 }),
      });
      expect(none.status).toBe(401);
      expect(await none.json()).toMatchObject({ kind: 'unauthorized' });
      const wrong = createHttpApi({ baseUrl: server.url, token: `${token}x` });
      await expectKind(wrong.createPairingCode({ ttlMinutes: 10 }), 'unauthorized');
      await expectKind(wrong.getStatus(), 'unauthorized');
      expect(await queryRows(root.pool, 'SELECT * FROM clinicsync_pairing')).toEqual([]);
      const right = createHttpApi({ baseUrl: server.url, token });
      await right.createPairingCode({ ttlMinutes: 10 });
      expect(await queryRows(root.pool, 'SELECT * FROM clinicsync_pairing')).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('refuses to listen anywhere but loopback', async () => {
    const api = createLocalApi({ service: new NodeService(root, null) });
    for (const host of ['0.0.0.0', '::', '192.0.2.1']) {
      await expect(
        startAdminServer({ api, host, port: 0, token: adminToken(root.home) }),
      ).rejects.toThrow(/this computer only/);
    }
  });
});
