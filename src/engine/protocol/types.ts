import type { StoredValue } from '../capture/values.js';

/**
 * One change as it travels between nodes (DESIGN §5, §7). Foreign-key values inside `values` are
 * already global identities, never local ids.
 */
export interface WireChange {
  /** node id (16 hex) of the node where the change was made */
  origin: string;
  /** that node's dense sequence number for it (decimal string: may pass 2^53) */
  seq: string;
  /** hybrid logical clock stamp (decimal string of a 64-bit integer) */
  hlc: string;
  /** I insert, U update, D delete, S skip marker (a change the sender does not pass on: no table) */
  op: 'I' | 'U' | 'D' | 'S';
  /** table name; empty for a skip marker */
  table: string;
  /** the row's global identity; empty for a skip marker */
  ident: string;
  /** for an update that changed the row's key: the identity it had before */
  oldIdent?: string;
  /** column -> value: every column on insert, the changed ones on update, none on delete */
  values?: Record<string, StoredValue>;
  /** on an update: what it was made upon (absent: the row as it was when the tree began) */
  basis?: Basis;
}

/**
 * What an update was made upon at its origin (DESIGN §6), stamps as "hlc:origin": `base` is the
 * clock of the insert that made the copy of the row it edited, so a delete of that copy beats it
 * wherever they meet; `prior` is, per changed column, the clock of the value it replaced, so a
 * receiver holding any other value knows the two were concurrent and logs the one set aside.
 * A column absent from `prior`, like an absent `base`, means the starting value.
 */
export interface Basis {
  base?: string;
  prior?: Record<string, string>;
}

/** Per-table description carried once per batch. */
export interface WireTable {
  name: string;
  /** fingerprint of the sender's columns (name and type): see fingerprintColumns() */
  fingerprint: string;
}

/** A version vector: for each origin node id, the highest contiguous sequence held. */
export type VersionVector = Record<string, string>;

/**
 * One envelope: a batch of changes plus what the sender has received (its acknowledgement).
 * On the wire it is ClinicSync protocol v2 (or v1) XML (encodeEnvelope/decodeEnvelope in ./xml.ts,
 * specified in docs/protocol.md).
 */
export interface Envelope {
  /** protocol version */
  version: number;
  from: { node: string; incarnation: string; name?: string };
  to: string;
  /** sender's wall clock (ms since epoch, decimal string) and clock stamp, for skew handling */
  time: string;
  hlc: string;
  /**
   * Everything the sender holds (applied or durably parked), per origin. It is also the
   * acknowledgement: the receiver stops resending what is at or below it, and drops duplicates.
   */
  vv: VersionVector;
  /**
   * Clock fixes for the receiver's own changes, by sequence: a parent that judged a child's change
   * stamped too far ahead tells the child the effective clock it gave it (DESIGN §6).
   */
  fixes?: Record<string, string>;
  tables: WireTable[];
  changes: WireChange[];
  /** true when the sender had more to send than fit this batch */
  more: boolean;
  /**
   * The sender's OpenMRS and module versions as `name=version` pairs (`sw` in docs/protocol.md),
   * so a receiver whose tables differ can name both versions; absent from older senders.
   */
  software?: string;
  /**
   * Digests of the sender's patient identifier generators (`ids` in docs/protocol.md), so a
   * receiver can warn that both hand out the same identifiers; absent from older senders.
   */
  identifierSources?: string;
}
