import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import type { KnownTables } from '../db/schema.js';
import type { TablePlan } from '../identity/plan.js';
import type { Envelope } from '../protocol/types.js';
import { encodeSoftware, readSoftware } from '../openmrs/versions.js';
import { encodeIdSources, readIdSources } from '../openmrs/idgen.js';

/**
 * What a batch tells a neighbour about this node's tables and software, beyond the tables its
 * rows need (issue 12 point 3). A neighbour parks this node's changes to a table whose columns
 * differ from its own until it learns they match again; so a table is declared, even without rows,
 * while this node's columns differ from the neighbour's as last declared, and once after they
 * changed here (an upgrade), whether or not a row of it travels.
 *
 * The versions travel in `sw` and the identifier generators' digests in `ids`, attributes a
 * reader older than this release refuses; a child always sends them (a tree upgrades its parents
 * first, DESIGN §5), a parent only to a child that sent them. They are read once per exchange
 * (aboutThisNode), not once per batch.
 */
export async function declareShapes(
  db: Queryable,
  plans: Map<string, TablePlan>,
  selected: (table: string) => boolean,
  peer: string,
  env: Envelope,
  about: AboutThisNode,
): Promise<Envelope> {
  const declared = new Map(env.tables.map((t) => [t.name, t.fingerprint]));
  const known = await queryRows(
    db,
    'SELECT tbl, fingerprint, told FROM clinicsync_peer_table WHERE peer = ?',
    [peer],
  );
  for (const r of known) {
    const plan = plans.get(String(r.tbl));
    if (!plan || !selected(plan.table.name) || declared.has(plan.table.name)) continue;
    const mine = plan.table.fingerprint;
    const theirs = r.fingerprint == null ? null : String(r.fingerprint);
    const told = r.told == null ? null : String(r.told);
    if ((theirs !== null && theirs !== mine) || (told !== null && told !== mine))
      declared.set(plan.table.name, mine);
  }
  if (declared.size) {
    await execute(
      db,
      `INSERT INTO clinicsync_peer_table (peer, tbl, told) VALUES ${[...declared].map(() => '(?, ?, ?)').join(', ')}
       ON DUPLICATE KEY UPDATE told = VALUES(told)`,
      [...declared].flatMap(([t, f]) => [peer, t, f]),
    );
  }
  return {
    ...env,
    tables: [...declared].map(([name, fingerprint]) => ({ name, fingerprint })),
    ...about,
  };
}

/** This node's software and identifier sources, as `sw` and `ids` tell them to a neighbour. */
export type AboutThisNode = Pick<Envelope, 'software' | 'identifierSources'>;

/** What `sw` and `ids` tell `peer`: nothing to a child that has not shown it reads them. */
export async function aboutThisNode(
  db: Queryable,
  peer: string,
  known?: KnownTables,
): Promise<AboutThisNode> {
  const [rel] = await queryRows(
    db,
    `SELECT p.relation, s.peer AS sent FROM clinicsync_peer p
       LEFT JOIN clinicsync_peer_software s ON s.peer = p.node_id WHERE p.node_id = ?`,
    [peer],
  );
  if (!rel || (rel.relation !== 'parent' && rel.sent == null)) return {};
  // sent even when empty (no OpenMRS found): it tells the parent this node reads `sw` and `ids`
  const ids = encodeIdSources(await readIdSources(db, known));
  return {
    software: encodeSoftware(await readSoftware(db, known)),
    ...(ids !== '' ? { identifierSources: ids } : {}),
  };
}
