import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SyncNode } from '../../src/engine/node/node.js';
import { OPENMRS_PASSWORD_SECRET } from '../../src/engine/openmrs/password.js';
import { loadSampleDb } from '../helpers/db.js';
import { createPatient, type NewPatient } from '../helpers/openmrs.js';
import { OpenmrsStandIn, type RecordedCall } from '../helpers/openmrsStandIn.js';
import { Tree } from '../helpers/tree.js';

/*
 * Issue 12, "Done when", first point: a clinic's OpenMRS is told about what sync wrote under it.
 * Patients registered at the district flow to the clinic; the clinic's node asks its OpenMRS (a
 * real HTTP stand-in that records the calls) to evict them from its caches and index them for
 * search, in batches, and again after OpenMRS was away, while the sync itself went through.
 */
describe('refreshing the running OpenMRS after a sync', () => {
  let tree: Tree;
  let parent: SyncNode;
  let child: SyncNode;
  let openmrs: OpenmrsStandIn;

  beforeEach(async () => {
    openmrs = new OpenmrsStandIn();
    await openmrs.up();
    tree = new Tree();
    parent = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    child = await tree.clone(parent, 'clinic');
  });
  afterEach(async () => {
    await tree.close();
    await openmrs.down();
  });

  /** Reopens the clinic's node with its OpenMRS named in the settings, as `config set` does. */
  async function nameOpenmrs(refreshBatch = 50): Promise<void> {
    const settings = structuredClone(child.settings);
    settings.openmrs = { url: openmrs.url, user: 'admin', refreshBatch };
    settings.sync.retryDelaySeconds = 1;
    child.home.save(settings);
    child.home.writeSecret(OPENMRS_PASSWORD_SECRET, 'Admin123\n');
    const i = tree.nodes.indexOf(child);
    await child.close();
    child = await SyncNode.open({ db: child.db, settings, home: child.home, lock: 'try' });
    tree.nodes[i] = child;
  }

  let serial = 0;
  const register = (given: string): Promise<NewPatient> =>
    createPatient(parent.pool, {
      given,
      family: 'Mutua',
      gender: 'F',
      birthdate: '1990-01-01',
      identifier: `R-${++serial}`,
      at: '2026-03-02 09:15:00',
      weightKg: '60',
      favoriteFood: 'rice',
    });

  async function until(what: string, done: () => Promise<boolean> | boolean): Promise<void> {
    const end = Date.now() + 20_000;
    while (!(await done())) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const settled = async () => (await child.status()).openmrsRefresh?.pending === 0;
  const named = (calls: RecordedCall[], service: string, uuid: string) =>
    calls.filter((c) => c.service === service && c.uuid === uuid);

  it('evicts a synced patient from the caches and indexes its person, name and identifier', async () => {
    await nameOpenmrs();
    const p = await register('Amina');
    await tree.sync(child, parent);
    await until('OpenMRS has confirmed every refresh', settled);

    const calls = openmrs.calls;
    for (const [resource, subResource, uuid] of [
      ['person', null, p.person],
      ['patient', null, p.person],
      ['person', 'name', p.name],
      ['patient', 'identifier', p.identifier],
    ] as const) {
      expect(named(calls, 'cleardbcache', uuid)).toContainEqual(
        expect.objectContaining({ resource, subResource }),
      );
      expect(named(calls, 'searchindexupdate', uuid)).toContainEqual(
        expect.objectContaining({ resource, subResource }),
      );
    }
    // Visits, encounters and obs are evicted from the caches, and are no search matter.
    for (const [resource, uuid] of [
      ['visit', p.visit],
      ['encounter', p.encounter],
      ['obs', p.obsWeight],
    ] as const) {
      expect(named(calls, 'cleardbcache', uuid)).toEqual([expect.objectContaining({ resource })]);
      expect(named(calls, 'searchindexupdate', uuid)).toEqual([]);
    }
    // The cache first: OpenMRS indexes what it reads, which must not be the stale copy.
    const lastEviction = calls.map((c) => c.service).lastIndexOf('cleardbcache');
    const firstIndex = calls.map((c) => c.service).indexOf('searchindexupdate');
    expect(lastEviction).toBeLessThan(firstIndex);
    expect(new Set(calls.map((c) => c.credentials))).toEqual(new Set(['admin:Admin123']));
    // Nothing of the district's own registration is asked twice, nor anything the clinic made.
    expect(calls.filter((c) => c.uuid === null)).toEqual([]);
    expect((await child.status()).openmrsRefresh).toEqual({
      url: openmrs.url,
      pending: 0,
      problem: null,
    });
  });

  it('batches many patients: one eviction per type, an index update per searchable row', async () => {
    await nameOpenmrs(10);
    // OpenMRS is starting while the batches arrive, so all of them wait for one round.
    openmrs.failWith(503);
    const patients: NewPatient[] = [];
    for (let i = 0; i < 25; i++) patients.push(await register(`P${i}`));
    await tree.sync(child, parent);
    openmrs.failWith(null);
    await until('OpenMRS has confirmed every refresh', settled);

    const calls = openmrs.calls;
    // 25 persons exceed a batch of 10: the whole person type is evicted once instead.
    const personEvictions = calls.filter(
      (c) => c.service === 'cleardbcache' && c.resource === 'person' && c.subResource === null,
    );
    expect(personEvictions).toEqual([expect.objectContaining({ uuid: null })]);
    const indexed = calls.filter(
      (c) => c.service === 'searchindexupdate' && c.resource === 'person' && !c.subResource,
    );
    expect(new Set(indexed.map((c) => c.uuid))).toEqual(new Set(patients.map((p) => p.person)));
    expect(indexed).toHaveLength(25);
  });

  it('keeps what OpenMRS could not take, says so, and sends it once OpenMRS is back', async () => {
    await nameOpenmrs();
    const heard: string[] = [];
    child.openmrs!.onProblem((s) => heard.push(s));
    await openmrs.down();
    const p = await register('Baraka');
    await tree.sync(child, parent);
    // The sync went through: the patient is at the clinic, nothing more to exchange.
    expect(await tree.sync(child, parent)).toBe(1);
    const [row] = await child.pool.query('SELECT 1 FROM person WHERE uuid = ?', [p.person]);
    expect(row).toHaveLength(1);

    await until('the status names the problem', async () => {
      return (await child.status()).openmrsRefresh?.problem != null;
    });
    const down = (await child.status()).openmrsRefresh!;
    expect(down.problem).toMatch(
      /^OpenMRS at http:\/\/127\.0\.0\.1:\d+\/openmrs could not be refreshed \(no answer: nothing listens at that address \(is OpenMRS running\?\)\)/,
    );
    expect(down.problem).toContain(`${down.pending} refreshes of received patients`);
    expect(down.pending).toBeGreaterThanOrEqual(8);
    // The same sentence goes to the service's log.
    await until('the log heard it', async () => Promise.resolve(heard.length > 0));
    expect(heard.at(-1)).toMatch(
      /^OpenMRS at http:\/\/127\.0\.0\.1:\d+\/openmrs could not be refreshed/,
    );

    // OpenMRS answers, but is still starting: the refreshes keep waiting.
    await openmrs.up();
    openmrs.failWith(503);
    await until('OpenMRS was asked again', async () => {
      return /busy or starting \(answer 503\)/.test(
        (await child.status()).openmrsRefresh?.problem ?? '',
      );
    });
    expect(openmrs.calls).toEqual([]);

    openmrs.failWith(null);
    await until('the retry has emptied the queue', async () => {
      const s = (await child.status()).openmrsRefresh;
      return s?.pending === 0 && s.problem === null;
    });
    expect(named(openmrs.calls, 'searchindexupdate', p.name)).toHaveLength(1);
    expect(named(openmrs.calls, 'cleardbcache', p.person)).toHaveLength(2);
  });

  it('remembers what is still to refresh across a restart', async () => {
    await nameOpenmrs();
    await openmrs.down();
    const p = await register('Chausiku');
    await tree.sync(child, parent);
    await until('the refresh failed', async () => {
      return (await child.status()).openmrsRefresh?.problem != null;
    });
    const waiting = (await child.status()).openmrsRefresh!.pending;
    expect(waiting).toBeGreaterThan(0);

    // The clinic's computer restarts while OpenMRS comes back.
    const i = tree.nodes.indexOf(child);
    await child.close();
    await openmrs.up();
    child = await SyncNode.open({
      db: child.db,
      settings: child.settings,
      home: child.home,
      lock: 'try',
    });
    tree.nodes[i] = child;
    await until('the restarted engine has sent them', settled);
    expect(named(openmrs.calls, 'searchindexupdate', p.identifier)).toEqual([
      expect.objectContaining({ resource: 'patient', subResource: 'identifier' }),
    ]);
    expect(openmrs.calls.length).toBe(waiting);
  });

  it('asks nothing of an OpenMRS the settings do not name', async () => {
    await register('Dalia');
    await tree.sync(child, parent);
    expect((await child.status()).openmrsRefresh).toBeNull();
    const [rows] = await child.pool.query('SELECT COUNT(*) AS n FROM clinicsync_openmrs_refresh');
    expect(rows).toEqual([{ n: '0' }]);
    expect(openmrs.calls).toEqual([]);
  });
});
