import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listConflicts } from '../../src/engine/apply/conflicts.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { describeConflicts } from '../../src/cli/commands/conflicts.js';
import { loadSampleDb } from '../helpers/db.js';
import {
  createPatient,
  createPerson,
  idOf,
  insert,
  OMRS,
  transaction,
} from '../helpers/openmrs.js';
import { parkedOn } from '../helpers/state.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 12, "Done when", fourth point (DESIGN §6): two clinics each create a user `nurse1` before
 * they hear of each other. OpenMRS requires usernames to be unique but its schema does not, so
 * nothing in the database stops the second one. Afterwards every node of the tree (the district
 * and both clinics) holds both users: the one made first keeps `nurse1`, the other has the same
 * new name everywhere, derived from its own uuid; each node lists the case as a conflict with what
 * a data manager can do; and what was made after the user (its role, a patient) is not held back.
 */

/** The name every node gives the user that lost the username: a suffix from its uuid. */
const renamed = (value: string, uuid: string) =>
  `${value}-${createHash('sha256').update(uuid).digest('hex').slice(0, 6)}`;

async function createUser(
  node: SyncNode,
  p: { given: string; username: string; systemId: string },
): Promise<string> {
  const person = await createPerson(node.pool, {
    given: p.given,
    family: 'Nurse',
    gender: 'F',
    at: '2026-03-02 08:00:00',
  });
  const uuid = randomUUID();
  await transaction(node.pool, async (c) => {
    const userId = await insert(c, 'users', {
      system_id: p.systemId,
      username: p.username,
      creator: await idOf(c, 'users', OMRS.admin),
      date_created: '2026-03-02 08:00:00',
      person_id: person.personId,
      uuid,
    });
    await insert(c, 'user_role', { user_id: userId, role: 'Authenticated' });
  });
  return uuid;
}

async function usernames(node: SyncNode, uuids: string[]): Promise<Record<string, string>> {
  const rows = await queryRows(
    node.pool,
    `SELECT uuid, username FROM users WHERE uuid IN (${uuids.map(() => '?').join(', ')})`,
    uuids,
  );
  return Object.fromEntries(rows.map((r) => [String(r.uuid), String(r.username)]));
}

/** Patient identifiers' values by their uuid. */
async function identifiers(node: SyncNode, uuids: string[]): Promise<Record<string, string>> {
  const rows = await queryRows(
    node.pool,
    `SELECT uuid, identifier FROM patient_identifier WHERE uuid IN (${uuids.map(() => '?').join(', ')})`,
    uuids,
  );
  return Object.fromEntries(rows.map((r) => [String(r.uuid), String(r.identifier)]));
}

describe('the same username made on two clinics', () => {
  let tree: Tree;
  let district: SyncNode;
  let butaro: SyncNode;
  let rwinkwavu: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    district = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    butaro = await tree.clone(district, 'butaro');
    rwinkwavu = await tree.clone(district, 'rwinkwavu');
  });
  afterEach(async () => tree.close());

  it('ends with both users on every node, the later one renamed the same way, listed as a conflict', async () => {
    const first = await createUser(butaro, {
      given: 'Alice',
      username: 'nurse1',
      systemId: '11-1',
    });
    await sleep(50);
    const second = await createUser(rwinkwavu, {
      given: 'Beatrice',
      username: 'nurse1',
      systemId: '12-8',
    });
    // Made after the clashing user, at the same clinic: must not wait behind it.
    const patient = await createPatient(rwinkwavu.pool, {
      given: 'Chantal',
      family: 'Uwase',
      gender: 'F',
      birthdate: '1990-05-01',
      identifier: '300-4',
      at: '2026-03-02 09:00:00',
      weightKg: '58',
      favoriteFood: 'beans',
    });

    // The later user reaches the district first, so the district renames a row it holds already
    // when the earlier one comes; each clinic meets the other's user in its own way round.
    await tree.sync(rwinkwavu, district);
    await tree.sync(butaro, district);
    await tree.sync(rwinkwavu, district);

    const expected = { [first]: 'nurse1', [second]: renamed('nurse1', second) };
    for (const node of [district, butaro, rwinkwavu]) {
      const where = (await node.status()).name;
      expect(await usernames(node, [first, second]), where).toEqual(expected);
      expect(await parkedOn(node), where).toEqual([]);
      const roles = await queryRows(
        node.pool,
        'SELECT u.uuid FROM user_role r JOIN users u ON u.user_id = r.user_id WHERE u.uuid IN (?, ?) ORDER BY u.uuid',
        [first, second],
      );
      expect(
        roles.map((r) => String(r.uuid)),
        where,
      ).toEqual([first, second].sort());
      const enc = await queryRows(node.pool, 'SELECT 1 FROM obs WHERE uuid = ?', [
        patient.obsWeight,
      ]);
      expect(enc, where).toHaveLength(1);

      const conflicts = (await listConflicts(node.pool)).filter((c) => c.table === 'users');
      expect(conflicts, where).toEqual([
        {
          table: 'users',
          identity: second,
          columns: ['username'],
          winner: { username: 'nurse1' },
          loser: { username: renamed('nurse1', second) },
          winnerOrigin: butaro.nodeId,
          loserOrigin: rwinkwavu.nodeId,
          at: expect.any(String) as string,
          explanation: `Two nodes gave the username "nurse1" to two different rows of users. The one made first (${first}) keeps it; the other (${second}) now has "${renamed('nurse1', second)}" on every node. Nothing was held back. A data manager can tell the person who uses the renamed account its new name; or, if both accounts are the same person, retire one of them in OpenMRS; or give it another name in OpenMRS, which reaches every node.`,
        },
      ]);
      const text = describeConflicts(conflicts, 1, new Map());
      expect(
        text.some((l) => l.startsWith('  why        Two nodes gave the username')),
        where,
      ).toBe(true);
    }

    // The renames were made by every node on its own: none of them travels as a new change.
    for (const child of [butaro, rwinkwavu]) {
      const round = await tree.exchange(child, district);
      expect({ sent: round.sent, received: round.received }).toEqual({ sent: 0, received: 0 });
    }
  });
});

/**
 * The same identifier given by two clinics below a hospital: the hospital settles it as they
 * arrive, one at a time, but passes both registrations on to the district in one batch, where
 * they are new rows that would go in together. They must be settled there the same way.
 */
describe('one patient identifier given twice, reaching the district in one batch', () => {
  let tree: Tree;
  let district: SyncNode;
  let hospital: SyncNode;
  let butaro: SyncNode;
  let rwinkwavu: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    district = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    hospital = await tree.clone(district, 'hospital');
    butaro = await tree.clone(hospital, 'butaro');
    rwinkwavu = await tree.clone(hospital, 'rwinkwavu');
  });
  afterEach(async () => tree.close());

  it('keeps the first one and renames the other the same way on every node', async () => {
    const spec = {
      family: 'Uwase',
      gender: 'F' as const,
      birthdate: '1990-05-01',
      identifier: '500-7',
    };
    const first = await createPatient(butaro.pool, {
      ...spec,
      given: 'Chantal',
      at: '2026-03-02 09:00:00',
      weightKg: '58',
      favoriteFood: 'beans',
    });
    await sleep(50);
    const second = await createPatient(rwinkwavu.pool, {
      ...spec,
      given: 'Diane',
      at: '2026-03-02 09:05:00',
      weightKg: '61',
      favoriteFood: 'rice',
    });
    await tree.sync(butaro, hospital);
    await tree.sync(rwinkwavu, hospital);
    const round = await tree.exchange(hospital, district);
    // both registrations travelled in the one batch
    expect(round.up.applied).toBeGreaterThanOrEqual(2 * 8);
    await tree.sync(hospital, district);
    for (const clinic of [butaro, rwinkwavu]) await tree.sync(clinic, hospital);

    const expected = {
      [first.identifier]: '500-7',
      [second.identifier]: renamed('500-7', second.identifier),
    };
    for (const node of [district, hospital, butaro, rwinkwavu]) {
      const where = (await node.status()).name;
      expect(await identifiers(node, [first.identifier, second.identifier]), where).toEqual(
        expected,
      );
      expect(await parkedOn(node), where).toEqual([]);
      const conflicts = (await listConflicts(node.pool)).filter(
        (c) => c.table === 'patient_identifier',
      );
      expect(
        conflicts.map((c) => ({ identity: c.identity, loser: c.loser })),
        where,
      ).toEqual([
        { identity: second.identifier, loser: { identifier: expected[second.identifier] } },
      ]);
    }
  });
});

/*
 * OpenMRS's own keys hold only among live rows: a voided identifier holds no value. An edit to a
 * voided identifier is no collision, on the node that made it or on any other.
 */
describe('an edit to a voided identifier', () => {
  let tree: Tree;
  let district: SyncNode;
  let butaro: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    district = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
    butaro = await tree.clone(district, 'butaro');
  });
  afterEach(async () => tree.close());

  it('takes a value a live identifier holds without renaming either', async () => {
    const spec = { family: 'Mukamana', gender: 'F' as const, birthdate: '1988-02-01' };
    const live = await createPatient(district.pool, {
      ...spec,
      given: 'Alice',
      identifier: '600-1',
      at: '2026-03-02 09:00:00',
      weightKg: '60',
      favoriteFood: 'beans',
    });
    const voided = await createPatient(district.pool, {
      ...spec,
      given: 'Aline',
      identifier: '600-2',
      at: '2026-03-02 09:10:00',
      weightKg: '62',
      favoriteFood: 'rice',
    });
    await execute(district.pool, 'UPDATE patient_identifier SET voided = 1 WHERE uuid = ?', [
      voided.identifier,
    ]);
    await tree.sync(butaro, district);
    // On the clinic, the voided identifier is corrected to the live one's value.
    await execute(
      butaro.pool,
      "UPDATE patient_identifier SET identifier = '600-1' WHERE uuid = ?",
      [voided.identifier],
    );
    await tree.sync(butaro, district);

    for (const node of [district, butaro]) {
      const where = (await node.status()).name;
      expect(await identifiers(node, [live.identifier, voided.identifier]), where).toEqual({
        [live.identifier]: '600-1',
        [voided.identifier]: '600-1',
      });
      const conflicts = await listConflicts(node.pool);
      expect(
        conflicts.filter((c) => c.table === 'patient_identifier'),
        where,
      ).toEqual([]);
    }
  });
});

describe('two nodes handing out patient identifiers from the same counter', () => {
  let tree: Tree;
  let district: SyncNode;
  let butaro: SyncNode;

  beforeEach(async () => {
    tree = new Tree();
    const db = await loadSampleDb('openmrs-testdata');
    // The district's identifier generator, as the idgen module keeps it: a source and its counter.
    await transaction(db.pool, async (c) => {
      const source = await insert(c, 'idgen_identifier_source', {
        uuid: randomUUID(),
        name: 'Generator for OpenMRS ID',
        identifier_type: await idOf(c, 'patient_identifier_type', OMRS.idType),
        creator: await idOf(c, 'users', OMRS.admin),
        date_created: '2026-01-05 10:00:00',
      });
      await insert(c, 'idgen_seq_id_gen', {
        id: source,
        next_sequence_value: 1,
        base_character_set: '0123456789',
        first_identifier_base: '1',
        prefix: 'DH',
        min_length: 4,
      });
    });
    // The OpenMRS preset: each server keeps its own counter.
    district = await tree.root(db, 'district', { preset: 'openmrs' });
    butaro = await tree.clone(district, 'butaro');
  });
  afterEach(async () => tree.close());

  it('warns on both nodes after a clone, and stops once the clinic has its own prefix', async () => {
    const warning = (await butaro.status()).identifierWarning;
    await tree.sync(butaro, district);
    // the clinic knew from the copy itself, before any exchange
    expect((await butaro.status()).identifierWarning).toBe(warning);
    expect((await butaro.status()).identifierWarning).toBe(
      'This clinic and the main server (district) both hand out OpenMRS Identification Number identifiers with the prefix "DH" from their own counters ("Generator for OpenMRS ID"), so they will give the same identifier to different patients. In OpenMRS, give one of them its own prefix or identifier source before registering more patients.',
    );
    expect((await district.status()).identifierWarning).toBe(
      'This server and butaro both hand out OpenMRS Identification Number identifiers with the prefix "DH" from their own counters ("Generator for OpenMRS ID"), so they will give the same identifier to different patients. In OpenMRS, give one of them its own prefix or identifier source before registering more patients.',
    );

    await execute(butaro.pool, "UPDATE idgen_seq_id_gen SET prefix = 'BT'");
    await tree.sync(butaro, district);
    expect((await butaro.status()).identifierWarning).toBeNull();
    expect((await district.status()).identifierWarning).toBeNull();
    // Each kept its own counter.
    const [d] = await queryRows(district.pool, 'SELECT prefix FROM idgen_seq_id_gen');
    expect(d).toEqual({ prefix: 'DH' });

    // The district stops handing out identifiers from a counter: what it said before is forgotten,
    // even where the clinic's counter has the old prefix again.
    await execute(district.pool, 'DELETE FROM idgen_seq_id_gen');
    await execute(butaro.pool, "UPDATE idgen_seq_id_gen SET prefix = 'DH'");
    await tree.sync(butaro, district);
    expect((await butaro.status()).identifierWarning).toBeNull();
  });
});
