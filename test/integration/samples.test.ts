import { afterAll, describe, expect, it } from 'vitest';
import { loadSampleDb, type TestDb } from '../helpers/db.js';
import { introspect } from '../../src/engine/db/schema.js';

describe('sample loader', () => {
  const dbs: TestDb[] = [];
  afterAll(async () => Promise.all(dbs.map((d) => d.drop())));
  it('loads sakila under any database name', async () => {
    const db = await loadSampleDb('sakila');
    dbs.push(db);
    const s = await introspect(db.pool, db.name);
    expect(s.tables.size).toBe(16);
    expect(s.views.length).toBe(7);
    expect(s.triggers.length).toBe(6);
  });
});
