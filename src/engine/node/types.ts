import type { FilesStatus } from '../files/status.js';
import type { OpenmrsRefreshStatus } from '../openmrs/refresh.js';

/** One child as its parent sees it. */
export interface ChildStatus {
  name: string;
  nodeId: string;
  lastContactAt: string | null;
  /** changes held here that the child has not acknowledged */
  pendingOut: number;
  /** changes the child held at last contact that are not here */
  pendingIn: number;
}

/** What `status --json` prints and what every front end shows (DESIGN §9, issue contracts). */
export interface NodeStatus {
  name: string;
  role: 'root' | 'child';
  /** the parent's URL, or null on a root */
  parent: string | null;
  /**
   * row changes in the outgoing log that a neighbour has not acknowledged yet: on a child, its
   * parent; on a parent, any child; with no neighbour yet, every change captured here
   */
  pendingOut: number;
  /** changes the parent held at last contact that are not here yet (0 on a root) */
  pendingIn: number;
  /** received changes waiting here for a row they need */
  parked: number;
  /** null, or a sentence when received changes have waited more than a day, with the oldest's reason */
  parkedWarning: string | null;
  children: ChildStatus[];
  lastSuccessAt: string | null;
  lastError: string | null;
  /** null, or a sentence naming the node whose clock is off and by how much */
  clockWarning: string | null;
  /** bytes ClinicSync's own tables take in the database */
  journalBytes: number;
  capturePaused: boolean;
  nodeId: string;
  incarnation: string;
  /** the refresh of this node's running OpenMRS, or null when the settings name none */
  openmrsRefresh?: OpenmrsRefreshStatus | null;
  /** attached files (complex obs) on their way, or null when this node carries none */
  complexObsFiles?: FilesStatus | null;
  /**
   * null, or a sentence per neighbour whose tables have other columns than here, naming both
   * OpenMRS versions and what to upgrade; those tables wait, everything else flows
   */
  schemaWarning: string | null;
  /**
   * null, or a sentence per neighbour that hands out the same patient identifiers as this node
   * (the same idgen identifier type and prefix, as after a clone)
   */
  identifierWarning: string | null;
}
