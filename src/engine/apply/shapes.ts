import type { Queryable } from '../db/pool.js';
import { execute, queryRows } from '../db/pool.js';
import type { Envelope } from '../protocol/types.js';
import {
  decodeSoftware,
  describeShapeGap,
  readSoftware,
  type Other,
  type Software,
} from '../openmrs/versions.js';

/**
 * Tables whose columns differ between this node and a neighbour (DESIGN §7, issue 12 point 3).
 * Each envelope declares the sender's fingerprint for the tables it carries (and for tables whose
 * shape changed there: see declare.ts); it is kept per neighbour, so a change received from a
 * neighbour whose table differs waits, parked, until the two match again: after either side is
 * upgraded, the parked changes are applied by the next batch, in order, nothing lost.
 */
export class PeerShapes {
  private here: Software | null = null;
  private readonly said = new Map<string, string>();

  private constructor(
    private readonly db: Queryable,
    /** this node's fingerprint of a table (undefined: not a table here) */
    private readonly local: (table: string) => string | undefined,
    /** neighbour -> table -> the fingerprint it last declared */
    private readonly theirs: Map<string, Map<string, string>>,
  ) {}

  /** Records what `env` declares about its sender, then loads what every neighbour declared. */
  static async record(
    db: Queryable,
    local: (table: string) => string | undefined,
    env: Envelope,
    fromPeer: string,
  ): Promise<PeerShapes> {
    if (env.tables.length) {
      await execute(
        db,
        `INSERT INTO clinicsync_peer_table (peer, tbl, fingerprint) VALUES ${env.tables.map(() => '(?, ?, ?)').join(', ')}
         ON DUPLICATE KEY UPDATE fingerprint = VALUES(fingerprint)`,
        env.tables.flatMap((t) => [fromPeer, t.name, t.fingerprint]),
      );
    }
    if (env.software !== undefined && typeof decodeSoftware(env.software) !== 'string') {
      await execute(
        db,
        'INSERT INTO clinicsync_peer_software (peer, software) VALUES (?, ?) ON DUPLICATE KEY UPDATE software = VALUES(software)',
        [fromPeer, env.software],
      );
    }
    return PeerShapes.load(db, local);
  }

  static async load(
    db: Queryable,
    local: (table: string) => string | undefined,
  ): Promise<PeerShapes> {
    const theirs = new Map<string, Map<string, string>>();
    for (const r of await queryRows(
      db,
      'SELECT peer, tbl, fingerprint FROM clinicsync_peer_table WHERE fingerprint IS NOT NULL',
    )) {
      const peer = String(r.peer);
      if (!theirs.has(peer)) theirs.set(peer, new Map());
      theirs.get(peer)!.set(String(r.tbl), String(r.fingerprint));
    }
    return new PeerShapes(db, local, theirs);
  }

  /** Whether `peer`'s `table` has other columns than this node's (unknown: no). */
  differs(table: string, peer: string | null): boolean {
    const fp = peer === null ? undefined : this.theirs.get(peer)?.get(table);
    const mine = this.local(table);
    return fp !== undefined && mine !== undefined && fp !== mine;
  }

  /** Each neighbour whose tables differ from this node's, with those tables. */
  gaps(): { peer: string; tables: string[] }[] {
    const out: { peer: string; tables: string[] }[] = [];
    for (const [peer, tables] of this.theirs) {
      const list = [...tables.keys()].filter((t) => this.differs(t, peer)).sort();
      if (list.length) out.push({ peer, tables: list });
    }
    return out;
  }

  /** The sentence changes of `tables` from `peer` wait with, naming both versions. */
  async reason(tables: string[], peer: string): Promise<string> {
    const key = `${peer} ${tables.join(' ')}`;
    const known = this.said.get(key);
    if (known !== undefined) return known;
    this.here ??= await readSoftware(this.db);
    const [row] = await queryRows(
      this.db,
      `SELECT p.name, p.relation, s.software FROM clinicsync_peer p
         LEFT JOIN clinicsync_peer_software s ON s.peer = p.node_id WHERE p.node_id = ?`,
      [peer],
    );
    const other: Other = {
      relation: row?.relation === 'parent' ? 'parent' : 'child',
      name: row ? String(row.name) : peer,
    };
    const sw = row?.software == null ? null : decodeSoftware(String(row.software));
    const sentence = describeShapeGap(tables, this.here, typeof sw === 'string' ? null : sw, other);
    this.said.set(key, sentence);
    return sentence;
  }
}
