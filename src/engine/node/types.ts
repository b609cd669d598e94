/** What `status --json` prints and what every front end shows (DESIGN §9, issue contracts). */
export interface NodeStatus {
  name: string;
  role: 'root' | 'child';
  /** the parent's URL, or null on a root */
  parent: string | null;
  /** row changes in the outgoing log that a neighbour has not acknowledged yet */
  pendingOut: number;
  lastSuccessAt: string | null;
  lastError: string | null;
  /** bytes ClinicSync's own tables take in the database */
  journalBytes: number;
  capturePaused: boolean;
  nodeId: string;
  incarnation: string;
}
