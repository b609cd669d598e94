import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOT_PATH, snapshotRoute } from '../../src/engine/clone/snapshot.js';
import type { Home } from '../../src/engine/config/home.js';
import { execute, queryRows, type Pool } from '../../src/engine/db/pool.js';
import type { SyncNode } from '../../src/engine/node/node.js';
import { NodeService } from '../../src/engine/node/service.js';
import {
  bucketDigests,
  compareRows,
  digestOf,
  LocalRows,
  rowsIn,
  type LocalSide,
  type RowSource,
} from '../../src/engine/node/verify.js';
import type { ParentClient } from '../../src/engine/transport/client.js';
import { startSyncServer, type SyncServer } from '../../src/engine/transport/server.js';
import { parentRows, VERIFY_PATH, verifyRoute } from '../../src/engine/transport/verifyRoute.js';
import { createTestDb } from '../helpers/db.js';
import { createClinicSchema } from '../helpers/fixture.js';
import { cloneDatabase, pairChild } from '../helpers/http.js';
import { diffNodes, readModel, type ModelSpec } from '../helpers/model.js';
import { runCli, runMain, startServe } from '../helpers/cli.js';
import { Tree } from '../helpers/tree.js';

/**
 * Issue 5, item 6 and its last "Done when" point: `clinic-sync verify` compares a child's synced
 * rows with its parent's over real HTTP (a parent served in process with the verify and snapshot
 * routes, a child cloned from it and paired with a one-time code), by global identity with
 * foreign keys as identities. It finds a difference planted behind ClinicSync's back (triggers
 * bypassed) and names the table and the row; exit 0 when equal, 4 when not, 3 when the parent is
 * away, 1 on a root.
 */

/** A write the triggers do not see: the node has no record of it and will never send it. */
async function behindTheBack(pool: Pool, sql: string[]): Promise<void> {
  const conn = await pool.getConnection();
  try {
    await conn.query('SET @clinicsync_applying = 1');
    for (const s of sql) await conn.query(s);
  } finally {
    await conn.query('SET @clinicsync_applying = NULL');
    conn.release();
  }
}

async function logSize(node: SyncNode): Promise<number> {
  const [r] = await queryRows(node.pool, 'SELECT COUNT(*) AS n FROM clinicsync_log');
  return Number(r!.n);
}

const MODEL: ModelSpec = {
  tables: ['users', 'person', 'patient', 'role', 'user_role', 'encounter', 'obs'],
};

describe('clinic-sync verify over HTTP', () => {
  let tree: Tree;
  let parent: SyncNode;
  let child: SyncNode;
  let childHome: Home;
  let server: SyncServer;
  let client: ParentClient;

  beforeAll(async () => {
    tree = new Tree();
    const db = await createTestDb('cs_verify');
    await createClinicSchema(db.pool);
    parent = await tree.root(db, 'district');
    server = await startSyncServer({
      node: parent,
      host: '127.0.0.1',
      port: 0,
      extraRoutes: { [SNAPSHOT_PATH]: snapshotRoute(), [VERIFY_PATH]: verifyRoute() },
    });
    const made = await cloneDatabase(tree, parent, 'centre', server.url);
    child = made.node;
    childHome = made.home;
    client = await pairChild(child, parent, server.url);
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
    await tree.close();
  });

  const verify = (...args: string[]) => runMain(['--home', childHome.dir, 'verify', ...args]);

  it('finds nothing to report after a sync, whatever local ids each node gave its rows', async () => {
    // Both sides add people, patients, encounters and a role grant at once: their local ids
    // differ between the nodes, the rows (by identity, references as identities) do not.
    for (const [node, tag] of [
      [parent, 'd'],
      [child, 'c'],
    ] as const) {
      for (let i = 0; i < 3; i++) {
        await execute(
          node.pool,
          `INSERT INTO person (gender, creator, date_created, uuid) VALUES ('F', 1, '2026-04-0${i + 1}', 'p-${tag}${i}')`,
        );
        await execute(
          node.pool,
          `INSERT INTO patient (patient_id, creator) SELECT person_id, 1 FROM person WHERE uuid = 'p-${tag}${i}'`,
        );
        await execute(
          node.pool,
          `INSERT INTO encounter (patient_id, encounter_datetime, uuid) SELECT person_id, '2026-04-05 08:00:00', 'e-${tag}${i}' FROM person WHERE uuid = 'p-${tag}${i}'`,
        );
      }
      await execute(
        node.pool,
        `INSERT INTO users (username, person_id, creator, uuid) SELECT 'nurse-${tag}', person_id, 1, 'u-${tag}' FROM person WHERE uuid = 'p-${tag}0'`,
      );
      await execute(
        node.pool,
        `INSERT INTO user_role (user_id, role) SELECT user_id, 'Clerk' FROM users WHERE uuid = 'u-${tag}'`,
      );
    }
    await new NodeService(child, client).syncNow();
    const [a] = await queryRows(child.pool, "SELECT person_id FROM person WHERE uuid = 'p-d0'");
    const [b] = await queryRows(parent.pool, "SELECT person_id FROM person WHERE uuid = 'p-d0'");
    expect(a!.person_id, 'local ids differ between the nodes').not.toBe(b!.person_id);
    expect(
      diffNodes(
        (await readModel(parent.pool, MODEL)).model,
        (await readModel(child.pool, MODEL)).model,
      ),
    ).toEqual([]);

    const logBefore = await logSize(child);
    const json = await verify('--json');
    expect(json.err).toEqual([]);
    expect(json.code).toBe(0);
    expect(json.out).toHaveLength(1);
    expect(JSON.parse(json.out[0]!)).toEqual({ match: true, tables: [] });

    const text = await verify();
    expect(text.code).toBe(0);
    expect(text.out).toHaveLength(1);
    // users, person, patient, role, user_role, global_property, encounter, obs, tag_map
    const [rowsHere] = await queryRows(
      child.pool,
      `SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM person) + (SELECT COUNT(*) FROM patient)
            + (SELECT COUNT(*) FROM role) + (SELECT COUNT(*) FROM user_role) + (SELECT COUNT(*) FROM global_property)
            + (SELECT COUNT(*) FROM encounter) + (SELECT COUNT(*) FROM obs) + (SELECT COUNT(DISTINCT obs_id, tag) FROM tag_map) AS n`,
    );
    expect(text.out[0]).toBe(
      `Every synced table matches the parent (9 tables, ${Number(rowsHere!.n)} rows).`,
    );
    // Verify reads only: nothing entered the log, on either side.
    expect(await logSize(child)).toBe(logBefore);
  });

  it('names the table and the rows of a difference planted behind ClinicSync’s back, exit 4', async () => {
    await behindTheBack(child.pool, [
      "UPDATE person SET gender = 'X' WHERE uuid = 'p-c1'",
      "INSERT INTO person (gender, creator, date_created, uuid) VALUES ('M', 1, '2026-04-09', 'p-ghost')",
      // a reference changed: the same local id means another row on each node
      `UPDATE encounter SET patient_id = (SELECT person_id FROM person WHERE uuid = 'p-d2') WHERE uuid = 'e-d1'`,
    ]);
    await behindTheBack(parent.pool, [
      "INSERT INTO role (role, description) VALUES ('Auditor', 'planted at the district')",
    ]);

    const json = await verify('--json');
    expect(json.err).toEqual([]);
    expect(json.code).toBe(4);
    expect(json.out).toHaveLength(1);
    const report = JSON.parse(json.out[0]!) as { match: boolean; tables: unknown[] };
    const [people] = await queryRows(child.pool, 'SELECT COUNT(*) AS n FROM person');
    const n = Number(people!.n);
    expect(report).toEqual({
      match: false,
      tables: [
        {
          table: 'encounter',
          rowsHere: 6,
          rowsThere: 6,
          onlyHere: [],
          onlyThere: [],
          different: ['e-d1'],
        },
        {
          table: 'person',
          rowsHere: n,
          rowsThere: n - 1,
          onlyHere: ['p-ghost'],
          onlyThere: [],
          different: ['p-c1'],
        },
        {
          table: 'role',
          rowsHere: 2,
          rowsThere: 3,
          onlyHere: [],
          onlyThere: ['Auditor'],
          different: [],
        },
      ],
    });

    const text = await verify();
    expect(text.code).toBe(4);
    expect(text.out).toEqual([
      'encounter: 1 row with other values (6 here, 6 at the parent)',
      '  other values         e-d1',
      `person: 1 row only here, 1 row with other values (${n} here, ${n - 1} at the parent)`,
      '  only here            p-ghost',
      '  other values         p-c1',
      'role: 1 row only at the parent (2 here, 3 at the parent)',
      '  only at the parent   Auditor',
      '4 rows differ in 3 tables.',
    ]);

    // The real command in a process of its own: the shell sees 4.
    const spawned = await runCli(['--home', childHome.dir, 'verify', '--json']);
    expect(spawned.stderr).toBe('');
    expect(spawned.code).toBe(4);
    expect((JSON.parse(spawned.stdout) as { match: boolean }).match).toBe(false);

    // Put right behind its back again: the next verify sees the nodes as they now are.
    await behindTheBack(child.pool, [
      "UPDATE person SET gender = 'F' WHERE uuid = 'p-c1'",
      "DELETE FROM person WHERE uuid = 'p-ghost'",
      `UPDATE encounter SET patient_id = (SELECT person_id FROM person WHERE uuid = 'p-d1') WHERE uuid = 'e-d1'`,
    ]);
    await behindTheBack(parent.pool, ["DELETE FROM role WHERE role = 'Auditor'"]);
    const again = await verify('--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out[0]!)).toEqual({ match: true, tables: [] });
  });

  it('narrows a large table down to the rows that differ, asking for few rows over the wire', async () => {
    const values = Array.from(
      { length: 3000 },
      (_, i) => `('F', 1, '2026-05-01', 'bulk-${String(i).padStart(4, '0')}')`,
    ).join(', ');
    const insert = `INSERT INTO person (gender, creator, date_created, uuid) VALUES ${values}`;
    await behindTheBack(parent.pool, [insert]);
    await behindTheBack(child.pool, [
      insert,
      "UPDATE person SET gender = 'M' WHERE uuid = 'bulk-1234'",
    ]);

    let rowsAsked = 0;
    let questions = 0;
    const remote = parentRows(client);
    const counted: RowSource = {
      tables: (names) => (questions++, remote.tables(names)),
      buckets: (t, b, p, ps) => (questions++, remote.buckets(t, b, p, ps)),
      rows: async (t, b, bs) => {
        questions++;
        const r = await remote.rows(t, b, bs);
        rowsAsked += r.size;
        return r;
      },
    };
    const report = await compareRows(await LocalRows.of(child), counted);
    expect(report.match).toBe(false);
    expect(report.tables.map((t) => [t.table, t.onlyHere, t.onlyThere, t.different])).toEqual([
      ['person', [], [], ['bulk-1234']],
    ]);
    // one question for the digests, one for person's 256 buckets, one for one bucket's rows
    expect(questions).toBe(3);
    expect(rowsAsked).toBeGreaterThan(0);
    expect(rowsAsked).toBeLessThan(60);

    await behindTheBack(parent.pool, ["DELETE FROM person WHERE uuid LIKE 'bulk-%'"]);
    await behindTheBack(child.pool, ["DELETE FROM person WHERE uuid LIKE 'bulk-%'"]);
  });

  it('refuses a malformed question, and one about a table the parent does not sync', async () => {
    await expect(client.post(VERIFY_PATH, '{"op":"drop"}')).rejects.toThrow(
      'The verify request could not be read.',
    );
    await expect(
      client.post(
        VERIFY_PATH,
        JSON.stringify({ op: 'rows', table: 'clinicsync_peer', bits: 0, buckets: [0] }),
      ),
    ).rejects.toThrow('The table clinicsync_peer is not synced on this server.');
  });

  it('on a root: one sentence, exit 1', async () => {
    const r = await runMain(['--home', parent.home.dir, 'verify']);
    expect(r.code).toBe(1);
    expect(r.out).toEqual([]);
    expect(r.err).toEqual(['This node has no parent to compare with; it is the root of its tree.']);
  });

  it('exit 3 when the parent cannot be reached', async () => {
    await server.close();
    const r = await verify('--json');
    expect(r.code).toBe(3);
    expect(r.out).toEqual([]);
    expect(r.err).toEqual([
      `The main server at ${server.url} did not answer; check the connection. ClinicSync will try again.`,
    ]);
  });

  it('is served by `clinic-sync serve` too', async () => {
    await parent.close(); // serve takes the node's lock itself
    const served = await startServe(parent.home.dir);
    try {
      childHome.save({ ...childHome.requireSettings(), parent: served.url });
      const r = await verify('--json');
      expect(r.err).toEqual([]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out[0]!)).toEqual({ match: true, tables: [] });
    } finally {
      served.proc.kill('SIGTERM');
      await served.exited;
    }
  });
});

describe('verify narrows down level by level (no database)', () => {
  /** n rows of one table, identity → hash, as rowDigests gives them. */
  function table(n: number): Map<string, string> {
    const m = new Map<string, string>();
    for (let i = 0; i < n; i++) m.set(`row-${i}`, (BigInt(i) * 2654435761n + 17n).toString(16));
    return m;
  }

  function side(rows: Map<string, string>): LocalSide & RowSource & { rowsSent: number } {
    const s = {
      synced: ['big'],
      rowsSent: 0,
      allRows: async () => rows,
      tables: async (names: string[]) => ({
        tables: new Map(names.includes('big') ? [['big', digestOf(rows)] as const] : []),
        alsoSynced: names.includes('big') ? [] : ['big'],
      }),
      buckets: async (_t: string, bits: number, parentBits: number, parents: number[]) =>
        bucketDigests(rows, bits, parentBits, parents),
      rows: async (_t: string, bits: number, buckets: number[]) => {
        const r = rowsIn(rows, bits, buckets);
        s.rowsSent += r.size;
        return r;
      },
    };
    return s;
  }

  it('finds 3 changed rows among 200,000 by fetching a handful of rows', async () => {
    const here = table(200_000);
    const there = new Map(here);
    there.set('row-7', 'abc');
    there.delete('row-150000');
    there.set('row-new', 'def');
    const remote = side(there);
    const report = await compareRows(side(here), remote);
    expect(report.tables).toEqual([
      {
        table: 'big',
        rowsHere: 200_000,
        rowsThere: 200_000,
        onlyHere: ['row-150000'],
        onlyThere: ['row-new'],
        different: ['row-7'],
      },
    ]);
    expect(remote.rowsSent).toBeLessThan(20);
  });
});
