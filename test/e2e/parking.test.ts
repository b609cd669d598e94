import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import { introspect } from '../../src/engine/db/schema.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import type { Envelope, WireChange } from '../../src/engine/protocol/types.js';
import { PROTOCOL_VERSION } from '../../src/engine/protocol/xml.js';
import { hlcFromMillis } from '../../src/engine/clock/hlc.js';
import { CREATED, parseClocks } from '../../src/engine/capture/rowState.js';
import { loadSampleDb } from '../helpers/db.js';
import { diffModel, ExpectedModel, NO_DIFF, readModel } from '../helpers/model.js';
import { OMRS, OPENMRS_MODEL } from '../helpers/openmrs.js';
import { count } from '../helpers/state.js';
import { overTheWire, Tree } from '../helpers/tree.js';

/**
 * Issue 3, "Done when", fourth point (DESIGN §4): a row arriving before the row it references is
 * parked, not failed; later changes to the same row queue behind it; both land when the reference
 * arrives; and the rows after it in the batch are not held up.
 *
 * In a tree a row's reference normally travels ahead of it, so the out-of-order arrival is built
 * by hand: envelopes from a child node that exists only as its envelopes (registered on the root
 * as a neighbour), with the root's own table fingerprints, passed through the real XML codec.
 */
/** A child that exists only as the envelopes it sends: its changes are written by the test. */
class FakeChild {
  readonly nodeId = randomBytes(8).toString('hex');
  readonly incarnation = randomBytes(4).toString('hex');
  private readonly base = hlcFromMillis(Date.now());
  private seq = 0;

  constructor(
    private readonly root: SyncNode,
    readonly name: string,
    private readonly fingerprints: Map<string, { fingerprint: string }>,
  ) {}

  static async register(root: SyncNode, name: string): Promise<FakeChild> {
    const schema = await introspect(root.pool, root.db.database);
    const child = new FakeChild(root, name, schema.tables);
    await root.addPeer({
      nodeId: child.nodeId,
      name,
      relation: 'child',
      incarnation: child.incarnation,
    });
    return child;
  }

  /** The next change of this node, with the next dense sequence number and a later clock. */
  change(c: Omit<WireChange, 'origin' | 'seq' | 'hlc'>): WireChange {
    this.seq++;
    return {
      origin: this.nodeId,
      seq: String(this.seq),
      hlc: String(this.base + BigInt(this.seq)),
      ...c,
    };
  }

  /** An envelope of these changes as it arrives at the root, through the real XML codec. */
  envelope(changes: WireChange[]): Envelope {
    return overTheWire({
      version: PROTOCOL_VERSION,
      from: { node: this.nodeId, incarnation: this.incarnation, name: this.name },
      to: this.root.nodeId,
      time: String(Date.now()),
      hlc: changes.at(-1)!.hlc,
      vv: { [this.nodeId]: changes.at(-1)!.seq },
      tables: [...new Set(changes.map((c) => c.table))].map((name) => ({
        name,
        fingerprint: this.fingerprints.get(name)!.fingerprint,
      })),
      changes,
      more: false,
    });
  }

  /** This node's changes parked on the root: "table: reason", oldest first. */
  async parked(): Promise<string[]> {
    const rows = await queryRows(
      this.root.pool,
      'SELECT tbl, reason FROM clinicsync_parked WHERE origin = ? ORDER BY pid',
      [this.nodeId],
    );
    return rows.map((r) => `${String(r.tbl)}: ${String(r.reason)}`);
  }

  async logged(): Promise<number> {
    return count(this.root, 'SELECT COUNT(*) FROM clinicsync_log WHERE origin = ?', [this.nodeId]);
  }
}

const at = '2026-03-08 12:00:00';
const personValues = (uuid: string, gender: string) => ({
  gender,
  birthdate_estimated: '0',
  dead: '0',
  deathdate_estimated: '0',
  creator: OMRS.admin,
  date_created: at,
  voided: '0',
  uuid,
});

/**
 * One root for the file (loading and initialising OpenMRS is the slow part); each test sends as
 * its own fake child, touches its own rows, and looks only at its own parked changes.
 */
describe('parking on the OpenMRS test dataset', () => {
  let tree: Tree;
  let root: SyncNode;

  beforeAll(async () => {
    tree = new Tree();
    root = await tree.root(await loadSampleDb('openmrs-testdata'), 'district');
  });
  afterAll(async () => tree.close());

  it('parks a row whose person has not arrived, queues its update, applies what follows, and lands both later', async () => {
    const expected = new ExpectedModel((await readModel(root.pool, OPENMRS_MODEL)).model);
    const far = await FakeChild.register(root, 'far-clinic');
    const late = randomUUID(); // person P: arrives last
    const other = randomUUID(); // person Q: unrelated, right behind the parked rows
    const name = randomUUID(); // P's name: arrives first

    // Envelope 1: P's name (P unknown here), an update of that name, then an unrelated person.
    const first = far.envelope([
      far.change({
        op: 'I',
        table: 'person_name',
        ident: name,
        values: {
          preferred: '1',
          person_id: late,
          given_name: 'Halima',
          family_name: 'Said',
          creator: OMRS.admin,
          date_created: at,
          voided: '0',
          uuid: name,
        },
      }),
      far.change({
        op: 'U',
        table: 'person_name',
        ident: name,
        values: { given_name: 'Halimah' },
      }),
      far.change({ op: 'I', table: 'person', ident: other, values: personValues(other, 'F') }),
    ]);
    const r1 = await root.answer(first);

    // The row after the parked ones was applied in the same batch.
    expect(await count(root, 'SELECT COUNT(*) FROM person WHERE uuid = ?', [other])).toBe(1);
    // The name waits for its person; its update queues behind it instead of being tried alone.
    expect(await count(root, 'SELECT COUNT(*) FROM person_name WHERE uuid = ?', [name])).toBe(0);
    const parked = await far.parked();
    expect(parked).toHaveLength(2);
    expect(parked[0]).toMatch(/^person_name: .*person.*not arrived/);
    expect(parked[1]).toMatch(/^person_name: .*earlier change to this row/);
    // Every change is in the log, and the acknowledgement covers the parked ones (DESIGN §5).
    expect(await far.logged()).toBe(3);
    expect(r1.reply.vv[far.nodeId]).toBe('3');
    expect(r1.result).toMatchObject({ received: 3, applied: 1 });
    // Visible in status: a count, and a sentence only once they have waited more than a day.
    expect(await root.status()).toMatchObject({ parked: 2, parkedWarning: null });
    await execute(root.pool, 'UPDATE clinicsync_parked SET since = since - INTERVAL 2 DAY');
    expect((await root.status()).parkedWarning).toMatch(
      /^2 received changes have waited more than a day \(the oldest since \d{4}-\d\d-\d\d \d\d:\d\d UTC\)\. The oldest: A row of person_name refers to a row of person that has not arrived yet/,
    );

    // Envelope 2: the person arrives; the parked name and then its update land on top of it.
    const r2 = await root.answer(
      far.envelope([
        far.change({ op: 'I', table: 'person', ident: late, values: personValues(late, 'F') }),
      ]),
    );
    expect(r2.result).toMatchObject({ received: 1, applied: 3 });
    expect(await far.parked()).toEqual([]);
    expect(await root.status()).toMatchObject({ parked: 0, parkedWarning: null });
    const [row] = await queryRows(
      root.pool,
      `SELECT pn.given_name, pn.family_name, p.uuid AS person
         FROM person_name pn JOIN person p ON p.person_id = pn.person_id WHERE pn.uuid = ?`,
      [name],
    );
    expect(row).toEqual({ given_name: 'Halimah', family_name: 'Said', person: late });
    expect(r2.reply.vv[far.nodeId]).toBe('4');

    // And against the model: the dataset plus exactly these three rows.
    expected
      .insert('person', late, { gender: 'F', creator: OMRS.admin, date_created: at, uuid: late })
      .insert('person', other, { gender: 'F', creator: OMRS.admin, date_created: at, uuid: other })
      .insert('person_name', name, {
        person_id: late,
        given_name: 'Halimah',
        family_name: 'Said',
        preferred: '1',
        uuid: name,
      });
    const now = await readModel(root.pool, OPENMRS_MODEL);
    expect(now.duplicates).toEqual([]);
    expect(diffModel(now.model, expected.model)).toEqual(NO_DIFF);
  });

  /**
   * A patient's identity is its person's (a key that is a foreign key): a patient and its
   * identifier arriving before the person wait, the unrelated row behind them does not, and all
   * land within the same batch once the person comes.
   */
  it('parks a patient that arrives before its person and lands it when the person follows in the batch', async () => {
    const expected = new ExpectedModel((await readModel(root.pool, OPENMRS_MODEL)).model);
    const far = await FakeChild.register(root, 'hill-clinic');
    const person = randomUUID();
    const identifier = randomUUID();
    const unrelated = randomUUID();
    const r = await root.answer(
      far.envelope([
        far.change({
          op: 'I',
          table: 'patient',
          ident: person,
          values: {
            creator: OMRS.admin,
            date_created: at,
            voided: '0',
            allergy_status: 'Unknown',
          },
        }),
        far.change({
          op: 'I',
          table: 'patient_identifier',
          ident: identifier,
          values: {
            patient_id: person,
            identifier: '400-7',
            identifier_type: OMRS.idType,
            preferred: '1',
            location_id: OMRS.xanadu,
            creator: OMRS.admin,
            date_created: at,
            voided: '0',
            uuid: identifier,
          },
        }),
        far.change({
          op: 'I',
          table: 'person',
          ident: unrelated,
          values: personValues(unrelated, 'M'),
        }),
        far.change({ op: 'I', table: 'person', ident: person, values: personValues(person, 'F') }),
      ]),
    );
    expect(r.result).toMatchObject({ received: 4, applied: 4 });
    expect(await far.parked()).toEqual([]);
    expected
      .insert('person', person, { gender: 'F', uuid: person })
      .insert('person', unrelated, { gender: 'M', uuid: unrelated })
      .insert('patient', person, { patient_id: person, allergy_status: 'Unknown' })
      .insert('patient_identifier', identifier, {
        patient_id: person,
        identifier: '400-7',
        identifier_type: OMRS.idType,
        location_id: OMRS.xanadu,
      });
    const now = await readModel(root.pool, OPENMRS_MODEL);
    expect(now.duplicates).toEqual([]);
    expect(diffModel(now.model, expected.model)).toEqual(NO_DIFF);
  });

  /** DESIGN §6: an update for an identity never seen here, with no tombstone, is never half a row. */
  it('parks an update for a row this node never saw instead of making half a row of it', async () => {
    const far = await FakeChild.register(root, 'lake-clinic');
    const stranger = randomUUID();
    const r = await root.answer(
      far.envelope([
        far.change({
          op: 'U',
          table: 'person',
          ident: stranger,
          values: { birthdate: '1999-09-09' },
        }),
      ]),
    );
    expect(r.result).toMatchObject({ received: 1, applied: 0 });
    expect(await count(root, 'SELECT COUNT(*) FROM person WHERE uuid = ?', [stranger])).toBe(0);
    expect(await far.parked()).toEqual([
      expect.stringMatching(/^person: .*update arrived for a row/),
    ]);
    // Acknowledged all the same: the root owns the parked change now.
    expect(r.reply.vv[far.nodeId]).toBe('1');
  });

  /**
   * Issue 11: new rows in a batch go in together, one multi-row INSERT per table. When the
   * database refuses that INSERT for one row, the others still land and only that row is parked,
   * with its own reason; a row of another table in the same run that refers to them lands too.
   */
  it('parks the one new row the database refuses and applies the rest of its group', async () => {
    const far = await FakeChild.register(root, 'river-clinic');
    const [taken] = await queryRows(root.pool, 'SELECT uuid FROM person WHERE person_id = 1');
    const first = randomUUID();
    const clash = randomUUID(); // its uuid column repeats a person already here
    const last = randomUUID();
    const name = randomUUID();
    const r = await root.answer(
      far.envelope([
        far.change({ op: 'I', table: 'person', ident: first, values: personValues(first, 'F') }),
        far.change({
          op: 'I',
          table: 'person',
          ident: clash,
          values: personValues(String(taken!.uuid), 'M'),
        }),
        far.change({ op: 'I', table: 'person', ident: last, values: personValues(last, 'F') }),
        far.change({
          op: 'I',
          table: 'person_name',
          ident: name,
          values: {
            preferred: '1',
            person_id: last,
            given_name: 'Amina',
            family_name: 'Juma',
            creator: OMRS.admin,
            date_created: at,
            voided: '0',
            uuid: name,
          },
        }),
      ]),
    );
    expect(r.result).toMatchObject({ received: 4, applied: 3 });
    expect(await far.parked()).toEqual([
      expect.stringMatching(/^person: Another row of person here already has the same value/),
    ]);
    const landed = await queryRows(
      root.pool,
      `SELECT p.uuid, pn.given_name FROM person p LEFT JOIN person_name pn ON pn.person_id = p.person_id
        WHERE p.uuid IN (?, ?, ?) ORDER BY p.person_id`,
      [first, clash, last],
    );
    expect(landed).toEqual([
      { uuid: first, given_name: null },
      { uuid: last, given_name: 'Amina' },
    ]);
    // Each row that landed is recorded with its identity and the clock of its insert.
    const states = await queryRows(
      root.pool,
      'SELECT ident, clocks FROM clinicsync_row WHERE ident IN (?, ?, ?, ?) ORDER BY ident',
      [first, clash, last, name],
    );
    expect(states).toHaveLength(3);
    for (const s of states)
      expect(parseClocks(String(s.clocks))[CREATED]).toMatch(new RegExp(`^\\d+:${far.nodeId}$`));
    expect(states.map((s) => String(s.ident)).sort()).toEqual([first, last, name].sort());
    expect(r.reply.vv[far.nodeId]).toBe('4');
  });
});
