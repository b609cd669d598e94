import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSampleDb, type TestDb } from '../helpers/db.js';
import { execute, queryRows } from '../../src/engine/db/pool.js';
import {
  introspect,
  referencingKeys,
  type Schema,
  type Table,
} from '../../src/engine/db/schema.js';
import { q } from '../../src/engine/db/ident.js';

function table(s: Schema, name: string): Table {
  const t = s.tables.get(name);
  if (!t) throw new Error(`no table ${name}`);
  return t;
}

const fkTo = (t: Table, refTable: string) => t.foreignKeys.filter((f) => f.refTable === refTable);

describe('introspection of the OpenMRS Reference Application database', () => {
  let db: TestDb;
  let s: Schema;

  beforeAll(async () => {
    db = await loadSampleDb('openmrs');
    s = await introspect(db.pool, db.name);
  });
  afterAll(async () => db?.drop());

  it('sees all 153 base tables and nothing else', () => {
    expect(s.tables.size).toBe(153);
    expect(s.views).toEqual([]);
    expect(s.triggers).toEqual([]);
    expect(s.routines).toEqual([]);
  });

  it('reads composite, varchar and missing primary keys', () => {
    expect(table(s, 'user_role').primaryKey).toEqual(['role', 'user_id']);
    expect(table(s, 'role_privilege').primaryKey).toEqual(['privilege', 'role']);
    const gp = table(s, 'global_property');
    expect(gp.primaryKey).toEqual(['property']);
    expect(gp.columns.find((c) => c.name === 'property')?.columnType).toBe('varchar(255)');
    expect(gp.uniqueKeys).toEqual([{ name: 'global_property_uuid_index', columns: ['uuid'] }]);
    expect(table(s, 'concept_name_tag_map').primaryKey).toEqual([]);

    const composite = [...s.tables.values()].filter((t) => t.primaryKey.length > 1);
    expect(composite.map((t) => t.name).sort()).toEqual([
      'appointmentscheduling_block_type_map',
      'cohort_member',
      'drug_ingredient',
      'field_answer',
      'liquibasechangelog',
      'location_tag_map',
      'notification_alert_recipient',
      'order_type_class_map',
      'role_privilege',
      'role_role',
      'user_property',
      'user_role',
    ]);
    const none = [...s.tables.values()].filter((t) => t.primaryKey.length === 0);
    expect(none.map((t) => t.name).sort()).toEqual([
      'concept_name_tag_map',
      'concept_proposal_tag_map',
      'logic_rule_token_tag',
      'logic_token_registration_tag',
      'providermanagement_provider_role_provider_attribute_type',
      'providermanagement_provider_role_relationship_type',
      'providermanagement_provider_role_supervisee_provider_role',
    ]);
  });

  it('sees a primary key that is also a foreign key (patient → person)', () => {
    const patient = table(s, 'patient');
    expect(patient.primaryKey).toEqual(['patient_id']);
    expect(patient.columns.some((c) => c.name === 'uuid')).toBe(false);
    expect(fkTo(patient, 'person')).toEqual([
      {
        name: 'person_id_for_patient',
        columns: ['patient_id'],
        refTable: 'person',
        refColumns: ['person_id'],
        onDelete: 'RESTRICT',
        onUpdate: 'CASCADE',
      },
    ]);
    expect(patient.columns.find((c) => c.name === 'patient_id')?.autoIncrement).toBe(false);
  });

  it('sees the users ↔ person cycle and self-references', () => {
    const users = table(s, 'users');
    const person = table(s, 'person');
    expect(fkTo(users, 'person').map((f) => f.columns)).toEqual([['person_id']]);
    expect(fkTo(person, 'users').map((f) => f.columns[0])).toContain('creator');
    // users.creator → users: a table that references itself.
    expect(
      fkTo(users, 'users')
        .map((f) => f.columns[0])
        .sort(),
    ).toEqual(['changed_by', 'creator', 'retired_by']);
    expect(fkTo(table(s, 'location'), 'location').map((f) => f.columns)).toEqual([
      ['parent_location'],
    ]);
  });

  it('counts 448 foreign keys, 238 of them pointing at users', async () => {
    const all = [...s.tables.values()].flatMap((t) => t.foreignKeys);
    // The README's figure, and the server's own count agree: every OpenMRS foreign key has a
    // single column, so constraints and key columns number the same.
    expect(all.length).toBe(448);
    const [rc] = await queryRows(
      db.pool,
      'SELECT COUNT(*) AS n FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?',
      [db.name],
    );
    expect(Number(rc?.n)).toBe(448);
    expect(all.every((f) => f.columns.length === 1 && f.refColumns.length === 1)).toBe(true);
    expect(referencingKeys(s, 'users')).toHaveLength(238);
    // Cascade rules as the server reports them: one ON DELETE CASCADE, ten ON UPDATE CASCADE
    // beside it, the rest RESTRICT (MariaDB reports an unspecified rule as RESTRICT).
    const rules = new Map<string, number>();
    for (const f of all) {
      const k = `${f.onDelete}/${f.onUpdate}`;
      rules.set(k, (rules.get(k) ?? 0) + 1);
    }
    expect(Object.fromEntries(rules)).toEqual({
      'RESTRICT/RESTRICT': 437,
      'RESTRICT/CASCADE': 10,
      'CASCADE/CASCADE': 1,
    });
  });

  it('sees which uuid columns are uniquely indexed (users is not)', () => {
    const withUuid = [...s.tables.values()].filter((t) => t.columns.some((c) => c.name === 'uuid'));
    const uniqueUuid = withUuid.filter((t) =>
      t.uniqueKeys.some((k) => k.columns.length === 1 && k.columns[0] === 'uuid'),
    );
    expect(withUuid).toHaveLength(120);
    expect(uniqueUuid).toHaveLength(99);
    expect(uniqueUuid.map((t) => t.name)).not.toContain('users');
    expect(withUuid.map((t) => t.name)).toContain('users');
  });

  it('reads column details: auto-increment, nullability, utf8mb3', () => {
    const person = table(s, 'person');
    const id = person.columns.find((c) => c.name === 'person_id')!;
    expect(id).toMatchObject({ dataType: 'int', autoIncrement: true, nullable: false });
    const uuid = person.columns.find((c) => c.name === 'uuid')!;
    expect(uuid).toMatchObject({ columnType: 'char(38)', charset: 'utf8mb3', binary: false });
    expect(person.engine).toBe('InnoDB');
    expect(person.autoIncrement).toBeGreaterThan(1);
  });
});

describe('table fingerprints', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await loadSampleDb('openmrs');
  });
  afterAll(async () => db?.drop());

  const location = async () => table(await introspect(db.pool, db.name), 'location');

  it('ignore column moves and change on added, retyped, renamed and dropped columns', async () => {
    const original = await location();
    const others = await introspect(db.pool, db.name);
    const a15 = original.columns.find((c) => c.name === 'address15')!;
    expect(original.columns.at(-1)?.name).toBe('address15');

    await execute(
      db.pool,
      'ALTER TABLE location MODIFY address15 varchar(255) DEFAULT NULL AFTER name',
    );
    const moved = await location();
    expect(moved.columns.map((c) => c.name).indexOf('address15')).toBe(2);
    expect(moved.columns.find((c) => c.name === 'address15')).toEqual(a15);
    expect(moved.fingerprint).toBe(original.fingerprint);

    await execute(db.pool, 'ALTER TABLE location ADD COLUMN clinic_code varchar(20) NULL');
    const added = await location();
    expect(added.fingerprint).not.toBe(original.fingerprint);
    await execute(db.pool, 'ALTER TABLE location DROP COLUMN clinic_code');
    expect((await location()).fingerprint).toBe(original.fingerprint);

    await execute(db.pool, 'ALTER TABLE location MODIFY address15 varchar(300) DEFAULT NULL');
    const retyped = await location();
    expect(retyped.fingerprint).not.toBe(original.fingerprint);
    expect(retyped.fingerprint).not.toBe(added.fingerprint);

    await execute(
      db.pool,
      'ALTER TABLE location CHANGE address15 address_15 varchar(255) DEFAULT NULL',
    );
    const renamed = await location();
    expect(renamed.fingerprint).not.toBe(original.fingerprint);

    // No other table's fingerprint moved.
    const after = await introspect(db.pool, db.name);
    for (const [name, t] of others.tables) {
      if (name !== 'location') expect(after.tables.get(name)?.fingerprint).toBe(t.fingerprint);
    }
  });
});

describe('introspection of Sakila', () => {
  let db: TestDb;
  let s: Schema;
  beforeAll(async () => {
    db = await loadSampleDb('sakila');
    s = await introspect(db.pool, db.name);
  });
  afterAll(async () => db?.drop());

  it('reads enum, set, year and blob columns', () => {
    const film = table(s, 'film');
    const col = (t: Table, n: string) => t.columns.find((c) => c.name === n)!;
    expect(col(film, 'rating')).toMatchObject({ dataType: 'enum', binary: false });
    expect(col(film, 'rating').columnType).toBe("enum('G','PG','PG-13','R','NC-17')");
    expect(col(film, 'special_features')).toMatchObject({ dataType: 'set', nullable: true });
    expect(col(film, 'special_features').columnType).toMatch(/^set\('trailers',/i);
    expect(col(film, 'release_year').dataType).toBe('year');
    expect(col(table(s, 'staff'), 'picture')).toMatchObject({ dataType: 'blob', binary: true });
    expect(col(film, 'title').binary).toBe(false);
    // No uuid anywhere: identity must come from primary keys (DESIGN §4).
    expect([...s.tables.values()].some((t) => t.columns.some((c) => c.name === 'uuid'))).toBe(
      false,
    );
  });

  it('lists 16 tables, 7 views, 6 application triggers and 6 routines', () => {
    expect(s.tables.size).toBe(16);
    expect(s.views.map((v) => v.name)).toEqual([
      'actor_info',
      'customer_list',
      'film_list',
      'nicer_but_slower_film_list',
      'sales_by_film_category',
      'sales_by_store',
      'staff_list',
    ]);
    expect(s.triggers).toEqual([
      {
        name: 'customer_create_date',
        table: 'customer',
        timing: 'BEFORE',
        event: 'INSERT',
        writes: [],
      },
      { name: 'del_film', table: 'film', timing: 'AFTER', event: 'DELETE', writes: ['film_text'] },
      { name: 'ins_film', table: 'film', timing: 'AFTER', event: 'INSERT', writes: ['film_text'] },
      { name: 'payment_date', table: 'payment', timing: 'BEFORE', event: 'INSERT', writes: [] },
      { name: 'rental_date', table: 'rental', timing: 'BEFORE', event: 'INSERT', writes: [] },
      { name: 'upd_film', table: 'film', timing: 'AFTER', event: 'UPDATE', writes: ['film_text'] },
    ]);
    expect(s.routines).toEqual([
      { name: 'film_in_stock', type: 'PROCEDURE' },
      { name: 'film_not_in_stock', type: 'PROCEDURE' },
      { name: 'get_customer_balance', type: 'FUNCTION' },
      { name: 'inventory_held_by_customer', type: 'FUNCTION' },
      { name: 'inventory_in_stock', type: 'FUNCTION' },
      { name: 'rewards_report', type: 'PROCEDURE' },
    ]);
  });

  it('reports auto-increment counters as the next id after the loaded rows', async () => {
    expect(table(s, 'actor').autoIncrement).toBe(201);
    expect(table(s, 'film').autoIncrement).toBe(1001);
    expect(table(s, 'rental').autoIncrement).toBe(16050);
    // Tables without an auto-increment column have none.
    expect(table(s, 'film_actor').autoIncrement).toBeNull();
    expect(table(s, 'film_text').autoIncrement).toBeNull();
    let checked = 0;
    for (const t of s.tables.values()) {
      const ai = t.columns.find((c) => c.autoIncrement);
      if (!ai) {
        expect(t.autoIncrement, t.name).toBeNull();
        continue;
      }
      const [m] = await queryRows(db.pool, `SELECT MAX(${q(ai.name)}) AS m FROM ${q(t.name)}`);
      expect(t.autoIncrement, t.name).toBe(Number(m?.m) + 1);
      checked++;
    }
    expect(checked).toBe(13);
  });

  it('sees the staff ↔ store cycle', () => {
    expect(fkTo(table(s, 'staff'), 'store').map((f) => f.columns)).toEqual([['store_id']]);
    expect(fkTo(table(s, 'store'), 'staff').map((f) => f.columns)).toEqual([['manager_staff_id']]);
  });
});
